"""Assigned work (`assignments`, `queue_marks`, `guidelines`): an admin assigns sessions to annotators, each session
to `overlap` of them (round robin) so that their agreement can be measured, and writes the guideline; an annotator
skips or flags (`badly split step`, `unsure`) steps of her queue. The queue itself is read by ui/services."""
from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from .models import AssignmentRow, GuidelineRow, QueueMarkRow, SessionRow
from .records import StorageError
from .store import Store

MARKS = ("skip", "flag")
FLAG_REASONS = ("badly split step", "unsure")


class Work:
    def __init__(self, store: Store):
        self.store = store

    def assign(self, session_ids: list[int], annotators: list[str], overlap: int, by: str) -> int:
        """Assign each session to `overlap` of `annotators` (round robin from the session's position), in one
        transaction; returns how many assignments are new (assigning again adds nothing)."""
        names = list(dict.fromkeys(a for a in annotators if a))
        if not names:
            raise StorageError("name at least one annotator to assign to")
        if not 1 <= overlap <= len(names):
            raise StorageError(f"overlap must be between 1 and the number of annotators ({len(names)})")

        def work(s: Session) -> int:
            found = set(s.scalars(select(SessionRow.id).where(SessionRow.id.in_(session_ids))))
            missing = [sid for sid in session_ids if sid not in found]
            if missing:
                raise StorageError(f"no session {missing[0]}")
            have = {(r.session_id, r.annotator) for r in s.scalars(
                select(AssignmentRow).where(AssignmentRow.session_id.in_(session_ids)))}
            new = 0
            for i, sid in enumerate(dict.fromkeys(session_ids)):
                for k in range(overlap):
                    who = names[(i + k) % len(names)]
                    if (sid, who) not in have:
                        s.add(AssignmentRow(session_id=sid, annotator=who, assigned_by=by))
                        have.add((sid, who))
                        new += 1
            return new

        return self.store._transact(work)

    def assigned(self, annotator: str) -> list[int]:
        """The sessions assigned to `annotator`, leaving out deleted ones (nobody can rate their steps)."""
        with self.store.read() as s:
            return list(s.scalars(select(AssignmentRow.session_id).join(
                SessionRow, SessionRow.id == AssignmentRow.session_id).where(
                AssignmentRow.annotator == annotator, SessionRow.deleted.is_(False)).order_by(AssignmentRow.session_id)))

    def assignees(self) -> dict[int, list[str]]:
        with self.store.read() as s:
            out: dict[int, list[str]] = {}
            for r in s.scalars(select(AssignmentRow).order_by(AssignmentRow.session_id, AssignmentRow.annotator)):
                out.setdefault(r.session_id, []).append(r.annotator)
            return out

    def mark(self, session_id: int, node_id: str, annotator: str, kind: str, reason: str = "") -> None:
        """Skip or flag a step for this annotator (a later mark replaces an earlier one)."""
        if kind not in MARKS:
            raise StorageError(f"mark must be one of {', '.join(MARKS)}")
        if kind == "flag" and reason not in FLAG_REASONS:
            raise StorageError(f"a flag's reason must be one of: {', '.join(FLAG_REASONS)}")

        def work(s: Session) -> None:
            row = s.get(QueueMarkRow, (session_id, node_id, annotator))
            if row is None:
                row = QueueMarkRow(session_id=session_id, node_id=node_id, annotator=annotator)
                s.add(row)
            row.kind, row.reason = kind, reason if kind == "flag" else ""

        self.store._transact(work)

    def marks(self, annotator: str, session_ids: list[int]) -> dict[tuple[int, str], tuple[str, str]]:
        with self.store.read() as s:
            rows = s.scalars(select(QueueMarkRow).where(QueueMarkRow.annotator == annotator,
                                                        QueueMarkRow.session_id.in_(session_ids)))
            return {(r.session_id, r.node_id): (r.kind, r.reason) for r in rows}

    def set_guideline(self, text: str, author: str) -> None:
        self.store._transact(lambda s: s.add(GuidelineRow(text=text, author=author)))

    def guideline(self) -> tuple[str, str]:
        """The current guideline's text and author ("", "" when none was written)."""
        with self.store.read() as s:
            row = s.scalars(select(GuidelineRow).order_by(GuidelineRow.id.desc()).limit(1)).first()
            return (row.text, row.author) if row else ("", "")
