"""Who may do what: the roles of the auth file (`username:password[:role]`) and the one table of actions they allow.

viewer < annotator < admin. A viewer reads and exports; an annotator also rates, edits, writes steps, expands,
prunes, undoes, runs searches and runs; an admin also deletes and restores sessions, imports, switches the loaded
or active models and adjudicates. An app without a login (a local single-user app) treats everyone as an admin.
Pure: no Gradio; `ui.wiring.require` asks it for every request (ARCHITECTURE.md, "The explorer").
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from . import validate as v

ROLES = ("viewer", "annotator", "admin")  # in order of what they may do
DEFAULT_ROLE = "annotator"  # an auth-file line without a role (the files written before roles keep working)

# action -> (the least role that may do it, what it is called in a refusal)
ACTIONS: dict[str, tuple[str, str]] = {
    "rate": ("annotator", "rating a step"),
    "edit": ("annotator", "editing a step"),
    "human_step": ("annotator", "writing a step"),
    "expand": ("annotator", "expanding a step"),
    "prune": ("annotator", "pruning a subtree"),
    "undo": ("annotator", "undoing an action"),
    "search": ("annotator", "running a search"),
    "stop": ("annotator", "stopping a search"),
    "summarize": ("annotator", "summarizing a trace"),
    "rename": ("annotator", "renaming a session"),
    "autolabel": ("annotator", "labeling by rollouts"),
    "run": ("annotator", "starting or stopping a run"),
    "delete": ("admin", "deleting a session"),
    "restore": ("admin", "restoring a session"),
    "import": ("admin", "importing"),
    "models": ("admin", "switching the models"),
    "adjudicate": ("admin", "adjudicating"),
    "assign": ("admin", "assigning work or writing the guideline"),
}


class Refused(v.UserError):
    """An action the logged-in user's role does not allow (one line, nothing changed)."""


def parse_role(text: str, where: str) -> str:
    """A role named in an auth file; `where` (file:line) names the line in the refusal."""
    role = text.strip().lower()
    if role not in ROLES:
        raise ValueError(f"{where}: unknown role {text.strip()!r} (admin, annotator or viewer)")
    return role


@dataclass(frozen=True)
class Access:
    """The roles of the app's users: `roles` None for an app without a login (everyone is an admin)."""

    roles: dict[str, str] | None = field(default=None)

    @classmethod
    def from_auth(cls, auth: Sequence[tuple[str, ...]] | None) -> Access:
        """From the app's auth table: (user, password) or (user, password, role) rows."""
        if not auth:
            return cls(None)
        return cls({row[0]: (row[2] if len(row) > 2 else DEFAULT_ROLE) for row in auth})

    def role(self, user: str | None) -> str:
        if self.roles is None:
            return "admin"
        return self.roles.get(user or "", "viewer")  # a request without a known user may only read

    def allows(self, user: str | None, action: str) -> bool:
        least, _ = ACTIONS[action]
        return ROLES.index(self.role(user)) >= ROLES.index(least)

    def check(self, user: str | None, action: str) -> None:
        """Raise `Refused` (one line: what, the role it needs, who and what they are) unless `user` may."""
        if self.allows(user, action):
            return
        least, what = ACTIONS[action]
        role = self.role(user)
        raise Refused(f"{what} needs the {least} role; {user or 'this user'} is {_article(role)} {role}")


def _article(word: str) -> str:
    return "an" if word[:1] in "aeiou" else "a"
