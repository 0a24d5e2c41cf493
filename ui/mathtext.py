"""Model and imported text as Markdown source for a read-only rendered view: LaTeX typeset by KaTeX, everything else
inert text.

The page renders the source with `gr.Markdown(latex_delimiters=LATEX_DELIMITERS)`: Gradio cuts the math segments
out by their delimiters before its Markdown parser runs, puts them back HTML-escaped, sanitizes the HTML, then
KaTeX's auto-render typesets the `\\( \\)` and `\\[ \\]` segments (with KaTeX's `trust` off). This module makes that
path safe and faithful whatever the text holds:

- math written as `$...$`, `$$...$$`, `\\(...\\)` or `\\[...\\]` is found here (pandoc's rule for a single `$`: no
  space inside either end, no digit right after the closing one, so "$5 and $6" stays money) and written back with
  the `\\( \\)` / `\\[ \\]` delimiters only; `$` is no delimiter on the page, so `$\\$1.24$` keeps its escaped dollar;
- a segment that calls a link, URL, HTML or image command (`\\href`, `\\url`, `\\html...`, `\\includegraphics`,
  `\\csname`), holds a delimiter of its own, or is empty, is not math: it is shown as text, like the rest;
- text outside math becomes character references (every ASCII punctuation mark, `<`, `>`, `&`), so no Markdown
  syntax (emphasis in `8*3*1`, links, images, lists, headings, autolinks) and no HTML can form; a backslash outside
  math sits in its own `<span>`, so KaTeX, which reads the page's text, never finds a delimiter there.
"""
from __future__ import annotations

import re

# The page's delimiters (display first); only these are typeset.
LATEX_DELIMITERS = [
    {"left": "\\[", "right": "\\]", "display": True},
    {"left": "\\(", "right": "\\)", "display": False},
]
MAX_CHARS = 20_000  # one text's rendered source at most; the raw text beside it is whole
_UNSAFE_COMMAND = re.compile(r"\\(?:href|url|includegraphics|html[A-Za-z]*|csname)(?![A-Za-z])")
_DELIMITERS = ("\\(", "\\)", "\\[", "\\]")
_ASCII_PUNCT = frozenset("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~")
_BACKSLASH = "<span>&#92;</span>"


def plain(text: str, at_line_start: bool = True) -> str:
    """Markdown source that shows `text` exactly as text: every ASCII punctuation mark a character reference (no
    Markdown or HTML syntax can form), a backslash isolated in its own <span> (no math delimiter can form), and
    leading spaces non-breaking (no indented code block)."""
    out: list[str] = []
    line_start = at_line_start
    for ch in text:
        if ch == "\n":
            out.append("\n")
            line_start = True
            continue
        if line_start and ch in " \t":
            out.append("&#160;" * (4 if ch == "\t" else 1))
            continue
        line_start = False
        if ch == "\\":
            out.append(_BACKSLASH)
        elif ch in _ASCII_PUNCT:
            out.append(f"&#{ord(ch)};")
        elif ch == "\r" or (ord(ch) < 32 and ch != "\t"):
            continue  # control characters carry nothing to show
        else:
            out.append(ch)
    return "".join(out)


def _safe_math(content: str) -> bool:
    return bool(content.strip()) and not _UNSAFE_COMMAND.search(content) and not any(d in content for d in
                                                                                    _DELIMITERS)


def _closes(text: str, j: int, right: str, dollar: bool) -> bool:
    if not text.startswith(right, j):
        return False
    return not dollar or (not text[j - 1].isspace() and not (j + 1 < len(text) and text[j + 1].isdigit()))


def _close(text: str, start: int, right: str, *, dollar: bool = False) -> int:
    """The index of `right` closing a segment whose content starts at `start`, or -1. As KaTeX reads it: `right`
    counts only outside braces, and a backslash takes the next character with it. A single `$` follows pandoc's
    rule besides (no space before it, no digit after it, no blank line inside)."""
    if dollar and (start >= len(text) or text[start].isspace()):
        return -1
    j, depth = start, 0
    while j < len(text):
        ch = text[j]
        if depth <= 0 and _closes(text, j, right, dollar):
            return j
        if ch == "\\":
            j += 2
            continue
        if dollar and text.startswith("\n\n", j):
            return -1  # inline math does not cross a blank line
        depth += {"{": 1, "}": -1}.get(ch, 0)
        j += 1
    return -1


def _segment(text: str, i: int) -> tuple[str, str, int] | None:
    """The math segment that opens at `i` as (kind, content, index after it), or None."""
    if text.startswith("$$", i):
        j = _close(text, i + 2, "$$")
        return ("display", text[i + 2:j], j + 2) if j > i + 2 else None
    if text[i] == "$":
        j = _close(text, i + 1, "$", dollar=True)
        return ("inline", text[i + 1:j], j + 1) if j > i + 1 else None
    if text.startswith(("\\(", "\\["), i):
        right = "\\)" if text[i + 1] == "(" else "\\]"
        j = _close(text, i + 2, right)
        return ("inline" if right == "\\)" else "display", text[i + 2:j], j + 2) if j > i + 2 else None
    return None


def split_math(text: str) -> list[tuple[str, str]]:
    """`text` cut into ("text", s), ("inline", latex) and ("display", latex) pieces, in order."""
    text = text.replace("\r\n", "\n")
    pieces: list[tuple[str, str]] = []
    buf: list[str] = []
    i = 0
    while i < len(text):
        if text.startswith("\\$", i):  # an escaped dollar outside math is a dollar
            buf.append("$")
            i += 2
            continue
        found = _segment(text, i)
        if found is None:
            buf.append(text[i])
            i += 1
            continue
        start = i
        kind, content, i = found
        if _safe_math(content):
            if buf:
                pieces.append(("text", "".join(buf)))
                buf.clear()
            pieces.append((kind, content))
        else:  # not math we typeset: the whole segment is text
            buf.append(text[start:i])
    if buf:
        pieces.append(("text", "".join(buf)))
    return pieces


def _latex(content: str) -> str:
    # `<` and `>` as commands: the segment holds no character that could start a tag, whoever parses it.
    return content.replace("<", "\\lt ").replace(">", "\\gt ")


def math_markdown(text: str | None, max_chars: int = MAX_CHARS) -> str:
    """Markdown source of `text` for a `gr.Markdown(latex_delimiters=LATEX_DELIMITERS, line_breaks=True)`: math
    typeset, everything else inert text (see the module's docstring)."""
    s = "" if text is None else str(text)
    if len(s) > max_chars:
        s = s[: max_chars - 1] + "…"
    out: list[str] = []
    for kind, part in split_math(s):
        if kind == "text":
            out.append(plain(part, not out or out[-1].endswith("\n")))
        elif kind == "inline":
            out.append(f"\\({_latex(part)}\\)")
        else:
            out.append(f"\\[{_latex(part)}\\]")
    return "".join(out)


__all__ = ["LATEX_DELIMITERS", "MAX_CHARS", "math_markdown", "plain", "split_math"]
