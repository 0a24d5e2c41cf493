"""Storage: sessions, trees, annotations and labels in SQLite or PostgreSQL, and labeled-trace export/import."""
from .records import (
    Action,
    Annotation,
    AutoLabel,
    ConflictError,
    ImportFormatError,
    LabeledTree,
    NodeState,
    NotFoundError,
    SessionInfo,
    StaleTreeError,
    StorageError,
)
from .store import Store

__all__ = [
    "Action", "Annotation", "AutoLabel", "ConflictError", "ImportFormatError", "LabeledTree", "NodeState",
    "NotFoundError", "SessionInfo", "StaleTreeError", "StorageError", "Store",
]
