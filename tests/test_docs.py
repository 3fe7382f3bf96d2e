"""The README and docs/ pages: every relative link and picture resolves, anchors included."""

from __future__ import annotations

import os
import re

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PAGES = ["README.md"] + sorted(os.path.join("docs", p) for p in os.listdir(os.path.join(ROOT, "docs"))
                               if p.endswith(".md"))  # fmt: skip
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")


def _anchors(path: str) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens."""
    with open(path, encoding="utf-8") as f:
        headings = [l.lstrip("#").strip() for l in f if l.startswith("#")]
    return {re.sub(r"[^\w\- ]", "", h.lower()).replace(" ", "-") for h in headings}


@pytest.mark.parametrize("page", PAGES)
def test_every_relative_link_and_picture_resolves(page):
    with open(os.path.join(ROOT, page), encoding="utf-8") as f:
        text = f.read()
    links = [l for l in LINK.findall(text) if not re.match(r"[a-z]+:", l)]
    for link in links:
        target, _, anchor = link.partition("#")
        path = os.path.normpath(os.path.join(ROOT, os.path.dirname(page), target)) if target else os.path.join(ROOT, page)
        assert os.path.exists(path), f"{page}: {link} does not exist"
        if anchor:
            assert anchor in _anchors(path), f"{page}: {link}: no such heading"


def test_the_readme_is_short_and_links_every_docs_page():
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as f:
        text = f.read()
    assert len(text.splitlines()) <= 110
    for page in PAGES[1:]:
        assert f"({page})" in text or f"({page}#" in text, f"README does not link {page}"
