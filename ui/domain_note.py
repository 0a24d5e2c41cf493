"""Say before a search runs when the problem is outside what the loaded models know.

The demo generator and PRM were trained on Countdown/24 only: on a word problem they write digit noise that the
PRM still scores, which looks like a search that works. The note names the way out (a general model directory or
a vLLM server). The text is the app's own (no model or user text in it), so it can be shown as Markdown.
"""
from __future__ import annotations

from pathlib import Path

from reasoning.manifest import DEMO_GENERATOR_DIR
from reasoning.problems import ProblemFormatError, parse_problem_text

OUT_OF_DOMAIN = (
    "**The loaded demo models know Countdown/24 only** (`Use 4 7 8 8 to make 24.`): on this problem they will "
    "write digit noise, and their scores mean nothing. For math word problems load a general model: "
    "`python app.py serve --generator DIR --prm DIR` (for example a Qwen2.5-Math generator with "
    "Qwen2.5-Math-PRM), or a vLLM server: `--generator http://HOST:PORT/v1`."
)


def is_demo_generator(generator_dir: str | None, default_dir: str) -> bool:
    """Whether a search with this generator directory (blank: the app's default) runs on the demo generator."""
    path = (generator_dir or "").strip() or default_dir
    if not path or path.startswith(("http://", "https://")):
        return False
    try:
        return Path(path).expanduser().resolve() == DEMO_GENERATOR_DIR.resolve()
    except OSError:
        return False


def domain_note(problem_text: str | None, generator_dir: str | None, default_dir: str) -> str:
    """The warning to show under the problem box, or "" when the models fit the problem."""
    if not is_demo_generator(generator_dir, default_dir):
        return ""
    try:
        problem = parse_problem_text(problem_text or "")
    except ProblemFormatError:
        return ""
    return "" if problem.domain == "countdown" else OUT_OF_DOMAIN
