"""The catalogue's table in docs/what-happens-when.md is the catalogue the suite runs."""

import os

from catalogue import kinds, render_table

DOC = os.path.join(os.path.dirname(__file__), "..", "..", "docs", "what-happens-when.md")


def test_the_docs_table_lists_every_kind_of_the_catalogue_with_its_count():
    with open(DOC, encoding="utf-8") as f:
        text = f.read()
    assert render_table() in text, "regenerate with: python tests/adversarial/catalogue.py"
    assert len(kinds()) == 7 and all(k.cases > 0 for k in kinds())
