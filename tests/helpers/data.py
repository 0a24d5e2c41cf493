"""The sample data files the tests read (PRM800K and GSM8K samples), from the shared data folder beside the
checkout, else /work/shared/data."""
from __future__ import annotations

from pathlib import Path

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
if not DATA.is_dir():
    DATA = Path("/work/shared/data")
PRM800K = DATA / "prm800k_samples.jsonl"
GSM8K = DATA / "gsm8k_test.jsonl"
