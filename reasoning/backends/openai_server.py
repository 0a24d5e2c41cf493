"""Generator and PRM backends for OpenAI-compatible model servers (vLLM's `engine serve`).

The prompts are the transformers backends' own token ids: the server's `/tokenize` turns the same texts into ids the
same way (`PromptFormat`, special tokens on for the context, off for a step start), and the ids, not text, are sent,
so a step boundary never shifts. Tag-trained models stop on their tags by `stop_token_ids` (vLLM strips special
tokens from text, and accepts at most 4 stop strings). The factor prior is read from a 1-token completion's top
logprobs (token ids via `return_tokens_as_token_ids`), falling back to `prompt_logprobs` for a factor that is not in
the top list and for factor starts longer than one token.
"""
from __future__ import annotations

import json
import logging
import math
import os
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from cachetools import LRUCache

from ..domains import get_domain
from ..factors import Catalog, ThoughtFactor, load_catalog
from ..http_client import ServerError, ServerOptions, ServerPool, chunks
from ..prompting import PromptIds
from ..types import ExpansionRequest, Problem, State, Step
from .prm_paths import NEUTRAL, fit_path, positions_of, qwen_prm_messages, separated_path

log = logging.getLogger(__name__)

TOKENIZE_CACHE = 4096  # texts whose ids are remembered (contexts repeat across siblings and iterations)
TOP_LOGPROBS = 20  # what vLLM gives without --max-logprobs; `engine serve` allows more
PRM_BATCH_TOKENS = 8192  # tokens per /pooling request at most


class _Tokenizer:
    """Text <-> ids, remembered (LRU, shared by the threads of a batch) so a context or a step is converted once.

    When the server runs on this machine (vLLM reports the model's directory as `root`), the same tokenizer files
    are read here and no request is spent on conversions; otherwise the server's /tokenize and /detokenize do it.
    """

    def __init__(self, pool: ServerPool):
        self.pool = pool
        self._memo: LRUCache[tuple[str, str, bool], Any] = LRUCache(TOKENIZE_CACHE)
        self._lock = threading.Lock()
        self.local = _local_tokenizer(pool.root)

    def _remembered(self, key: tuple[str, str, bool], compute):
        with self._lock:
            hit = self._memo.get(key)
            if hit is not None:
                return hit
        value = compute()  # outside the lock: two threads may ask the server for the same text, both get it right
        with self._lock:
            self._memo[key] = value
        return value

    def encode(self, text: str, special: bool) -> list[int]:
        def ask() -> list[int]:
            if self.local is not None:
                with self._lock:
                    return list(self.local.encode(text, add_special_tokens=special))
            data = self.pool.post("/tokenize", {"prompt": text, "add_special_tokens": special}, key=text)
            return [int(t) for t in data.get("tokens", [])]

        return list(self._remembered(("encode", text, special), ask))

    def decode(self, ids: list[int]) -> str:
        """Ids -> text with special tokens kept (vLLM's /detokenize)."""
        def ask() -> str:
            if self.local is not None:
                with self._lock:
                    return self.local.decode(ids, skip_special_tokens=False, clean_up_tokenization_spaces=False)
            return str(self.pool.post("/detokenize", {"tokens": ids}).get("prompt", ""))

        return self._remembered(("decode", json.dumps(ids), False), ask)

    def chat(self, messages: list[dict[str, str]]) -> list[int]:
        if self.local is not None and getattr(self.local, "chat_template", None):
            with self._lock:
                text = self.local.apply_chat_template(messages, tokenize=False, add_generation_prompt=False)
            return self.encode(text, special=False)
        data = self.pool.post("/tokenize", {"messages": messages, "add_generation_prompt": False,
                                            "add_special_tokens": False})
        return [int(t) for t in data.get("tokens", [])]

    def single(self, text: str) -> int | None:
        ids = self.encode(text, special=False)
        return ids[0] if len(ids) == 1 else None


def _local_tokenizer(root: str | None):
    """The served model's own tokenizer when its directory is on this machine (safetensors-era files only, no
    remote code), else None."""
    if not root or not (Path(root) / "tokenizer_config.json").is_file():
        return None
    try:
        from transformers import AutoTokenizer

        return AutoTokenizer.from_pretrained(root, local_files_only=True, trust_remote_code=False)
    except Exception as exc:  # an unusual tokenizer: the server converts instead
        log.info("tokenizer of %s not loaded here (%s); converting on the server", root, exc)
        return None


# Replica affinity with several generator URLs: `tree` (default) sends every expansion of one tree to one server, so
# its prefix cache holds the tree's shared prefixes (many trees in flight, as in a run, spread over the servers);
# `subtree` splits a tree by its first step (one search alone uses every server); `none` spreads by the whole path,
# for measuring what affinity buys (bench/ray_runs.py --affinity). Set by REASONING_SERVER_AFFINITY.
AFFINITY = os.environ.get("REASONING_SERVER_AFFINITY", "tree")


def _route(state: State) -> str:
    """The key that picks a server (AFFINITY above)."""
    key = f"{state.problem.id}\x00{state.problem.text}"
    if AFFINITY == "subtree":
        return f"{key}\x00{state.steps[0].text if state.steps else ''}"
    if AFFINITY == "none":
        return "\x00".join([key, *(s.text for s in state.steps)])
    return key


def _token_id(key: str) -> int | None:
    """`token_id:123` (vLLM's return_tokens_as_token_ids) -> 123."""
    head, _, tail = key.rpartition(":")
    return int(tail) if head == "token_id" and tail.lstrip("-").isdigit() else None


def _normalise(logprobs: Sequence[float]) -> list[float]:
    top = max(logprobs)
    if top == -math.inf:
        return [1.0 / len(logprobs)] * len(logprobs)
    weights = [math.exp(lp - top) for lp in logprobs]
    total = sum(weights)
    return [w / total for w in weights]


class ServerGenerator(PromptIds):
    """A Generator whose steps come from an OpenAI-compatible completions server (one URL or several)."""

    def __init__(
        self,
        urls: str,
        *,
        catalog: Catalog | None = None,
        max_step_tokens: int = 64,
        top_p: float = 1.0,
        prompt_mode: str | None = None,
        options: ServerOptions | None = None,
    ):
        if max_step_tokens < 1:
            raise ValueError(f"max_step_tokens must be at least 1, got {max_step_tokens}")
        if not 0.0 < top_p <= 1.0:
            raise ValueError(f"top_p must be in (0, 1], got {top_p}")
        self.pool = ServerPool(urls, role="generator", options=options)
        self.path = urls  # what the app was given: the UI offers it as the model's location
        self.name = self.pool.model_name
        self.max_step_tokens, self.top_p = max_step_tokens, top_p
        self.max_positions = self.pool.max_model_len
        self.tokenizer = _Tokenizer(self.pool)
        self.init_prompt(catalog or load_catalog(), prompt_mode)
        workers = self.pool.options.max_in_flight * len(self.pool.servers)
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="generator-http")

    def provenance(self) -> dict[str, Any]:
        return {
            "name": self.name, "server": self.pool.urls, "model_root": self.pool.root, "engine": "openai-server",
            "max_model_len": self.max_positions, "max_step_tokens": self.max_step_tokens, "top_p": self.top_p,
            "prompt_mode": self.format.mode,
        }

    def close(self) -> None:
        self._executor.shutdown(wait=False)
        self.pool.close()

    # -- text -> ids (PromptIds builds the prompts) -------------------------------------------------
    def _encode(self, text: str, special: bool) -> list[int]:
        return self.tokenizer.encode(text, special)

    def _text(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids)

    def _single(self, text: str) -> int | None:
        return self.tokenizer.single(text)

    # -- the factor prior --------------------------------------------------------------------------
    def factor_prior(self, state: State, factors: Sequence[ThoughtFactor]) -> list[float]:
        if not factors:
            return []
        context = self.context_ids(state, factors)
        return self._priors([context], factors, key=_route(state))[0]

    def _priors(self, contexts: list[list[int]], factors: Sequence[ThoughtFactor], key: str) -> list[list[float]]:
        """The normalised prior over `factors` after each context, from as few requests as the server allows."""
        starts = [self.start_ids(f) for f in factors]
        scores: list[list[float | None]] = [[None] * len(factors) for _ in contexts]
        if all(len(s) == 1 for s in starts):
            fitted = [self._fit(c, 1) for c in contexts]
            data = self.pool.post("/v1/completions", {
                "prompt": fitted, "max_tokens": 1, "temperature": 0.0, "logprobs": TOP_LOGPROBS,
                "return_tokens_as_token_ids": True,
            }, key=key)
            for choice in data["choices"]:
                top = (choice.get("logprobs") or {}).get("top_logprobs") or [{}]
                got = {_token_id(k): v for k, v in (top[0] or {}).items()}
                i = choice["index"]
                scores[i] = [got.get(s[0]) for s in starts]
        missing = [(i, j) for i, row in enumerate(scores) for j, v in enumerate(row) if v is None]
        if missing:
            for (i, j), value in zip(missing, self._sequence_logprobs(
                    [(contexts[i], starts[j]) for i, j in missing], key), strict=True):
                scores[i][j] = value
        return [_normalise([float(v) for v in row]) for row in scores]  # type: ignore[arg-type]

    def _sequence_logprobs(self, pairs: list[tuple[list[int], list[int]]], key: str) -> list[float]:
        """log p(start | context) for each pair, summed over the start's tokens (vLLM's prompt_logprobs)."""
        prompts = [self._fit(c, len(s)) + s for c, s in pairs]
        data = self.pool.post("/v1/completions", {
            "prompt": prompts, "max_tokens": 1, "temperature": 0.0, "prompt_logprobs": 0,
        }, key=key)
        out = [0.0] * len(pairs)
        for choice in data["choices"]:
            i = choice["index"]
            rows = choice.get("prompt_logprobs")
            if rows is None:
                raise ServerError(f"generator server {self.pool.urls[0]} gave no prompt_logprobs "
                                  "(needed for the factor prior; vLLM has them)")
            start = pairs[i][1]
            tail = rows[len(prompts[i]) - len(start):]
            out[i] = sum(_prompt_logprob(row, tok) for row, tok in zip(tail, start, strict=True))
        return out

    # -- proposing steps ---------------------------------------------------------------------------
    def propose(
        self, state: State, factor: ThoughtFactor, n: int, *, temperature: float | None = None, seed: int | None = None
    ) -> list[Step]:
        return self.propose_batch([ExpansionRequest(state, factor, n, temperature=temperature, seed=seed)])[0]

    def propose_batch(self, requests: Sequence[ExpansionRequest]) -> list[list[Step]]:
        """All requests in flight at once (bounded per server), each request's siblings in one `n` request; then
        the new children's priors in one greedy 1-token request per server (a prompt list)."""
        futures = [self._executor.submit(self._expand, r) for r in requests]
        written = [f.result() for f in futures]
        groups: dict[tuple[str, tuple[str, ...]], list[tuple[int, int, list[int]]]] = {}
        for i, (request, (context, steps)) in enumerate(zip(requests, written, strict=True)):
            if not request.prior_over:
                continue
            key = _route(request.state)
            group = (key if len(self.pool.servers) > 1 else "", tuple(f.name for f in request.prior_over))
            for j, step in enumerate(steps):
                child = self._child_ids(context, step, request.factor)
                if child is not None:
                    groups.setdefault(group, []).append((i, j, child))
        by_name = {f.name: f for r in requests for f in (r.prior_over or ())}
        jobs = {group: self._executor.submit(self._priors, [c for _, _, c in members],
                                             [by_name[n] for n in group[1]], group[0])
                for group, members in groups.items()}
        out = [list(steps) for _, steps in written]
        for group, job in jobs.items():
            for (i, j, _), prior in zip(groups[group], job.result(), strict=True):
                out[i][j] = out[i][j].with_(meta={**out[i][j].meta, "next_prior": prior})
        return out

    def _expand(self, request: ExpansionRequest) -> tuple[list[int], list[Step]]:
        if request.n < 1:
            return [], []
        factor, key = request.factor, _route(request.state)
        context = self.context_ids(request.state, [request.factor, *(request.prior_over or ())])
        prefix = context + self.start_ids(factor)
        room = self.max_step_tokens if self.max_positions is None else self.max_positions - len(prefix)
        limit = min(self.max_step_tokens, room)
        if limit <= 0:
            log.warning("%s: the prompt (%d tokens) fills the model's context; no room for a step", self.name,
                        len(prefix))
            return context, [self.new_step(factor, [], 0.0, "context", "") for _ in range(request.n)]
        data = self.pool.post("/v1/completions", self._sampling(request, prefix, limit), key=key)
        choices = sorted(data["choices"], key=lambda c: c["index"])
        return context, [self._read_choice(c, factor, limit) for c in choices]

    def _sampling(self, request: ExpansionRequest, prefix: list[int], limit: int) -> dict[str, Any]:
        temperature = 1.0 if request.temperature is None else float(request.temperature)
        body: dict[str, Any] = {
            "prompt": prefix, "n": request.n, "max_tokens": limit, "temperature": temperature, "top_p": self.top_p,
            "logprobs": 0, "return_tokens_as_token_ids": True, "skip_special_tokens": False,
            "spaces_between_special_tokens": False,
        }
        if request.seed is not None:
            body["seed"] = int(request.seed)
        if self.format.mode == "tags":
            body["stop_token_ids"] = self._tag_ids(request.factor)
        else:
            body["stop"] = [self.format.stop_string(request.factor)]
        return body

    def _tag_ids(self, factor: ThoughtFactor) -> list[int]:
        ids = [self.tokenizer.single(t) for t in self.stop_strings(factor)]
        return sorted({i for i in ids if i is not None})

    def _read_choice(self, choice: dict[str, Any], factor: ThoughtFactor, limit: int) -> Step:
        logprobs = choice.get("logprobs") or {}
        ids = [_token_id(t) for t in logprobs.get("tokens") or []]
        if any(i is None for i in ids):
            raise ServerError(f"generator server {self.pool.urls[0]} did not return token ids "
                              "(return_tokens_as_token_ids is a vLLM option)")
        values = [lp for lp in logprobs.get("token_logprobs") or [] if lp is not None]
        text = choice.get("text") or ""
        finish, reason = choice.get("finish_reason"), choice.get("stop_reason")
        if finish == "length":
            stop = "context" if limit < self.max_step_tokens else "length"
        elif reason is None:
            stop = "eos"
        else:
            stop = "stop"
        cut = min((text.index(s) for s in self.stop_strings(factor) if s and s in text), default=None)
        if cut is not None:
            text = text[:cut]
        return self.new_step(factor, [int(i) for i in ids if i is not None], float(sum(values)), stop, text)

    def _child_ids(self, context: list[int], step: Step, factor: ThoughtFactor) -> list[int] | None:
        """The child's prefix ids (`PromptIds.child_ids`); none after EOS or at the context's end."""
        ids = [int(i) for i in step.meta.get("token_ids") or []]
        if step.meta.get("stop") in ("eos", "context") or not ids:
            return None
        return self.child_ids(context, factor, ids, step.text)


def _prompt_logprob(row: dict[str, Any] | None, token: int) -> float:
    """One prompt position's logprob of `token` from vLLM's prompt_logprobs entry ({"id": {"logprob": ..}})."""
    if not row:
        return -math.inf
    entry = row.get(str(token))
    if entry is None:
        return -math.inf
    return float(entry["logprob"] if isinstance(entry, dict) else entry)


# -- the PRM ---------------------------------------------------------------------------------------------------------
class ServerPRM:
    """A Scorer over vLLM's pooling endpoint (`engine serve --pooling`): `POST /pooling` with task token_classify.

    Token-classification PRMs (TRL style): BOS, the question, then each step followed by the separator, each piece
    tokenized on its own as `TokenClassificationPRM` does; label 1's probability at each separator's last token.
    Qwen2.5-Math-PRM style (`adapter="qwen-prm"`): the chat template with steps joined by `<extra_0>`, label 1's
    probability at each separator. The adapter, separator and BOS token are read from the served model's own
    directory (prm_config.json, tokenizer_config.json) when the server runs on this machine.
    """

    def __init__(self, urls: str, *, adapter: str | None = None, options: ServerOptions | None = None,
                 separator: str | None = None, batch_tokens: int = PRM_BATCH_TOKENS):
        self.pool = ServerPool(urls, role="PRM", options=options)
        self.path = urls
        self.name = self.pool.model_name
        self.tokenizer = _Tokenizer(self.pool)
        local = self._local_config()
        self.adapter = adapter or local.get("adapter") or "token-classification"
        if self.adapter not in ("token-classification", "qwen-prm"):
            raise ServerError(f"PRM adapter {self.adapter!r} is not served over /pooling; use token-classification "
                              "or qwen-prm")
        default_sep = "<extra_0>" if self.adapter == "qwen-prm" else "\n"
        self.separator = separator or local.get("separator") or default_sep
        self.bos = local.get("bos_token")
        self.batch_tokens = batch_tokens
        self.max_positions = self.pool.max_model_len
        if self.adapter == "qwen-prm" and self.tokenizer.single(self.separator) is None:
            raise ServerError(f"PRM server {self.pool.urls[0]}: its tokenizer has no single token for the step "
                              f"separator {self.separator!r}")

    def _local_config(self) -> dict[str, Any]:
        """prm_config.json and the BOS token of the served model's directory, when it is on this machine."""
        root = Path(self.pool.root) if self.pool.root else None
        if root is None or not root.is_dir():
            return {}
        out: dict[str, Any] = {}
        for name in ("prm_config.json", "tokenizer_config.json"):
            try:
                data = json.loads((root / name).read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue
            if name == "prm_config.json" and isinstance(data, dict):
                out.update({k: v for k, v in data.items() if k in ("adapter", "separator")})
            elif isinstance(data, dict) and isinstance(data.get("bos_token"), str):
                out["bos_token"] = data["bos_token"]
        return out

    def provenance(self) -> dict[str, Any]:
        return {"name": self.name, "server": self.pool.urls, "model_root": self.pool.root, "adapter": self.adapter,
                "separator": self.separator, "engine": "openai-server-pooling"}

    def close(self) -> None:
        self.pool.close()

    def encode(self, question: str, steps: Sequence[str]) -> tuple[list[int], list[int]]:
        """The path's ids and reading positions (`prm_paths`, as the local adapters build them)."""
        if self.adapter == "qwen-prm":
            ids = self.tokenizer.chat(qwen_prm_messages(question, steps, self.separator))
            sep_id = self.tokenizer.single(self.separator)
            return ids, ([] if sep_id is None else positions_of(ids, sep_id))
        bos = self.tokenizer.single(self.bos) if self.bos is not None else None
        sep = self.tokenizer.encode(self.separator, special=False)
        return separated_path(lambda text: self.tokenizer.encode(text, special=False), bos, question, steps, sep)

    def score(self, problem: Problem, paths: Sequence[Sequence[str]]) -> list[list[float]]:
        question = get_domain(problem.domain).prompt(problem)
        encoded = [fit_path(*self.encode(question, list(p)), self.max_positions) for p in paths]
        out: list[list[float]] = [[] for _ in paths]
        live = [i for i, p in enumerate(paths) if p]
        for group in chunks(live, [len(encoded[i][0]) for i in live], self.batch_tokens):
            rows = [encoded[live[g]] for g in group]
            data = self.pool.post("/pooling", {"input": [ids for ids, _ in rows], "task": "token_classify"},
                                  key=problem.text)
            items = sorted(data["data"], key=lambda d: d.get("index", 0))
            for g, item in zip(group, items, strict=True):
                out[live[g]] = _read_pooled(item["data"], encoded[live[g]][1])
        return out

    def score_last(self, problem: Problem, paths: Sequence[Sequence[str]]) -> list[float]:
        return [scores[-1] for scores in self.score(problem, paths)]


def _read_pooled(rows: list, positions: list[int]) -> list[float]:
    """Label 1's probability at each position; a server that pooled only the step positions returns one row each."""
    per_step = len(rows) == len(positions) and len(rows) != 0 and positions and positions[-1] >= len(rows)

    def good(row) -> float:
        value = row[1] if isinstance(row, list) and len(row) > 1 else (row[0] if isinstance(row, list) else row)
        return min(1.0, max(0.0, float(value)))

    if per_step:
        return [good(r) for r in rows]
    return [good(rows[p]) if 0 <= p < len(rows) else NEUTRAL for p in positions]
