"""Outcome reward models: a sequence-classification model that scores a whole solution once.

Used to choose the answer among finished paths (`--answer-selection orm --orm DIR`): the search itself still runs on
the PRM's step scores; the ORM reads each final path (question, then the steps joined by newlines) and the path
with the highest outcome score gives the answer. A one-logit head reads as sigmoid(logit); a two-label head as
softmax(...)[1] ("good").
"""
from __future__ import annotations

import threading
from collections.abc import Sequence
from functools import cached_property
from pathlib import Path
from typing import Any

import torch

from ..digests import sha256_files
from ..domains import get_domain
from ..types import Problem
from .loading import (
    ModelLoadError,
    check_remote_code,
    device_and_dtype,
    load_model,
    load_tokenizer,
    max_positions,
    read_config,
    weight_files,
)


class SequenceClassificationORM:
    """One score in [0, 1] per whole solution, from a local sequence-classification model directory."""

    adapter = "sequence-classification"

    def __init__(self, path: str | Path, *, device=None, dtype=None, trust_remote_code: bool = False,
                 separator: str = "\n"):
        self.path, cfg = read_config(path)
        archs = cfg.get("architectures") or []
        if archs and not any(a.endswith("ForSequenceClassification") for a in archs):
            raise ModelLoadError(f"{self.path} is not a sequence-classification model (config says "
                                 f"{', '.join(archs)}); an ORM scores whole solutions")
        check_remote_code(self.path, cfg, trust_remote_code)
        self._weights = weight_files(self.path)
        self.name, self.separator = self.path.name, separator
        self.device, self.dtype = device_and_dtype(device, dtype)
        self.tokenizer = load_tokenizer(self.path, trust_remote_code)
        import transformers

        self.model = load_model(transformers.AutoModelForSequenceClassification, self.path, self.device, self.dtype,
                                trust_remote_code)
        if self.model.config.num_labels not in (1, 2):
            raise ModelLoadError(f"{self.path}: an ORM head needs 1 or 2 labels, it has {self.model.config.num_labels}")
        self.max_positions = max_positions(self.model.config)
        self._lock = threading.Lock()

    def encode(self, question: str, steps: Sequence[str]) -> list[int]:
        text = self.separator.join([question, *steps])
        with self._lock:
            ids = self.tokenizer.encode(text, add_special_tokens=True)
        if self.max_positions is not None and len(ids) > self.max_positions:
            ids = ids[-self.max_positions :]  # the end of a solution holds its answer
        return ids

    def score_outcomes(self, problem: Problem, paths: Sequence[Sequence[str]]) -> list[float]:
        """The outcome score of each whole path (one forward per path: no padding for the head to misread)."""
        question = get_domain(problem.domain).prompt(problem)
        out = []
        with torch.inference_mode():
            for path in paths:
                ids = torch.tensor([self.encode(question, list(path))], device=self.device)
                logits = self.model(input_ids=ids).logits[0].float()
                out.append(float(torch.sigmoid(logits[0]) if logits.numel() == 1 else torch.softmax(logits, -1)[1]))
        return out

    @cached_property
    def _weights_sha256(self) -> dict[str, str]:
        return sha256_files(self._weights)

    def provenance(self) -> dict[str, Any]:
        return {"name": self.name, "model_dir": str(self.path), "adapter": self.adapter,
                "model_type": self.model.config.model_type, "weights_sha256": self._weights_sha256,
                "dtype": str(self.dtype).removeprefix("torch."), "device": str(self.device)}


def load_orm(path: str | Path, *, device=None, dtype=None, trust_remote_code: bool = False
             ) -> SequenceClassificationORM:
    return SequenceClassificationORM(path, device=device, dtype=dtype, trust_remote_code=trust_remote_code)
