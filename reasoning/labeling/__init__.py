"""Automatic step labels for any problem with a gold answer: Monte-Carlo rollouts and first-error search.

Pure algorithms over the Generator protocol and the domain's gold checker; storing the labels is storage's job.
"""
from .first_error import FirstError, find_first_error
from .rollouts import Estimate, RolloutConfig, Stopped, complete, estimate, reached_gold

__all__ = ["Estimate", "FirstError", "RolloutConfig", "Stopped", "complete", "estimate", "find_first_error",
           "reached_gold"]
