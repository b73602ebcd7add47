"""Output rules → which sources an output draws from (pure; no SQL)."""

from __future__ import annotations

from crawler.types import Config, Output


def sources_for_output(config: Config, output: Output) -> tuple[str, ...] | None:
    """Source names the output includes; None means every source, past and present."""
    if not output.feeds and not output.tags:
        return None
    wanted = set(output.tags)
    names = dict.fromkeys(output.feeds)
    for source in config.sources:
        if wanted.intersection(source.tags):
            names.setdefault(source.name)
    return tuple(names)
