"""Batched Monte-Carlo rollouts of the demo generator, step by step, with the Countdown calculator in the loop.

Each round, every unfinished rollout picks a factor from the next-token probabilities of the enabled open tags (the
generator's factor prior) and writes one step up to the close tag; all rollouts of a round share one left-padded
batch. Prompts come from the same `PromptFormat` the backends use, and every step goes through
`CountdownDomain.observe`, so rollouts see exactly what a search sees. (One call per rollout through the Generator
protocol is correct but far too slow on two CPU cores for thousands of rollouts.)
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from reasoning.factors import load_catalog
from reasoning.labeling.rollouts import finished
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
        todo = [i for i, s in enumerate(done) if not finished(s, max_depth)]
        while todo:
            for k in range(0, len(todo), batch):
                part = todo[k : k + batch]
                for i, step in zip(part, self.next_steps([done[i] for i in part]), strict=True):
                    done[i] = done[i].extend(step)
            todo = [i for i in todo if not finished(done[i], max_depth)]
        return done


def load_sampler(path, **kwargs) -> Sampler:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(path, local_files_only=True)
    tok.padding_side = "left"
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32, use_safetensors=True, local_files_only=True)
    return Sampler(model.eval(), tok, **kwargs)


class SamplerGenerator:
    """The demo sampler behind the Generator protocol, with a real `propose_batch`: every request of a round (each a
    state, a factor and a count) is decoded in ONE left-padded batch, and, where asked, the factor prior after each
    new step comes from one more batched pass (`meta["next_prior"]`). This is what makes the core's rollouts
    (`reasoning.labeling`) affordable on two CPU cores for the loop demo; a search uses `TransformersGenerator`."""

    def __init__(self, sampler: Sampler, path):
        self.sampler, self.path, self.name = sampler, str(path), Path(path).name
        self.open_ids = {n: sampler.tokenizer.convert_tokens_to_ids(f.open_tag)
                         for n, f in sampler.by_name.items() if f.tags}

    def provenance(self) -> dict:
        return {"name": self.name, "model_dir": self.path, "backend": "demo.rollouts.SamplerGenerator",
                "max_step_tokens": self.sampler.max_step_tokens}

    @torch.inference_mode()
    def factor_prior(self, state: State, factors) -> list[float]:
        return self._priors([state], factors)[0]

    def _priors(self, states: list[State], factors) -> list[list[float]]:
        rows = [self.sampler.tokenizer.encode(FORMAT.prefix(s, self.sampler.by_name)) for s in states]
        ids, mask = self.sampler._left_pad(rows)
        logits = self.sampler._forward_last(ids, mask)[:, [self.open_ids[f.name] for f in factors]]
        return torch.softmax(logits, -1).tolist()

    def propose(self, state: State, factor, n: int, *, temperature=None, seed=None) -> list[Step]:
        from reasoning.types import ExpansionRequest

        return self.propose_batch([ExpansionRequest(state, factor, n, temperature, seed)])[0]

    @torch.inference_mode()
    def propose_batch(self, requests) -> list[list[Step]]:
        if not requests:
            return []
        s = self.sampler
        if requests[0].seed is not None:
            torch.manual_seed(requests[0].seed)
        flat = [(k, r) for k, r in enumerate(requests) for _ in range(r.n)]
        rows = [s.tokenizer.encode(FORMAT.prefix(r.state, s.by_name)) + [self.open_ids[r.factor.name]] for _, r in flat]
        ids, mask = s._left_pad(rows)
        temperature = requests[0].temperature if requests[0].temperature is not None else 1.0
        sample = temperature > 0
        out = s.model.generate(
            input_ids=ids, attention_mask=mask, do_sample=sample, temperature=temperature if sample else None,
            top_k=0 if sample else None, top_p=1.0 if sample else None, max_new_tokens=s.max_step_tokens,
            eos_token_id=s.close_ids, pad_token_id=s.pad,
        )[:, ids.shape[1]:]
        answers: list[list[Step]] = [[] for _ in requests]
        for (k, r), new in zip(flat, out.tolist(), strict=True):
            kept = [t for t in new if t != s.pad]
            text = s.tokenizer.decode([t for t in kept if t not in s.close_ids]).strip()
            answers[k].append(Step(text, r.factor.name, tokens=len(kept)))
        self._carry_priors(requests, answers)
        return answers

    def _carry_priors(self, requests, answers: list[list[Step]]) -> None:
        """meta["next_prior"] on each new step of a request that asks for it, from one batched pass."""
        groups: dict[tuple, list[tuple[int, int]]] = {}
        for k, r in enumerate(requests):
            if r.prior_over:
                groups.setdefault(tuple(r.prior_over), []).extend((k, j) for j in range(len(answers[k])))
        for factors, todo in groups.items():
            states = [requests[k].state.extend(DOMAIN.observe(requests[k].state, answers[k][j])) for k, j in todo]
            for (k, j), prior in zip(todo, self._priors(states, factors), strict=True):
                step = answers[k][j]
                answers[k][j] = step.with_(meta={**step.meta, "next_prior": prior})
