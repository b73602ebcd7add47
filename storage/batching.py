"""Long IN lists and many-row inserts go to the database in parts."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TypeVar

T = TypeVar("T")
CHUNK = 400  #: stays under SQLite's bound-parameter limit with room to spare


def chunks(values: Sequence[T]) -> Iterator[Sequence[T]]:
    """The values in parts of at most CHUNK; none for no values."""
    for start in range(0, len(values), CHUNK):
        yield values[start:start + CHUNK]
