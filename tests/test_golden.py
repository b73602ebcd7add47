"""Golden cases: every real Jekyll/feedx fixture and seeds 000, 001, 003.

tests/data/golden.json holds, per file, what a reader of the file sees in it: the title,
link, published time (the marker's) in UTC, outlet and author of the front matter, and the
start of the first and the end of the last sentence of the article. Beyond those, every
paragraph of the original body that is not boilerplate must survive cleaning, and no phrase
of tests/data/boilerplate.txt may.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from bs4 import BeautifulSoup

from crawler.cleaners import clean
from crawler.normalize import normalize, plain_text
from crawler.parsers.jekyll import parse_post

DATA = Path(__file__).parent / "data"
GOLDEN: dict[str, dict[str, Any]] = json.loads((DATA / "golden.json").read_text("utf-8"))
PHRASES = [line.split("\t")[0].strip() for line in
           (DATA / "boilerplate.txt").read_text(encoding="utf-8").splitlines()
           if line.strip() and not line.startswith("#")]
NOW = datetime(2026, 1, 1, tzinfo=UTC)
CNA_CODE = re.compile(r"(?<=[）)])\s*\d{7}$")


def squeeze(text: str) -> str:
    return "".join(text.split())


@pytest.mark.parametrize("name", [pytest.param(n, id=n.split("/")[-1][:60]) for n in GOLDEN])
def test_golden(name: str) -> None:
    """Fields as the file states them; the body's first and last sentences; nothing lost."""
    expected = GOLDEN[name]
    raw = (DATA / name).read_text(encoding="utf-8")
    item = clean(parse_post(raw, NOW))
    article = normalize(item, item.link or "")
    assert article.title == expected["title"]
    assert article.link == expected["link"]
    assert article.published == datetime.fromisoformat(expected["published"])
    if expected["outlet"]:
        assert expected["outlet"] in article.tags
    assert article.author == expected["author"]
    text = plain_text(article.content_html)
    assert squeeze(expected["first"]) in squeeze(text[:400])
    assert squeeze(expected["last"]) in squeeze(text[-400:])
    for phrase in PHRASES:
        assert phrase not in article.content_html, phrase
    kept = squeeze(text)
    body = raw.split("\n------\n", 1)[-1]
    for paragraph in BeautifulSoup(body, "html.parser").find_all("p"):
        # The CNA publication code (ROC date, e.g. 1111022) is cut on purpose.
        words = CNA_CODE.sub("", paragraph.get_text(" ", strip=True))
        if len(words) >= 15 and not any(phrase in str(paragraph) for phrase in PHRASES):
            assert squeeze(words) in kept, f"lost paragraph: {words[:60]}"
