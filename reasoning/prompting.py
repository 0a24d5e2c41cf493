"""How a state is written out for a model: factor tags (tag-trained models) or cues (general LMs).

One source of truth for the demo's training traces and for the backends that prompt the models (`PromptFormat` for
the text, `PromptIds` for the token ids both generators send).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from .domains import get_domain
from .factors import Catalog, ThoughtFactor
from .types import Problem, State, Step, StepMeta


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


class PromptIds:
    """A state's prompt as token ids, shared by the generators (transformers and server): the question's ids, then
    each step's own ids, so that a node's ids are its parent's plus its step's and a cached prefix stays valid.

    A generator sets `catalog`, `format` (`init_prompt`) and `max_positions` and supplies three conversions:
    `_encode(text, special)`, `_text(ids)` (special tokens kept) and `_single(text)` (the id of a one-token text)."""

    catalog: Catalog
    format: PromptFormat
    max_positions: int | None

    def _encode(self, text: str, special: bool) -> list[int]:
        raise NotImplementedError

    def _text(self, ids: list[int]) -> str:
        raise NotImplementedError

    def _single(self, text: str) -> int | None:
        raise NotImplementedError

    def init_prompt(self, catalog: Catalog, prompt_mode: str | None) -> None:
        """The catalog and the prompt format (`prompt_mode`, else detected from the tokenizer)."""
        self.catalog = catalog
        self._step_memo: dict[tuple, tuple[int, ...]] = {}
        self.format = PromptFormat(mode=prompt_mode or self._detect_mode())

    def _detect_mode(self) -> str:
        """Tags mode when every enabled factor's tags are single tokens of this tokenizer (a tag-trained model)."""
        tags = [t for f in self.catalog.enabled for t in (f.tags or (None, None))]
        ok = bool(tags) and all(t is not None and self._single(t) is not None for t in tags)
        return "tags" if ok else "cues"

    def _by_name(self, factors: Sequence[ThoughtFactor] = ()) -> dict[str, ThoughtFactor]:
        return {**{f.name: f for f in self.catalog}, **{f.name: f for f in factors}}

    def context_ids(self, state: State, factors: Sequence[ThoughtFactor] = ()) -> list[int]:
        """The question and the steps so far, as token ids: the question's tokens, then each step's own ids.

        Built step by step (never by tokenising the whole text again), so a node's ids are its parent's ids plus
        its step's: a step keeps the ids its generator wrote, and KV computed for a node's prefix stays valid."""
        by_name = self._by_name(factors)
        ids = self._encode(self.format.question(state.problem), special=True)
        for step in state.steps:
            ids += self.step_ids(step, by_name.get(step.factor or ""))
        return ids

    def step_ids(self, step: Step, factor: ThoughtFactor | None) -> list[int]:
        """One rendered step as ids: the ids the model wrote (`meta["token_ids"]`) after its start, plus the tokens
        of whatever the rendering adds after them (the newline after a close tag); the text's own tokens when the
        written ids do not spell the step's text (a step rewritten by the domain or by hand, another tokenizer)."""
        rendered = self.format.render_step(step.text, factor)
        written = step.meta.get("token_ids") if step.meta else None
        if written:
            written = [int(i) for i in written]
            key = (rendered, tuple(written), factor.name if factor else None)
            cached = self._step_memo.get(key)
            if cached is not None:
                return list(cached)
            head = (self.start_ids(factor) if factor else []) + written
            spelled = self._text(head)
            if spelled and rendered.startswith(spelled):
                ids = head + self._encode(rendered[len(spelled):], special=False)
                if len(self._step_memo) > 100_000:
                    self._step_memo.clear()
                self._step_memo[key] = tuple(ids)
                return ids
        return self._encode(rendered, special=False)

    def start_ids(self, factor: ThoughtFactor) -> list[int]:
        """What opens a step under `factor`: its open tag (tags mode) or its cue (cues mode)."""
        return self._encode(self.format.step_start(factor), special=False)

    def child_ids(self, context: list[int], factor: ThoughtFactor, ids: list[int], text: str) -> list[int] | None:
        """A new step's child prefix: the parent's `context`, the step's start and written `ids`, then what its
        rendering (`text`, as the Step holds it) adds after them (the newline after a close tag). None when the ids
        do not spell the start of the rendered step, or when the child fills the model's positions."""
        rendered = self.format.render_step(text, factor)
        head = self.start_ids(factor) + ids
        spelled = self._text(head)
        if not rendered.startswith(spelled):
            return None
        child = context + head + self._encode(rendered[len(spelled):], special=False)
        if self.max_positions is not None and len(child) >= self.max_positions:
            return None
        return child

    def _fit(self, context: list[int], room: int) -> list[int]:
        """Keep the context's last tokens so that `room` more tokens fit in the model's positions."""
        if self.max_positions is None or len(context) + room <= self.max_positions:
            return context
        return context[-max(1, self.max_positions - room):]

    def stop_strings(self, factor: ThoughtFactor) -> tuple[str, ...]:
        """The factor's stop string; in tags mode any factor tag also ends a step (tags never occur inside one)."""
        stop = self.format.stop_string(factor)
        if self.format.mode != "tags":
            return (stop,)
        return (stop, *(t for f in self._by_name([factor]).values() for t in (f.tags or ()) if t != stop))

    def new_step(self, factor: ThoughtFactor, ids: list[int], logprob: float, stop: str | None, text: str,
                 prior: list[float] | None = None) -> Step:
        """A written step as the searches receive it: the cue kept in the text (cues mode), the written ids and
        why it stopped in `meta`, and the child's factor prior when it was read from the same pass."""
        cue = "" if self.format.mode == "tags" and factor.tags else factor.cue
        meta: StepMeta = {"stop": stop, "token_ids": list(ids)}
        if prior is not None:
            meta["next_prior"] = prior
        return Step(text=cue + text, factor=factor.name, tokens=len(ids), logprob=logprob,
                    terminal=stop == "context", meta=meta)
