"""Emitters: a :class:`~crawler.types.FeedView` → bytes of one format, built with a real
XML or JSON library (never string templates). Registered by the URL suffix they serve."""

from __future__ import annotations

from collections.abc import Callable

from crawler.emitters._ids import entry_id
from crawler.emitters.atom import emit_atom
from crawler.emitters.jsonfeed import emit_json
from crawler.emitters.rss import emit_rss
from crawler.types import FeedView

Emitter = Callable[[FeedView], bytes]

EMITTERS: dict[str, tuple[Emitter, str]] = {
    "xml": (emit_rss, "application/rss+xml; charset=utf-8"),
    "atom": (emit_atom, "application/atom+xml; charset=utf-8"),
    "json": (emit_json, "application/feed+json; charset=utf-8"),
}


__all__ = ["EMITTERS", "Emitter", "entry_id"]
