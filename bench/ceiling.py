"""What a perfect PRM would make of a generator's samples (Countdown only): best-of-N and MCTS with the solver's
verdicts in the PRM's place, beside the same searches with a trained PRM, on the same problems in one run.

    python -m bench.ceiling [--generator DIR] [--prm DIR] [--problems FILE] [--limit 100] [--algorithms mcts ...]
                            [--budgets 16 32 64] [--workers 2]

The solver scorer reads each step's text as the PRM does (no factor tags): an operation is booked on the calculator
(one whose operands are only on the board before the last operation is a `correct`: undo, then book), a step that
books nothing is a verify whose claim ("... can make 24", "... cannot make 24", "... is wrong") is judged, and an
answer is checked. A step scores 1 when the numbers left can still make the target (an answer: when it is right).
"""
from __future__ import annotations

import argparse
import copy
import multiprocessing as mp
import time

from demo import scaling
from reasoning.domains.countdown import Board, check_expression, parse_operation, solvable
from reasoning.problems import read_problems


class SolverScorer:
    """The `Scorer` protocol answered by the solver, from the step texts alone."""

    name = "solver"

    def provenance(self) -> dict:
        return {"name": self.name}

    def score(self, problem, paths) -> list[list[float]]:
        return [self._path(problem, path) for path in paths]

    def score_last(self, problem, paths) -> list[float]:
        return [self._path(problem, path)[-1] for path in paths]

    @staticmethod
    def _path(problem, texts) -> list[float]:
        numbers, target = problem.meta["numbers"], problem.meta.get("target", 24)
        board, last_ok, out = Board.start(numbers), True, []

        def live(b: Board) -> bool:
            return b.errors == 0 and solvable(b.values, target)

        for text in texts:
            words = text.lower()
            op = parse_operation(text.split("(")[0].strip())
            if op is None or "make" in words or "wrong" in words:  # a verify: is its claim true?
                claim = ("cannot make" in words and not live(board)) or ("can make" in words and live(board))
                out.append(float(claim or ("wrong" in words and not last_ok)))
                continue
            booked = copy.deepcopy(board)
            ok = booked.book(op)
            if not ok and board.history:  # a correct: the operands are on the board before the last operation
                undone = copy.deepcopy(board)
                undone.undo()
                if undone.book(op):
                    booked, ok = undone, True
            board, last_ok = booked, ok
            if "(answer:" in text:
                answer = text.split("(answer:", 1)[1].rsplit(")", 1)[0].strip()
                out.append(float(check_expression(answer, numbers, target)))
            else:
                out.append(float(live(board)))
        return out


def _init(generator: str | None, prm: str | None, solver: bool) -> None:
    scaling._init_worker(generator, prm)
    if solver:
        scaling._WORKER["scorer"] = SolverScorer()


def _solve(job: tuple) -> dict:
    scorer, algorithm, budget, problem = job
    row = scaling._solve((algorithm, budget, 0, problem))
    return {**row, "scorer": scorer}


def run(problems, generator: str | None, prm: str | None, algorithms, budgets, workers: int) -> list[dict]:
    rows = []
    for label, solver in (("solver", True), (prm or "demo PRM", False)):
        jobs = [(label, a, b, p) for a in algorithms for b in budgets for p in problems]
        with mp.get_context("spawn").Pool(workers, initializer=_init, initargs=(generator, prm, solver)) as pool:
            rows += pool.map(_solve, jobs, chunksize=2)
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--generator", default=None, help="generator directory (default: the demo generator)")
    parser.add_argument("--prm", default=None, help="the PRM beside the solver (default: the demo PRM)")
    parser.add_argument("--problems", default=str(scaling.ROOT / "reasoning" / "data" / "countdown_dev.jsonl"))
    parser.add_argument("--limit", type=int, default=100)
    parser.add_argument("--algorithms", nargs="+", default=["best_of_n", "mcts"], choices=scaling.ALGORITHMS)
    parser.add_argument("--budgets", nargs="+", type=int, default=[16, 32, 64])
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args(argv)
    problems = read_problems(args.problems)[: args.limit]
    if any(p.domain != "countdown" for p in problems):
        raise SystemExit(f"{args.problems}: the solver scorer needs Countdown problems")
    started = time.time()
    rows = run(problems, args.generator, args.prm, args.algorithms, args.budgets, args.workers)
    print(f"solved of {len(problems)} ({args.problems}), seed 0, the report's settings; {time.time() - started:.0f} s")
    print("| scorer | " + " | ".join(f"{a}@{b}" for a in args.algorithms for b in args.budgets) + " |")
    for scorer in dict.fromkeys(r["scorer"] for r in rows):
        cells = [sum(r["solved"] for r in rows if (r["scorer"], r["algorithm"], r["budget"]) == (scorer, a, b))
                 for a in args.algorithms for b in args.budgets]
        print(f"| {scorer} | " + " | ".join(str(c) for c in cells) + " |")


if __name__ == "__main__":
    main()
