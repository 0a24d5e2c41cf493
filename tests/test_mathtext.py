"""Math rendered safely (issue 13): ui.mathtext turns model and imported text into Markdown source in which only the
math is typeset and everything else is inert text. Pure tests on literal strings; the browser tests
(test_ui_browser_escape.py) check what KaTeX and the page make of it."""
from __future__ import annotations

import re

import pytest

from ui.mathtext import LATEX_DELIMITERS, math_markdown, plain, split_math

HOSTILE = [
    "<script>window.__xss = 1</script>",
    '<img src=x onerror="window.__xss = 2">',
    "\\href{javascript:alert(1)}{x}",
    "$\\href{javascript:alert(1)}{x}$",
    "\\(\\url{javascript:alert(2)}\\)",
    "$$\\htmlClass{x}{y} \\includegraphics{http://x.invalid/a.png}$$",
    "[x](javascript:alert(3)) ![i](http://x.invalid/i.png) <http://x.invalid> www.x.invalid a@x.invalid",
    "%%%LATEX_BLOCK_0%%% &lt;b&gt; &#60;i&#62; <!-- c -->",
]


def tags(source: str) -> list[str]:
    return re.findall(r"<[^>]*>", source)


def test_prm800k_money_and_fractions_are_math():
    assert split_math("cost $\\$1.24$. Five") == [("text", "cost "), ("inline", "\\$1.24"), ("text", ". Five")]
    assert math_markdown("$\\$1.24$") == "\\(\\$1.24\\)"
    assert math_markdown("half is $\\frac{1}{2}$") == "half is \\(\\frac{1}{2}\\)"
    assert math_markdown("$$x^2$$ and \\[y\\] and \\(z\\)") == "\\[x^2\\] and \\[y\\] and \\(z\\)"
    # only the page's own delimiters: `$` is none, so an escaped dollar inside math never ends it early
    assert [d["left"] for d in LATEX_DELIMITERS] == ["\\[", "\\("]


def test_dollars_that_are_money_stay_text():
    assert split_math("it costs $5 and $6 in total") == [("text", "it costs $5 and $6 in total")]
    assert split_math("\\$1.24 is \\$5") == [("text", "$1.24 is $5")]
    assert split_math("$ x$ and $x $") == [("text", "$ x$ and $x $")]
    assert split_math("$a\n\nb$") == [("text", "$a\n\nb$")], "inline math does not cross a blank line"


def test_arithmetic_and_markdown_syntax_outside_math_are_text():
    out = math_markdown("8*3*1 = 24 and _a_ `b` # c\n1. d\n    e\n> f | g |")
    assert "*" not in out and "_" not in out and "`" not in out and "#" not in out.replace("&#", "")
    assert "8&#42;3&#42;1 &#61; 24" in out
    assert "\n&#160;&#160;&#160;&#160;e" in out, "an indented line is no code block"
    assert "1&#46; d" in out, "a numbered line is no list"


@pytest.mark.parametrize("text", HOSTILE)
def test_hostile_text_is_inert(text):
    out = math_markdown(text)
    assert set(tags(out)) <= {"<span>", "</span>"}, "no tag but the backslash's own span"
    assert "javascript:" not in out and "](" not in out and "http:" not in out
    assert "%%%" not in out
    assert not re.search(r"\\(href|url|html|includegraphics)", out.replace("<span>&#92;</span>", "")), \
        "a link or HTML command is never handed to KaTeX"
    # nothing outside the typeset segments can open a delimiter KaTeX reads
    outside = re.sub(r"\\\((.*?)\\\)|\\\[(.*?)\\\]", "", out, flags=re.S)
    assert "\\" not in outside


def test_unsafe_math_is_shown_as_its_text():
    assert split_math("a $\\href{javascript:alert(1)}{x}$ b") == [("text", "a $\\href{javascript:alert(1)}{x}$ b")]
    assert split_math("\\(\\text{\\)}\\)") == [("text", "\\(\\text{\\)}\\)")], "a delimiter inside: text"
    assert math_markdown("$a<b>c$") == "\\(a\\lt b\\gt c\\)", "no character that could start a tag"


def test_plain_keeps_letters_and_marks_everything_else():
    assert plain("abc 123 é") == "abc 123 é"
    assert plain("a\\b") == "a<span>&#92;</span>b"
    assert plain("<&>") == "&#60;&#38;&#62;"
    assert len(math_markdown("x" * 50_000)) <= 20_001
