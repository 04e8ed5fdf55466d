"""Every relative link in README.md and docs/*.md points at a file that exists, and every
backticked `docs/...md` path names one (the docs once linked a protocol file that was not
in the repository)."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LINK = re.compile(r"\]\(([^)\s]+)\)")
DOC_PATH = re.compile(r"`(docs/[\w./-]+\.md)`")


def _documents() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def broken_links(document: Path) -> list[str]:
    text = document.read_text(encoding="utf-8")
    broken = []
    for target in LINK.findall(text):
        if re.match(r"[a-z]+:", target) or target.startswith("#"):
            continue  # web addresses and anchors in the same page
        path = target.split("#", 1)[0]
        if not (document.parent / path).exists():
            broken.append(target)
    broken += [path for path in DOC_PATH.findall(text) if not (ROOT / path).exists()]
    return broken


def test_relative_links_in_readme_and_docs_resolve():
    problems = {doc.relative_to(ROOT).as_posix(): broken_links(doc) for doc in _documents()}
    assert {doc: links for doc, links in problems.items() if links} == {}


def test_the_checker_finds_a_broken_link(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("[ok](page.md) [gone](missing.md) [web](https://example.org) [here](#top) `docs/nope.md`\n")
    assert broken_links(page) == ["missing.md", "docs/nope.md"]
