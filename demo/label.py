"""Math-Shepherd style step labels from Monte-Carlo rollouts of the demo generator, in TRL stepwise records.

For each problem the generator writes a few whole paths; from every step of a path, `rollouts` continuations are
sampled (the path itself is one of them): soft value = the share that reaches the target, hard label = any does. A
terminal step is labelled by the checker directly (its answer is final). Each record also carries `exact`, the solver's verdict on the step (every
booked operation right and the remaining numbers still able to make the target): for measuring, never for training.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path

from tqdm import tqdm

from reasoning.domains.countdown import replay, solvable
from reasoning.labeling.rollouts import reached_gold
from reasoning.types import Problem, State

from .rollouts import Sampler
from .traces import DOMAIN

log = logging.getLogger(__name__)


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


def label_paths(sampler: Sampler, problems: list[Problem], paths_per_problem: int, rollouts: int,
                batch: int = 256, desc: str = "labelling", path_temperature: float = 1.0,
                rollout_temperature: float = 0.7) -> list[dict]:
    """TRL stepwise records (`prompt`, `completions`, `labels`) with `soft_labels`, `factors` and `exact`.

    Paths are sampled at `path_temperature` (so the PRM sees the mistakes a search meets), rollouts at
    `rollout_temperature` (the value of a step under the policy a search samples from)."""
    records = []
    chunk = max(1, batch // (paths_per_problem * 4))
    for k in tqdm(range(0, len(problems), chunk), desc=desc, mininterval=5):
        roots = [State(p) for p in problems[k : k + chunk] for _ in range(paths_per_problem)]
        sampler.temperature = path_temperature
        paths = sampler.complete(roots, batch=batch)
        sampler.temperature = rollout_temperature
        records += _label_chunk(sampler, paths, rollouts, batch)
    return records


def _label_chunk(sampler: Sampler, paths: list[State], rollouts: int, batch: int) -> list[dict]:
    """Label every step of `paths`; each path also counts as one rollout from each of its own prefixes."""
    outcomes: dict[tuple, list[bool]] = {}
    starts: dict[tuple, State] = {}
    for path in paths:
        for st in prefixes(path):
            if not st.steps[-1].terminal:
                outcomes.setdefault(_key(st), []).append(reached_gold(path))
                starts.setdefault(_key(st), st)
    keys = list(starts)
    extra = max(0, rollouts - 1)
    finals = sampler.complete([starts[key] for key in keys for _ in range(extra)], batch=batch)
    for i, key in enumerate(keys):
        outcomes[key] += [reached_gold(f) for f in finals[i * extra : (i + 1) * extra]]
    out = []
    for path in paths:
        soft = [float(reached_gold(st)) if st.steps[-1].terminal else _mean(outcomes[_key(st)]) for st in prefixes(path)]
        out.append({
            "id": path.problem.id, "prompt": path.problem.text, "completions": path.step_texts,
            "labels": [v > 0 for v in soft], "soft_labels": soft, "factors": [s.factor for s in path.steps],
            "exact": [exact_label(st) for st in prefixes(path)], "numbers": path.problem.meta["numbers"],
        })
    return out


def _mean(values: list[bool]) -> float:
    return sum(values) / len(values)


def _key(state: State) -> tuple:
    return (state.problem.id, tuple((s.factor, s.text) for s in state.steps))


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
