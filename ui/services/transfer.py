"""Import and export from the web: validated options, a fresh folder per export, a validation report per import."""
from __future__ import annotations

import shutil
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import validate as v

KEEP_EXPORTS = 8


def id_list(value: Any) -> list[Any]:
    """Session ids from a list or from text such as `3, 5 8`."""
    if isinstance(value, str):
        return [x for x in value.replace(",", " ").split() if x]
    v.need(isinstance(value, list | tuple), "session ids must be a list")
    return list(value)


@dataclass
class Transfer:
    store: Any
    _root: Path | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def export(self, fmt: Any, *, labels: Any = "human", neutral: Any = "drop", soft: Any = False,
               all_paths: Any = False, session_ids: Any = None, file_format: Any = "jsonl",
               combine: Any = "latest", annotators: Any = None,
               out_dir: str | Path | None = None, preview: int = 5) -> tuple[Path, dict, list[dict]]:
        """Write an export file (and its manifest) to a fresh temporary folder: (path, manifest, first records).
        `annotators`: names separated by commas (or a list); blank: everyone's ratings."""
        from storage.export import FORMATS, WRITERS, export_records, write_export
        from storage.labels import COMBINES, NEUTRAL, SOURCES, LabelOptions

        fmt = v.choice(fmt, "format", list(FORMATS))
        file_format = v.choice(file_format, "file format", list(WRITERS))
        options = LabelOptions(labels=v.choice(labels, "labels", SOURCES), soft=v.flag(soft, "soft"),
                               neutral=v.choice(neutral, "neutral", list(NEUTRAL)),
                               all_paths=v.flag(all_paths, "all paths"),
                               combine=v.choice(combine, "combine", COMBINES),
                               annotators=annotator_list(annotators))
        ids = None if not session_ids else [v.session_id(s) for s in id_list(session_ids)]
        trees = self.store.labeled_trees(ids)
        folder = Path(out_dir) if out_dir else self._folder()
        out = folder / f"export-{fmt}.{'parquet' if file_format == 'parquet' else 'jsonl'}"
        manifest = write_export(trees, fmt, out, options, file_format=file_format)
        return out, manifest, export_records(trees, fmt, options)[:preview]

    def _folder(self) -> Path:
        """A new folder for one export under the app's export folder; only the newest KEEP_EXPORTS are kept."""
        with self._lock:
            if self._root is None:
                self._root = Path(tempfile.mkdtemp(prefix="rte-exports-"))
            old = sorted(self._root.iterdir(), key=lambda p: p.stat().st_mtime)
            for stale in old[: max(0, len(old) - KEEP_EXPORTS + 1)]:
                shutil.rmtree(stale, ignore_errors=True)
            return Path(tempfile.mkdtemp(dir=self._root))

    def validate_import(self, path: Any, fmt: Any = "auto") -> dict:
        """Read an import file without storing it: its format (`auto`: detected from its records, and `detected`
        says so), counts, or the first problem found (line and field)."""
        from storage.importers import read_batch, read_records, resolve_format

        with _uploaded(path):
            fmt, detected = resolve_format(path, _checked(path, fmt))
            batch = read_batch(list(read_records(path)), fmt, path)
        return {"format": fmt, "detected": detected, "problems": len(batch.problems), "sessions": len(batch.trees),
                "nodes": sum(len(t.tree) - 1 for t in batch.trees),
                "labels": sum(len(t.annotations) for t in batch.trees)}

    def import_file(self, path: Any, fmt: Any = "auto") -> dict:
        """Store an import file (`auto`: its format detected from its records); traces imported before are skipped.
        The report counts what was new apart from what was stored already, and `line` says so in words."""
        from storage.importers import import_file, import_line

        with _uploaded(path):
            report = import_file(self.store, path, _checked(path, fmt))
        return {**report, "line": import_line(report)}


@contextmanager
def _uploaded(path: Any) -> Iterator[None]:
    """An import's errors name the uploaded file by its own name, not by the server's copy of it
    (`/tmp/gradio/<hash>/name.jsonl`: where the server keeps uploads is none of the page's business)."""
    from storage import StorageError

    try:
        yield
    except (StorageError, ValueError, LookupError) as exc:
        if not isinstance(path, str | Path) or not str(path):
            raise
        raise v.UserError(str(exc).replace(str(path), Path(path).name)) from None


def _checked(path: Any, fmt: Any) -> str:
    """The format choice (a format, or `auto`) once the choice and the file are checked."""
    from storage.importers import AUTO, IMPORTERS

    fmt = v.choice(fmt, "format", [AUTO, *IMPORTERS])
    v.need(isinstance(path, str | Path) and Path(path).is_file(), "choose a file to import")
    return fmt


def annotator_list(value: Any) -> tuple[str, ...]:
    """Annotator names from a comma-separated text or a list of names (blank: none, meaning everyone)."""
    if value is None or value == "":
        return ()
    names = value.split(",") if isinstance(value, str) else value
    v.need(isinstance(names, list | tuple), f"annotators must be names separated by commas, got {value!r}")
    return tuple(v.annotator(n) for n in names if not isinstance(n, str) or n.strip())
