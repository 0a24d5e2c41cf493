"""A generative PRM: a causal LM that writes a critique of each step and then a verdict (ThinkPRM / GenPRM style).

The model reads the problem and the whole solution, then "Let's verify step by step." For each step it writes a
critique (greedy, up to `max_critique_tokens`) until the verdict cue, `\\boxed{` (style "boxed") or "Is the step
correct (Yes/No)?" (style "yesno"). The step's score is P(correct) / (P(correct) + P(incorrect)), the two verdict
words' sequence probabilities right after the cue; the more likely verdict is written into the text and the next
step's critique follows it. The finished verification text is checked to hold exactly one verdict per step. The
critique and verdict of each step are kept (`critiques(problem, path)`) so the search can store them in the node's
meta and the inspector can show the judgement behind the number.
"""
from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import torch
from cachetools import LRUCache

from ..domains import get_domain
from ..types import Critique, Problem
from .loading import check_causal_lm
from .prm import PRMAdapter

STYLES = {
    # cue before the verdict, the two verdict words, what closes a verdict
    "boxed": ("Verdict: \\boxed{", "correct", "incorrect", "}"),
    "yesno": ("Is the step correct (Yes/No)?", " Yes", " No", ""),
}
INTRO = "Let's verify step by step."
CACHE = 512


class GenerativePRM(PRMAdapter):
    """Scores each step by a verdict the model gives after critiquing it; one verdict per step, checked."""

    adapter = "generative"
    options = {"style": "boxed", "max_critique_tokens": 48}
    reuse_prefix_kv = False  # each verdict follows a critique it writes: no path scores to read on a parent's KV

    def check_code(self, cfg: dict[str, Any], trust_remote_code: bool) -> None:
        super().check_code(cfg, trust_remote_code)
        check_causal_lm(self.path, cfg)
        if self.opts["style"] not in STYLES:
            raise ValueError(f"generative PRM style must be one of {sorted(STYLES)}, not {self.opts['style']!r}")
        if not 1 <= int(self.opts["max_critique_tokens"]) <= 2048:
            raise ValueError("max_critique_tokens must be in 1..2048")

    def setup_tokens(self) -> None:
        cue, good, bad, _ = STYLES[self.opts["style"]]
        self.cue, self.good_ids, self.bad_ids = cue, self.tokens(good), self.tokens(bad)
        if not self.good_ids or not self.bad_ids or self.good_ids == self.bad_ids:
            raise ValueError(f"the tokenizer of {self.path} cannot tell the verdicts {good!r} and {bad!r} apart")
        self._cache: LRUCache[tuple, list[Critique]] = LRUCache(CACHE)

    # -- the prompt ------------------------------------------------------------------------------
    @staticmethod
    def prompt(question: str, steps: Sequence[str]) -> str:
        solution = "\n".join(f"Step {i + 1}: {s}" for i, s in enumerate(steps))
        return f"Problem: {question}\n\nSolution:\n{solution}\n\n{INTRO}\n"

    # -- scoring ---------------------------------------------------------------------------------
    def score(self, problem: Problem, paths: Sequence[Sequence[str]]) -> list[list[float]]:
        return [[c.p_correct for c in self.critiques(problem, p)] for p in paths]

    def score_last(self, problem: Problem, paths: Sequence[Sequence[str]]) -> list[float]:
        return [self.critiques(problem, p)[-1].p_correct if p else 0.5 for p in paths]

    def critiques(self, problem: Problem, path: Sequence[str]) -> list[Critique]:
        """The critique, verdict and P(correct) of every step of `path` (cached: a search asks again for the
        same path when it stores the node)."""
        question = get_domain(problem.domain).prompt(problem)
        key = (question, tuple(path))
        if key in self._cache:
            return self._cache[key]
        got = self._cache[key] = self._verify(question, list(path)) if path else []
        return got

    @torch.inference_mode()
    def _verify(self, question: str, steps: list[str]) -> list[Critique]:
        _, good, bad, close = STYLES[self.opts["style"]]
        text = self.prompt(question, steps)
        out = []
        for i in range(len(steps)):
            text += f"Step {i + 1}: "
            critique = self._critique(text)
            text += critique + self.cue
            p = self._p_correct(self.tokens(text, special=True))
            verdict = "correct" if p >= 0.5 else "incorrect"
            text += (good if p >= 0.5 else bad) + close + "\n"
            out.append(Critique(i, critique.strip(), verdict, p))
        check_one_verdict_per_step(text, len(steps), self.opts["style"])
        return out

    def _critique(self, text: str) -> str:
        """Greedy text up to the verdict cue (cut there), at most `max_critique_tokens` tokens, on one line."""
        ids = self._fit_prompt(self.tokens(text, special=True))
        gen = self.model.generate(
            input_ids=torch.tensor([ids], device=self.device), attention_mask=torch.ones((1, len(ids)), dtype=torch.long,
                                                                                          device=self.device),
            max_new_tokens=int(self.opts["max_critique_tokens"]), do_sample=False, pad_token_id=self.pad_id,
        )[0, len(ids):].tolist()
        written = self.tokenizer.decode(gen, skip_special_tokens=True)
        for stop in (self.cue, "\nStep ", "\n"):
            if stop in written:
                written = written[: written.index(stop)]
        return written.replace("\\boxed", "").strip() + " "

    def _fit_prompt(self, ids: list[int]) -> list[int]:
        room = int(self.opts["max_critique_tokens"]) + max(len(self.good_ids), len(self.bad_ids))
        if self.max_positions is not None and len(ids) + room > self.max_positions:
            return ids[-max(1, self.max_positions - room):]
        return ids

    def _p_correct(self, context: list[int]) -> float:
        """P(good words) / (P(good words) + P(bad words)) after `context`, from one batched pass of both."""
        context = self._fit_prompt(context)
        rows = [context + self.good_ids, context + self.bad_ids]
        width = max(len(r) for r in rows)
        ids = torch.full((2, width), self.pad_id, dtype=torch.long, device=self.device)
        mask = torch.zeros_like(ids)
        for k, r in enumerate(rows):
            ids[k, : len(r)] = torch.tensor(r, device=self.device)
            mask[k, : len(r)] = 1
        logp = torch.log_softmax(self.model(input_ids=ids, attention_mask=mask).logits.float(), -1)
        sums = []
        for k, words in enumerate((self.good_ids, self.bad_ids)):
            at = torch.arange(len(context) - 1, len(context) - 1 + len(words), device=self.device)
            sums.append(logp[k, at, torch.tensor(words, device=self.device)].sum())
        return float(torch.softmax(torch.stack(sums), 0)[0])

    def provenance(self) -> dict[str, Any]:
        return {**super().provenance(), "intro": INTRO}


_VERDICT = {"boxed": re.compile(r"\\boxed\{(correct|incorrect)\}"), "yesno": re.compile(r"\(Yes/No\)\? (Yes|No)\b")}


def check_one_verdict_per_step(text: str, steps: int, style: str = "boxed") -> None:
    """A verification must hold exactly one verdict per step; anything else is not a usable judgement."""
    verification = text.split(INTRO, 1)[-1]
    found = len(_VERDICT[style].findall(verification))
    if found != steps:
        raise ValueError(f"the generative PRM gave {found} verdicts for {steps} steps")
