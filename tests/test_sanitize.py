"""HTML sanitizing: the 33 payloads of the hostile corpus come out inert."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from bs4 import BeautifulSoup

from crawler.sanitize import safe_url, sanitize_html

PAYLOADS = json.loads((Path(__file__).parent / "data" / "xss" / "payloads.json")
                      .read_text(encoding="utf-8"))
FORBIDDEN = {"script", "style", "iframe", "object", "embed", "form", "button", "input", "meta",
             "base", "link", "svg", "math", "noscript", "details", "template"}
URL_ATTRIBUTES = {"href", "src", "srcset", "action", "formaction", "xlink:href", "poster"}


def assert_inert(html: str) -> None:
    for tag in BeautifulSoup(html, "html.parser").find_all(True):
        assert tag.name not in FORBIDDEN, tag
        for name, value in tag.attrs.items():
            assert not name.lower().startswith("on"), tag
            assert name.lower() not in ("style", "class", "srcset"), tag
            if name.lower() in URL_ATTRIBUTES:
                cleaned = "".join(ch for ch in str(value) if ord(ch) > 32).lower()
                assert cleaned.startswith(("http://", "https://", "mailto:")), tag


@pytest.mark.parametrize("payload", [pytest.param(p, id=p["id"]) for p in PAYLOADS])
def test_payload_is_inert(payload: dict[str, str]) -> None:
    """After sanitizing: no active element, no handler, no style, only safe URL schemes."""
    assert_inert(sanitize_html(payload["html"], "https://news.example.test/a/1"))


def test_article_markup_survives() -> None:
    """Paragraphs, links, images and emphasis of a real article are kept; links absolute."""
    html = ('<p>中央社<strong>台北</strong>電</p><a href="/news/1">全文</a>'
            '<img src="img/a.jpg" alt="圖"><figure><figcaption>說明</figcaption></figure>')
    cleaned = sanitize_html(html, "https://www.cna.com.tw/news/aipl/2025.aspx")
    soup = BeautifulSoup(cleaned, "html.parser")
    assert soup.find("strong").text == "台北"
    assert soup.find("a")["href"] == "https://www.cna.com.tw/news/1"
    assert soup.find("a")["rel"] == ["noopener", "noreferrer", "nofollow"]
    assert soup.find("img")["src"] == "https://www.cna.com.tw/news/aipl/img/a.jpg"
    assert soup.find("figcaption").text == "說明"


@pytest.mark.parametrize(("url", "expected"), [
    pytest.param("javascript:alert(1)", None, id="javascript"),
    pytest.param("jav\tascript:alert(1)", None, id="tab-split"),
    pytest.param(" JaVaScRiPt:alert(1)", None, id="mixed-case-space"),
    pytest.param("data:text/html,<script>", None, id="data"),
    pytest.param("vbscript:x", None, id="vbscript"),
    pytest.param("//cdn.example/x.png", "https://cdn.example/x.png", id="protocol-relative"),
    pytest.param("mailto:a@b.example", "mailto:a@b.example", id="mailto"),
    pytest.param("http://[::1", None, id="broken-ipv6"),
])
def test_safe_url(url: str, expected: str | None) -> None:
    """Only http, https and mailto survive, resolved against the base."""
    assert safe_url(url, "https://base.example/a/") == expected


def test_tracking_parameters_leave_links_in_content() -> None:
    """utm_*, fbclid and friends are cut from links and images; real parameters stay."""
    cleaned = sanitize_html('<a href="https://e.example/a?id=7&utm_source=feedx&fbclid=Z">x</a>'
                            '<img src="https://e.example/i.jpg?w=640&utm_medium=rss">',
                            "https://e.example/")
    soup = BeautifulSoup(cleaned, "html.parser")
    assert soup.find("a")["href"] == "https://e.example/a?id=7"
    assert soup.find("img")["src"] == "https://e.example/i.jpg?w=640"
