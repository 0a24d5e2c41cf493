"""The built-in demo: Countdown problem sets, the tiny generator and PRM trained here, and the scaling report."""
from __future__ import annotations

from .cli import (
    add_label_arguments,
    add_scaling_arguments,
    add_train_demo_arguments,
    label,
    run_scaling,
    train_demo,
)

__all__ = [
    "add_label_arguments", "add_scaling_arguments", "add_train_demo_arguments", "label", "run_scaling", "train_demo",
]
