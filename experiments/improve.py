"""Self-play rounds (`python app.py improve`): search the training problems with the round's models (a run), take the
verified trajectories (the domain's checker against the gold answer, never the PRM) as fine-tuning data for the
generator and the trees' verified step values as PRM data, fine-tune the generator and retrain the PRM from their
current weights, evaluate both on held-out problems (greedy, best-of-N and MCTS at two budgets, each a run), and keep
the round; it is promoted (the next round starts from it) only when it does better on the held-out set.

Every stage leaves a file in the round's folder when it is done, so a killed `improve` resumes at the stage in flight
(a run in flight resumes too: finished problems are not searched again).
"""
from __future__ import annotations

import hashlib
import json
import logging
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from reasoning.domains import get_domain
from reasoning.factors import Catalog, load_catalog
from reasoning.search import SearchConfig
from reasoning.tree import ROOT, ReasoningTree
from reasoning.types import Problem, Step
from storage.runs import Runs

from .compare import summary
from .execute import execute, start

log = logging.getLogger(__name__)
LINEAGE = "lineage.json"


@dataclass(frozen=True)
class Recipe:
    """Everything that determines a lineage of rounds besides its data and starting models."""

    algorithm: str = "mcts"
    budget: int = 64  # the training search's budget
    eval_budgets: tuple[int, int] = (32, 64)
    seed: int = 0
    paths_per_problem: int = 4  # verified trajectories kept per training problem at most
    min_trajectories: int = 20  # fewer: the round stops and the previous one stays
    sft_epochs: float = 3.0
    sft_lr: float = 2e-4
    lora_rank: int = 0  # 0: full fine-tuning of the generator; else LoRA of this rank (peft), merged when saved
    prm_epochs: float = 2.0
    prm_lr: float = 5e-5
    workers: int = 1
    eval_algorithms: tuple[str, ...] = ("greedy", "best_of_n", "mcts")

    def evaluations(self) -> list[tuple[str, int]]:
        """(algorithm, budget) of each held-out run: greedy once, best-of-N at the top budget, MCTS at both."""
        low, high = self.eval_budgets
        out = [("greedy", 16), ("best_of_n", high), ("mcts", low), ("mcts", high)]
        return [(a, b) for a, b in out if a in self.eval_algorithms]


@dataclass
class Lineage:
    id: str
    generator: str  # the starting models (round 0)
    prm: str
    train_sha256: str
    eval_sha256: str
    recipe: dict[str, Any]
    best_round: int = 0
    rounds: list[dict[str, Any]] = field(default_factory=list)


class ImproveError(ValueError):
    """A round that cannot go on; the message says why in one line."""


# -- data from trees ------------------------------------------------------------------------------------------------
def verified_trajectories(tree: ReasoningTree, limit: int) -> list[tuple[Step, ...]]:
    """Up to `limit` distinct root-to-answer paths whose answer the domain's checker accepts, shortest first."""
    domain = get_domain(tree.problem.domain)
    leaves = [n for n in tree.nodes(include_pruned=False) if n != ROOT and tree.is_live(n)
              and tree.node(n)["terminal"] and domain.check(tree.problem, tree.node(n)["answer"])]
    paths = sorted((tree.path(n)[1:] for n in leaves), key=len)
    out: list[tuple[Step, ...]] = []
    for path in paths:
        steps = tuple(Step(tree.node(n)["text"], tree.node(n)["factor"]) for n in path)
        if steps not in out:
            out.append(steps)
    return out[:limit]


def step_values(tree: ReasoningTree) -> list[dict[str, Any]]:
    """TRL stepwise records for every root-to-answer path: a step is good when a verified answer lies below it, its
    soft label the share of the answers below it that are verified (the tree as Monte-Carlo rollouts)."""
    domain = get_domain(tree.problem.domain)
    below: dict[str, list[bool]] = {}
    for n in tree.nodes(include_pruned=False):
        if n != ROOT and tree.is_live(n) and tree.node(n)["terminal"]:
            ok = bool(domain.check(tree.problem, tree.node(n)["answer"]))
            for m in tree.path(n)[1:]:
                below.setdefault(m, []).append(ok)
    records, seen = [], set()
    for n in tree.nodes(include_pruned=False):
        if n == ROOT or not tree.is_live(n) or not tree.node(n)["terminal"]:
            continue
        path = tree.path(n)[1:]
        texts = tuple(tree.node(m)["text"] for m in path)
        if texts in seen:
            continue
        seen.add(texts)
        records.append({"prompt": tree.problem.text, "completions": list(texts),
                        "labels": [any(below[m]) for m in path],
                        "soft_labels": [round(sum(below[m]) / len(below[m]), 4) for m in path]})
    return records


def first_moves(runs: Runs, run_id: int) -> dict[str, Any]:
    """On Countdown, the share of a greedy run's first steps that keep the puzzle solvable (the policy's own move,
    before any search), and the share of the first operations its paths keep (`committed_first_move`: a policy that
    checks its first try and corrects a dead one is measured on the try it goes on from); only the count (0) for
    other domains."""
    from reasoning.domains.countdown import committed_first_move, keeps_solvable

    kept = committed = total = 0
    for r in runs.results(run_id):
        if r.session_id is None:
            continue
        tree = runs.store.load_tree(r.session_id)
        if tree.problem.domain != "countdown" or not tree.children(ROOT):
            continue
        nid = ROOT
        while tree.children(nid):  # a greedy tree is one chain: its path is the state at its leaf
            nid = tree.children(nid)[0]
        steps = tree.state(nid).steps
        total += 1
        kept += keeps_solvable(tree.problem, steps[:1])
        first = committed_first_move(tree.problem, steps)
        committed += first is not None and keeps_solvable(tree.problem, first)
    if not total:
        return {"first_moves": 0}
    return {"first_move_solvable": round(kept / total, 4), "committed_first_move_solvable": round(committed / total, 4),
            "first_moves": total}


# -- the lineage on disk --------------------------------------------------------------------------------------------
def _sha(problems: list[Problem]) -> str:
    return hashlib.sha256(json.dumps([[p.id, p.text, p.answer] for p in problems]).encode()).hexdigest()


def open_lineage(out: Path, generator: str, prm: str, train: list[Problem], held: list[Problem],
                 recipe: Recipe) -> Lineage:
    """The lineage in `out`: a new one, or the one there when it is the same (same start, problems and recipe)."""
    path = out / LINEAGE
    want = {"generator": str(generator), "prm": str(prm), "train_sha256": _sha(train), "eval_sha256": _sha(held),
            "recipe": json.loads(json.dumps(asdict(recipe)))}
    if path.exists():
        have = json.loads(path.read_text(encoding="utf-8"))
        # a setting added to Recipe since the lineage began reads as its default there (it did not exist)
        have["recipe"] = {**json.loads(json.dumps(asdict(Recipe()))), **(have.get("recipe") or {})}
        diff = [k for k, v in want.items() if have.get(k) != v]
        if diff:
            raise ImproveError(f"{out} holds another lineage (its {', '.join(diff)} differ); choose a new --out")
        return Lineage(**have)
    if out.exists() and any(out.iterdir()):
        raise ImproveError(f"{out} is not empty and holds no lineage; choose a new --out")
    out.mkdir(parents=True, exist_ok=True)
    lineage = Lineage(id=uuid.uuid4().hex[:8], **want)
    save_lineage(out, lineage)
    return lineage


def save_lineage(out: Path, lineage: Lineage) -> None:
    tmp = out / f".{LINEAGE}.tmp"
    tmp.write_text(json.dumps(asdict(lineage), indent=2) + "\n", encoding="utf-8")
    tmp.replace(out / LINEAGE)


def _stage(folder: Path, name: str) -> dict[str, Any] | None:
    f = folder / f"{name}.json"
    return json.loads(f.read_text(encoding="utf-8")) if f.exists() else None


def _done(folder: Path, name: str, value: dict[str, Any]) -> dict[str, Any]:
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".{name}.json.tmp"
    tmp.write_text(json.dumps(value, indent=2) + "\n", encoding="utf-8")
    tmp.replace(folder / f"{name}.json")
    return value


# -- one round ------------------------------------------------------------------------------------------------------
@dataclass
class Improver:
    """Rounds of self-play over one lineage folder; `load` turns (generator dir, PRM dir) into models."""

    out: Path
    runs: Runs
    train: list[Problem]
    held: list[Problem]
    recipe: Recipe
    lineage: Lineage
    load: Callable[[str, str], tuple[Any, Any]]
    catalog: Catalog = field(default_factory=load_catalog)
    say: Callable[[str], None] = log.info

    def models_of(self, k: int) -> tuple[str, str]:
        """The generator and PRM directories of round k (round 0: the starting models)."""
        if k == 0:
            return self.lineage.generator, self.lineage.prm
        folder = self.out / f"round-{k}"
        return str(folder / "generator"), str(folder / "prm")

    def _run(self, folder: Path, stage: str, problems: list[Problem], algorithm: str, budget: int, seed: int,
             models: tuple[str, str], name: str) -> dict[str, Any]:
        """A run of one configuration (resumed when a kill left it unfinished); its summary."""
        done = _stage(folder, stage)
        if done is not None:
            return done
        started = _stage(folder, f"{stage}.started")
        generator, scorer = self.load(*models)
        config = SearchConfig.from_values({"algorithm": algorithm, "budget": budget, "seed": seed},
                                          defaults=_recommended(models[0], algorithm))
        if started is None:
            rid = start(self.runs, problems, config, generator, scorer, name=name,
                        problem_set=f"improve-{self.lineage.id}-{stage.split('-')[0]}", started_by="improve",
                        catalog=self.catalog)
            _done(folder, f"{stage}.started", {"run": rid})
        else:
            rid = started["run"]
            self.say(f"{name}: resuming run {rid}")
        execute(self.runs, rid, generator, scorer, config, self.catalog, workers=self.recipe.workers,
                progress=lambda t: self.say(f"{name}: {t.done}/{t.total} problems, {t.solved} solved")
                if t.done % 10 == 0 or t.done == t.total else None)
        s = summary(self.runs, rid)
        return _done(folder, stage, {"run": rid, "algorithm": algorithm, "budget": budget, "solved": s.info.solved,
                                     "problems": s.info.done, "rate": s.rate, "interval": list(s.interval),
                                     "tokens": s.info.tokens, "seconds": s.info.seconds})

    def evaluate(self, k: int) -> dict[str, Any]:
        folder = self.out / f"round-{k}"
        results = {}
        for algorithm, budget in self.recipe.evaluations():
            key = f"{algorithm}@{budget}"
            results[key] = self._run(folder, f"eval-{key}", self.held, algorithm, budget, self.recipe.seed,
                                     self.models_of(k), f"improve {self.lineage.id} round {k}: {key} (held out)")
            if algorithm == "greedy" and "first_moves" not in results[key]:
                results[key] = _done(folder, f"eval-{key}", {**results[key],
                                                              **first_moves(self.runs, results[key]["run"])})
        return results

    def data(self, k: int, run_id: int) -> dict[str, Any]:
        """Stage 2: the verified trajectories and the PRM records of round k's training trees."""
        folder = self.out / f"round-{k}"
        done = _stage(folder, "data")
        if done is not None:
            return done
        from reasoning.training.sft import Demonstration

        demos, records, solved = [], [], 0
        for r in self.runs.results(run_id):
            if r.session_id is None:
                continue
            tree = self.runs.store.load_tree(r.session_id)
            paths = verified_trajectories(tree, self.recipe.paths_per_problem)
            solved += bool(paths)
            demos += [Demonstration(tree.problem, p) for p in paths]
            records += step_values(tree)
        (folder / "sft.jsonl").write_text("".join(json.dumps(d.to_json()) + "\n" for d in demos), encoding="utf-8")
        (folder / "prm.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
        return _done(folder, "data", {"trajectories": len(demos), "problems_with_one": solved,
                                      "prm_paths": len(records), "prm_steps": sum(len(r["labels"]) for r in records)})

    def round(self, k: int) -> dict[str, Any]:
        """Round k (k >= 1) from the best round so far; returns its manifest."""
        folder = self.out / f"round-{k}"
        parent = self.lineage.best_round
        models = self.models_of(parent)
        seed = self.recipe.seed + k
        search = self._run(folder, "search", self.train, self.recipe.algorithm, self.recipe.budget, seed, models,
                           f"improve {self.lineage.id} round {k}: training search")
        data = self.data(k, search["run"])
        if data["trajectories"] < self.recipe.min_trajectories:
            raise ImproveError(f"round {k}: {data['trajectories']} verified trajectories (at least "
                               f"{self.recipe.min_trajectories} needed); round {parent} stays the best")
        gen_dir, prm_dir = self.models_of(k)
        lineage_info = {"lineage": self.lineage.id, "round": k, "parent_round": parent}
        if _stage(folder, "generator") is None:
            self.say(f"round {k}: fine-tuning the generator on {data['trajectories']} trajectories")
            from reasoning.training.sft import Demonstration, SFTConfig, finetune

            demos = [Demonstration.from_json(json.loads(x)) for x in
                     (folder / "sft.jsonl").read_text(encoding="utf-8").splitlines()]
            _clear(Path(gen_dir))
            sft = SFTConfig(epochs=self.recipe.sft_epochs, lr=self.recipe.sft_lr, seed=seed,
                            lora_rank=self.recipe.lora_rank)
            m = finetune(models[0], demos, gen_dir, sft, catalog=self.catalog, lineage=lineage_info)
            _done(folder, "generator", {"dir": gen_dir, "weights_sha256": m["weights_sha256"],
                                        "loss": m["loss_every_50_steps"][-1:]})
        if _stage(folder, "prm") is None:
            self.say(f"round {k}: retraining the PRM on {data['prm_paths']} paths")
            from reasoning.training.prm import TrainConfig, train_prm

            _clear(Path(prm_dir))
            m = train_prm(folder / "prm.jsonl", models[1], prm_dir,
                          TrainConfig(epochs=self.recipe.prm_epochs, lr=self.recipe.prm_lr, seed=seed))
            _done(folder, "prm", {"dir": prm_dir, "weights_sha256": m["weights_sha256"], "eval": m["eval"]})
        metrics = self.evaluate(k)
        best = self.lineage.rounds[parent]["metrics"] if parent < len(self.lineage.rounds) else {}
        promoted = better(metrics, best, self.recipe)
        manifest = {"round": k, "parent_round": parent, "lineage": self.lineage.id, "seed": seed,
                    "recipe": asdict(self.recipe), "data": data, "training_run": search["run"],
                    "generator": _stage(folder, "generator"), "prm": _stage(folder, "prm"), "metrics": metrics,
                    "promoted": promoted}
        return _done(folder, "manifest", manifest)

    def baseline(self) -> dict[str, Any]:
        folder = self.out / "round-0"
        done = _stage(folder, "manifest")
        if done is not None:
            return done
        metrics = self.evaluate(0)
        return _done(folder, "manifest", {"round": 0, "lineage": self.lineage.id, "generator": self.lineage.generator,
                                          "prm": self.lineage.prm, "metrics": metrics, "promoted": True})


def better(metrics: dict[str, Any], best: dict[str, Any], recipe: Recipe) -> bool:
    """Promote when MCTS at the top budget solves more held-out problems (ties: greedy decides)."""
    key = f"mcts@{recipe.eval_budgets[1]}"
    if not best or key not in best:
        return True
    a, b = metrics[key]["solved"], best[key]["solved"]
    if a != b:
        return a > b
    g = "greedy@16"
    return g in metrics and g in best and metrics[g]["solved"] > best[g]["solved"]


def _recommended(generator_dir: str, algorithm: str) -> dict[str, Any]:
    from reasoning.manifest import recommended_search

    try:
        return recommended_search(generator_dir, algorithm)
    except ValueError:
        return {}


def _clear(path: Path) -> None:
    """A model folder a kill left half-written (no manifest) is removed before the stage runs again."""
    import shutil

    if path.exists() and not (path / "manifest.json").exists():
        shutil.rmtree(path)


def improve(improver: Improver, rounds: int) -> Lineage:
    """Round 0's evaluation, then `rounds` rounds; the lineage file records each and the best."""
    lineage = improver.lineage
    if not lineage.rounds:
        lineage.rounds.append(improver.baseline())
        save_lineage(improver.out, lineage)
    for k in range(len(lineage.rounds), rounds + 1):
        manifest = improver.round(k)
        lineage.rounds.append(manifest)
        if manifest["promoted"]:
            lineage.best_round = k
        save_lineage(improver.out, lineage)
        improver.say(f"round {k}: {table_line(manifest)}; {'promoted' if manifest['promoted'] else 'not promoted'}")
    return lineage


def table_line(manifest: dict[str, Any]) -> str:
    line = ", ".join(f"{k} {v['rate']:.1%} ({v['interval'][0]:.1%}-{v['interval'][1]:.1%})"
                     for k, v in manifest["metrics"].items())
    firsts = [v for v in manifest["metrics"].values() if "first_move_solvable" in v]
    if not firsts:
        return line
    line += f", first move keeps it solvable {firsts[0]['first_move_solvable']:.1%}"
    if "committed_first_move_solvable" in firsts[0]:  # rounds measured before it existed lack it
        line += f" (the first move kept: {firsts[0]['committed_first_move_solvable']:.1%})"
    return line
