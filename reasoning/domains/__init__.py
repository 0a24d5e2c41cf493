"""Problem domains, a registry keyed by `Problem.domain`."""
from __future__ import annotations

from ..protocols import Domain
from .countdown import CountdownDomain
from .math import MathDomain

DOMAINS: dict[str, Domain] = {"math": MathDomain(), "countdown": CountdownDomain()}


def register(domain: Domain) -> None:
    DOMAINS[domain.name] = domain


def get_domain(name: str) -> Domain:
    try:
        return DOMAINS[name]
    except KeyError:
        raise ValueError(f"unknown domain {name!r}; known domains: {sorted(DOMAINS)}") from None
