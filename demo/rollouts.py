"""Batched Monte-Carlo rollouts of the demo generator, step by step, with the Countdown calculator in the loop.

Each round, every unfinished rollout picks a factor from the next-token probabilities of the enabled open tags (the
generator's factor prior) and writes one step up to the close tag; all rollouts of a round share one left-padded
batch. Prompts come from the same `PromptFormat` the backends use, and every step goes through
`CountdownDomain.observe`, so rollouts see exactly what a search sees. (One call per rollout through the Generator
protocol is correct but far too slow on two CPU cores for thousands of rollouts.)
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from reasoning.factors import load_catalog
from reasoning.types import State, Step

from .traces import DEMO_FACTORS, DOMAIN, FORMAT


@dataclass
class Sampler:
    """The generator's model and tokenizer, with the ids of the enabled factors' tags."""

    model: object
    tokenizer: object
    factors: tuple[str, ...] = DEMO_FACTORS
    max_step_tokens: int = 24
    temperature: float = 1.0

    def __post_init__(self) -> None:
        catalog = load_catalog()
        self.by_name = {f.name: f for f in catalog}
        self.open_ids = [self.tokenizer.convert_tokens_to_ids(self.by_name[n].open_tag) for n in self.factors]
        self.close_ids = [self.tokenizer.convert_tokens_to_ids(f.close_tag) for f in catalog if f.tags]
        self.pad = self.tokenizer.pad_token_id

    def _left_pad(self, rows: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        width = max(len(r) for r in rows)
        ids = torch.full((len(rows), width), self.pad)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, r in enumerate(rows):
            ids[i, width - len(r):], mask[i, width - len(r):] = torch.tensor(r), 1
        return ids, mask

    def _forward_last(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        return self.model(input_ids=ids, attention_mask=mask, position_ids=positions).logits[:, -1].float()

    @torch.inference_mode()
    def next_steps(self, states: list[State]) -> list[Step]:
        """One new step for each state: a factor from the prior over open tags, then its text up to the close tag."""
        rows = [self.tokenizer.encode(FORMAT.prefix(s, self.by_name)) for s in states]
        ids, mask = self._left_pad(rows)
        logits = self._forward_last(ids, mask)[:, self.open_ids]
        choice = torch.multinomial(torch.softmax(logits / max(self.temperature, 1e-4), -1), 1)[:, 0].tolist()
        ids = torch.cat([ids, torch.tensor([[self.open_ids[c]] for c in choice])], 1)
        mask = torch.cat([mask, torch.ones((len(rows), 1), dtype=torch.long)], 1)
        out = self.model.generate(
            input_ids=ids, attention_mask=mask, do_sample=True, temperature=self.temperature, top_k=0, top_p=1.0,
            max_new_tokens=self.max_step_tokens, eos_token_id=self.close_ids, pad_token_id=self.pad,
        )[:, ids.shape[1]:]
        steps = []
        for state, c, new in zip(states, choice, out.tolist(), strict=True):
            text = self.tokenizer.decode([t for t in new if t not in self.close_ids and t != self.pad])
            step = Step(text.strip(), self.factors[c], tokens=len(new))
            steps.append(DOMAIN.observe(state, step))
        return steps

    def complete(self, states: list[State], max_depth: int = 8, batch: int = 256) -> list[State]:
        """Run each state on until a terminal step or `max_depth` steps."""
        done = list(states)
        todo = [i for i, s in enumerate(done) if not _finished(s, max_depth)]
        while todo:
            for k in range(0, len(todo), batch):
                part = todo[k : k + batch]
                for i, step in zip(part, self.next_steps([done[i] for i in part]), strict=True):
                    done[i] = done[i].extend(step)
            todo = [i for i in todo if not _finished(done[i], max_depth)]
        return done


def _finished(state: State, max_depth: int) -> bool:
    return bool(state.steps and state.steps[-1].terminal) or len(state.steps) >= max_depth


def solved(state: State) -> bool:
    """Whether a finished rollout reached the target (the gold checker; for labels, never for a search)."""
    last = state.steps[-1] if state.steps else None
    return bool(last and last.terminal and DOMAIN.check(state.problem, last.answer))


def load_sampler(path, **kwargs) -> Sampler:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(path, local_files_only=True)
    tok.padding_side = "left"
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32, use_safetensors=True, local_files_only=True)
    return Sampler(model.eval(), tok, **kwargs)
