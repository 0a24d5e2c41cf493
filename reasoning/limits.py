"""One set of limits for every way in (web UI, API, imports, command line, storage), and the text rule they share.

Why one module: the same step must be accepted or refused the same way whether it was typed in the inspector, sent
to `/edit_step`, imported from a PRM800K file or read from a problems file; a limit written twice drifts (the API
capped text at 4,000 characters while imports took a 1 MB step). Every layer imports these names; none restates them.

The text rule: NUL characters and lone UTF-16 surrogates are refused everywhere with one clear line. PostgreSQL
cannot store NUL in text at all and neither database nor any tokenizer can encode a lone surrogate as UTF-8, so
refusing them keeps a SQLite database movable to PostgreSQL and keeps such text from failing deep inside a model.
"""
from __future__ import annotations

import re

# -- sizes -------------------------------------------------------------------------------------------
MAX_PROBLEM_CHARS = 8000  # a problem statement (MATH's longest are about 4k characters)
MAX_STEP_CHARS = 4000  # one reasoning step, generated, edited, written or imported
MAX_NOTE_CHARS = 2000  # an annotator's note on a rating
MAX_NAME_CHARS = 200  # a session name, an annotator name
MAX_ANSWER_CHARS = 4000  # a problem's reference answer (GSM8K keeps its worked solution there)
MAX_ID_CHARS = 200  # a problem id (the column is 200 wide)
MAX_DEPTH = 150  # steps from the root: node ids ("0.3.1...") stay under the 400-character column
MAX_STEP_TOKENS = 2048  # tokens one generated step may take
MAX_BUDGET = 4096  # default cap on a search's budget (REASONING_MAX_BUDGET may lower or raise it)
MAX_CANDIDATES = 64  # continuations sampled per expansion
MAX_EXPAND = 16  # children one "expand" may sample
MAX_DB_INT = 2**31 - 1  # session ids, versions, seeds: PostgreSQL's INTEGER, so SQLite never holds more
MAX_IMPORT_BYTES = 2 * 1024**3  # an import file (read whole into memory)

# C0/C1 controls (but tab and newline), bidirectional overrides and isolates, zero-width marks: shown escaped
_UNSAFE_FOR_TERMINAL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2066-\u2069\u061c\ufeff]")
_SURROGATE = re.compile("[\ud800-\udfff]")


class TextError(ValueError):
    """Text that breaks the shared rule (NUL, lone surrogate, too long); the message names the field."""


def check_text(value: object, what: str, limit: int, *, allow_empty: bool = False) -> str:
    """`value` if it is text within `limit` characters with no NUL or lone surrogate, else TextError naming `what`."""
    if not isinstance(value, str):
        raise TextError(f"{what} must be text, got {type(value).__name__}")
    if not allow_empty and (not value or value.isspace()):
        raise TextError(f"{what} is empty")
    if len(value) > limit:
        raise TextError(f"{what} is too long ({len(value)} characters, at most {limit})")
    return check_encodable(value, what)


def check_encodable(value: str, what: str) -> str:
    """`value` unless it holds a NUL or a lone surrogate (no length rule): what both databases can store alike."""
    at = value.find("\x00")
    if at < 0 and value.isascii():  # the common case, without a regex scan
        return value
    if at >= 0:
        raise TextError(f"{what} contains a NUL character (\\x00) at position {at}; remove it "
                        "(the databases cannot store it alike)")
    m = _SURROGATE.search(value)
    if m:
        raise TextError(f"{what} contains a lone surrogate (\\u{ord(m.group()):04x}) at position {m.start()}; "
                        "it is not valid Unicode text")
    return value


def model_text(text: str) -> str:
    """Model output under the same rule, repaired instead of refused: a NUL or a lone surrogate becomes U+FFFD.
    A byte-level tokenizer can decode a sampled token to a NUL byte; that must not fail the search that sampled it,
    and what is stored is then the same on both databases."""
    if "\x00" not in text and text.isascii():
        return text
    return _SURROGATE.sub("\ufffd", text.replace("\x00", "\ufffd"))


def terminal_safe(text: str) -> str:
    """`text` with control characters, bidirectional overrides and zero-width marks written as `\\uXXXX`, so a
    problem or step printed to a terminal shows what it holds instead of reordering or hiding the line."""
    return _UNSAFE_FOR_TERMINAL.sub(lambda m: f"\\u{ord(m.group()):04x}", _SURROGATE.sub("\ufffd", text))
