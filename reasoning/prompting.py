"""How a state is written out for a model: factor tags (tag-trained models) or cues (general LMs).

One source of truth for the demo's training traces and for the backends that prompt the models.
"""
from __future__ import annotations

from dataclasses import dataclass

from .domains import get_domain
from .factors import ThoughtFactor
from .types import Problem, State


@dataclass(frozen=True)
class PromptFormat:
    """`mode="tags"`: each step is `<open>text<close>` + newline. `mode="cues"`: steps are joined by
    `step_delimiter`, and a new step starts with its factor's cue (the cue stays part of the step text)."""

    mode: str = "cues"
    step_delimiter: str = "\n\n"
    question_suffix: str = "\n"

    def __post_init__(self) -> None:
        if self.mode not in ("tags", "cues"):
            raise ValueError(f"prompt mode must be 'tags' or 'cues', not {self.mode!r}")

    def question(self, problem: Problem) -> str:
        return get_domain(problem.domain).prompt(problem) + self.question_suffix

    def render_step(self, text: str, factor: ThoughtFactor | None) -> str:
        if self.mode == "tags" and factor is not None and factor.tags:
            return f"{factor.open_tag}{text}{factor.close_tag}\n"
        return text + self.step_delimiter

    def prefix(self, state: State, factors_by_name: dict[str, ThoughtFactor]) -> str:
        """The question and every step so far, ready for the next step to follow."""
        parts = [self.question(state.problem)]
        for step in state.steps:
            parts.append(self.render_step(step.text, factors_by_name.get(step.factor or "")))
        return "".join(parts)

    def step_start(self, factor: ThoughtFactor) -> str:
        """What is written before the model's own tokens of a new step under `factor`."""
        if self.mode == "tags" and factor.tags:
            return factor.tags[0]  # the open tag
        return factor.cue

    def stop_string(self, factor: ThoughtFactor) -> str:
        if self.mode == "tags" and factor.tags:
            return factor.tags[1]  # the close tag
        return self.step_delimiter
