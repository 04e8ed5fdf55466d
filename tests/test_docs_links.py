"""Every relative link in README.md, docs/*.md and docs/research/*.md points at a file that
exists (and at a heading of it, for a link with #anchor), and every backticked
`docs/...md` path names one (the docs once linked a protocol file that was not in the
repository; sections moving between files break anchors)."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LINK = re.compile(r"\]\(([^)\s]+)\)")
DOC_PATH = re.compile(r"`(docs/[\w./-]+\.md)`")


def _documents() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), *sorted((ROOT / "docs" / "research").glob("*.md"))]


def anchors(document: Path) -> set[str]:
    """GitHub's anchors of a Markdown file's headings: lower case, punctuation dropped,
    spaces to hyphens."""
    found = set()
    for line in document.read_text(encoding="utf-8").splitlines():
        if line.startswith("#"):
            title = line.lstrip("#").strip().lower()
            found.add(re.sub(r"[^\w\- ]", "", title).replace(" ", "-"))
    return found


def broken_links(document: Path) -> list[str]:
    text = document.read_text(encoding="utf-8")
    broken = []
    for target in LINK.findall(text):
        if re.match(r"[a-z]+:", target) or target.startswith("#"):
            continue  # web addresses and anchors in the same page
        path, _, anchor = target.partition("#")
        if not (document.parent / path).exists():
            broken.append(target)
        elif anchor and path.endswith(".md") and anchor not in anchors(document.parent / path):
            broken.append(target)
    broken += [path for path in DOC_PATH.findall(text) if not (ROOT / path).exists()]
    return broken


def test_relative_links_in_readme_and_docs_resolve():
    problems = {doc.relative_to(ROOT).as_posix(): broken_links(doc) for doc in _documents()}
    assert {doc: links for doc, links in problems.items() if links} == {}


def test_the_checker_finds_a_broken_link(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("# Top `x`, y\n[ok](page.md) [gone](missing.md) [web](https://example.org) [here](#top) "
                    "[fine](page.md#top-x-y) [moved](page.md#gone) `docs/nope.md`\n")
    assert broken_links(page) == ["missing.md", "page.md#gone", "docs/nope.md"]
