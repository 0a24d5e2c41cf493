"""Math-Shepherd style step labels from Monte-Carlo rollouts of the demo generator, in TRL stepwise records.

For each problem the generator writes a few whole paths; from every step of a path, `rollouts` continuations are
sampled (the path itself is one of them): soft value = the share that reaches the target, hard label = any does. A
terminal step is labeled by the checker directly (its answer is final). Paths and rollouts are the product's
(`reasoning.labeling`: a factor from the generator's prior, a step under it, the calculator's `observe`) with the
product's generator (`load_generator`), so labels see exactly what a search sees. Each record also carries `exact`,
the solver's verdict on the step (every booked operation right and the remaining numbers still able to make the
target): for measuring, never for training.
"""
from __future__ import annotations

import json
import random
from collections import Counter
from dataclasses import replace
from pathlib import Path

from tqdm import tqdm

from reasoning.domains.countdown import Operation, moves, replay, solvable
from reasoning.factors import load_catalog
from reasoning.labeling import Estimate, RolloutConfig, complete, estimate, reached_gold
from reasoning.labeling.rollouts import state_key
from reasoning.protocols import Generator
from reasoning.types import Problem, State, Step

from .traces import DEMO_FACTORS, DOMAIN

MAX_STEPS = 8  # steps a path, or a rollout below its start, may take before it counts as a failure


def demo_generator(path: str | Path | None = None, max_step_tokens: int = 24):
    """The demo generator as the product loads it, on the CPU with the demo's factors enabled; a demo step is at most
    a dozen tokens, so `max_step_tokens` cuts a runaway step short."""
    from reasoning.backends import DEMO_GENERATOR_DIR, load_generator

    catalog = load_catalog().with_enabled(set(DEMO_FACTORS))
    return load_generator(path or DEMO_GENERATOR_DIR, catalog=catalog, device="cpu", max_step_tokens=max_step_tokens)


def exact_label(state: State) -> bool:
    """The solver's verdict on the last step of `state` (what the PRM is measured against)."""
    last = state.steps[-1]
    if last.terminal:
        return DOMAIN.check(state.problem, last.answer)
    if not last.meta.get("valid", True):
        return False
    board = replay(state.problem, state.steps)
    return board.errors == 0 and solvable(board.values, state.problem.meta.get("target", 24))


def prefixes(path: State) -> list[State]:
    return [State(path.problem, path.steps[: i + 1]) for i in range(len(path.steps))]


def label_paths(generator: Generator, problems: list[Problem], paths_per_problem: int, rollouts: int, *,
                seed: int = 0, batch: int = 256, desc: str = "labeling", path_temperature: float = 1.0,
                rollout_temperature: float = 0.7) -> list[dict]:
    """TRL stepwise records (`prompt`, `completions`, `labels`) with `soft_labels`, `factors` and `exact`.

    Paths are sampled at `path_temperature` (so the PRM sees the mistakes a search meets), rollouts at
    `rollout_temperature` (the value of a step under the policy a search samples from); about `batch` rollouts
    advance together. Each call to the rollouts gets its own seed, drawn from `seed`."""
    rng = random.Random(seed)
    factors = tuple(load_catalog().get(name) for name in DEMO_FACTORS)
    paths_config = RolloutConfig(factors, n=1, temperature=path_temperature, max_steps=MAX_STEPS)
    rollouts_config = replace(paths_config, n=max(1, rollouts - 1), temperature=rollout_temperature)
    records = []
    chunk = max(1, batch // (paths_per_problem * 4))
    for k in tqdm(range(0, len(problems), chunk), desc=desc, mininterval=5):
        roots = [State(p) for p in problems[k : k + chunk] for _ in range(paths_per_problem)]
        paths = complete(generator, roots, replace(paths_config, seed=rng.randrange(2**31)))
        extra = replace(rollouts_config, seed=rng.randrange(2**31)) if rollouts > 1 else None
        records += _label_chunk(generator, paths, extra, batch)
    return records


def _label_chunk(generator: Generator, paths: list[State], extra: RolloutConfig | None, batch: int) -> list[dict]:
    """Label every step of `paths`; each path also counts as one rollout from each of its own prefixes, and `extra`
    (when given) adds its `n` rollouts from each distinct prefix."""
    won: Counter[tuple] = Counter()
    tried: Counter[tuple] = Counter()
    starts: dict[tuple, State] = {}
    for path in paths:
        for st in prefixes(path):
            if not st.steps[-1].terminal:
                starts.setdefault(state_key(st), st)
                won[state_key(st)] += reached_gold(path)
                tried[state_key(st)] += 1
    if extra is not None:
        for key, e in zip(starts, _estimates(generator, list(starts.values()), extra, batch), strict=True):
            won[key] += e.successes
            tried[key] += e.rollouts
    return [_record(path, won, tried) for path in paths]


def _estimates(generator: Generator, states: list[State], config: RolloutConfig, batch: int) -> list[Estimate]:
    """`estimate` on about `batch` rollouts at a time, each slice with its own seed (bounded memory)."""
    size = max(1, batch // config.n)
    out: list[Estimate] = []
    for k in range(0, len(states), size):
        out += estimate(generator, states[k : k + size], replace(config, seed=(config.seed or 0) + k))
    return out


def _record(path: State, won: Counter[tuple], tried: Counter[tuple]) -> dict:
    soft = [float(reached_gold(st)) if st.steps[-1].terminal else won[state_key(st)] / tried[state_key(st)]
            for st in prefixes(path)]
    return {
        "id": path.problem.id, "prompt": path.problem.text, "completions": path.step_texts,
        "labels": [v > 0 for v in soft], "soft_labels": soft, "factors": [s.factor for s in path.steps],
        "exact": [exact_label(st) for st in prefixes(path)], "numbers": path.problem.meta["numbers"],
    }


def write_records(records: list[dict], out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(out.suffix + ".tmp")
    tmp.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    tmp.replace(out)


def read_records(path: Path) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]


def label_agreement(records: list[dict]) -> dict[str, float]:
    """How often the rollout labels (hard) agree with the solver's verdict, over every step."""
    pairs = [(h, e) for r in records for h, e in zip(r["labels"], r["exact"], strict=True)]
    return {"steps": len(pairs), "agreement": sum(h == e for h, e in pairs) / max(1, len(pairs))}


def solver_paths(problems: list[Problem], per_problem: int, *, seed: int = 0, live_share: float = 0.5) -> list[dict]:
    """Paths the solver draws instead of the generator, in the same records with the solver's labels: each step one
    operation on the board (written as the demo traces write it, a result never negative), a live one (the numbers
    left can still make the target) with chance `live_share` when there is one, else any. They show a PRM many more
    boards, live and dead, than the generator's own paths do; their labels are exact, which only a domain with a
    solver affords."""
    rng = random.Random(seed)
    out = []
    for problem in problems:
        target = problem.meta.get("target", 24)
        for _ in range(per_problem):
            state = State(problem)
            while not state.steps or not state.steps[-1].terminal:
                board = replay(problem, state.steps)
                options = [m for m in moves(tuple(v for v, _ in board.numbers)) if m[3] >= 0]
                live = [m for m in options if solvable(m[4], target)]
                a, op, b, result, _ = rng.choice(live if live and rng.random() < live_share else options)
                factor = "conclude" if len(board.numbers) == 2 else "compute"
                state = state.extend(DOMAIN.observe(state, Step(Operation(a, op, b, result).text, factor)))
            exact = [exact_label(st) for st in prefixes(state)]
            out.append({
                "id": problem.id, "prompt": problem.text, "completions": state.step_texts, "labels": exact,
                "soft_labels": [float(e) for e in exact], "factors": [s.factor for s in state.steps], "exact": exact,
                "numbers": problem.meta["numbers"],
            })
    return out
