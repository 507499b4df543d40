"""The README and the documentation pages render as CommonMark: every fence closes on a line of
its own, and every line that looks like a heading outside code is parsed as a heading."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from markdown_it import MarkdownIt

ROOT = Path(__file__).resolve().parents[1]
PAGES = [
    ROOT / "README.md",
    *sorted((ROOT / "docs").glob("*.md")),
    *ROOT.glob("examples/*/README.md"),
]
HEADING_LINE = re.compile(r"^#{1,6} \S")


def _tokens(text: str) -> list:
    return MarkdownIt("commonmark").enable("table").parse(text)


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_fence_closes_on_its_own_line(page: Path) -> None:
    lines = page.read_text().splitlines()
    for token in _tokens(page.read_text()):
        if token.type != "fence":
            continue
        start, end = token.map
        closing = lines[end - 1].strip() if end - 1 > start else ""
        assert (
            closing and set(closing) <= {token.markup[0]} and len(closing) >= len(token.markup)
        ), (
            f"{page.name}: the code fence opened on line {start + 1} does not close on a line of its own"
        )
        assert token.markup not in token.content, (
            f"{page.name}: the code block from line {start + 1} holds a fence marker, so a fence "
            "closes mid-line somewhere inside it"
        )


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_heading_lines_are_headings(page: Path) -> None:
    text = page.read_text()
    tokens = _tokens(text)
    # Where the author meant code to be: between lines that start with a fence marker.
    in_code: set[int] = set()
    fence = None
    for i, line in enumerate(text.splitlines()):
        stripped = line.lstrip()
        marker = stripped[:3] if stripped[:3] in ("```", "~~~") else None
        if fence is None and marker:
            fence = marker
        elif fence is not None and marker == fence:
            fence = None
        if fence is not None or marker:
            in_code.add(i)
    parsed = {t.map[0] for t in tokens if t.type == "heading_open" and t.map}
    expected = {
        i
        for i, line in enumerate(text.splitlines())
        if HEADING_LINE.match(line) and i not in in_code
    }
    missing = sorted(expected - parsed)
    assert not missing, (
        f"{page.name}: lines {[i + 1 for i in missing]} look like headings but do not parse as headings"
    )
    assert parsed, f"{page.name} has no heading"


def test_readme_sections_render_as_headings() -> None:
    """The README's main sections are headings, not text swallowed by an unclosed code block."""
    tokens = _tokens((ROOT / "README.md").read_text())
    titles = [
        tokens[i + 1].content
        for i, t in enumerate(tokens)
        if t.type == "heading_open" and t.tag == "h2"
    ]
    for section in ("Two commands", "Building models", "Results", "Plugins", "Layout"):
        assert section in titles, (
            f"README section {section!r} does not render as a heading: {titles}"
        )
