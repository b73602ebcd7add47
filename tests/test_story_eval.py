"""Story clustering against the labelled evaluation set (tests/data/stories/eval.yaml).

Two measurements, both at the default thresholds (feeds.yaml's settings.stories):
- pairs: each labelled pair through the two signals (copy; related title and lead);
- stories: the whole set stored through Storage into a real SQLite file, in the set's
  order, one source per item, and the stories it made read back.
The README quotes the figures; `python bench/story_eval.py` prints them.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
import story_eval as ev

from crawler.types import StoryRules

RULES = StoryRules()


@pytest.fixture(scope="module")
def items() -> list[ev.Item]:
    return ev.load()


def test_the_set_has_what_it_claims(items: list[ev.Item]) -> None:
    """Enough of each label, across scripts, with hard negatives of the same occasion."""
    pairs = ev.pairs(items)
    copies = [(a, b) for a, b, label in pairs if label == ev.COPY]
    related = [(a, b) for a, b, label in pairs if label == ev.DEVELOPMENT]
    hard = [(a, b) for a, b, label in pairs
            if label == ev.DIFFERENT and a.occasion and a.occasion == b.occasion]
    assert len(copies) >= 25 and sum(not a.derived and not b.derived for a, b in copies) >= 5
    assert len(related) >= 15
    assert len(hard) >= 15
    assert len(items) >= 150


def test_pairs_meet_the_targets(items: list[ev.Item]) -> None:
    copy, related = ev.pair_scores(items, RULES)
    assert copy.precision >= 0.98 and copy.recall >= 0.95, copy
    assert related.precision >= 0.95 and related.recall >= 0.70, related


def test_hard_negatives_stay_apart(items: list[ev.Item]) -> None:
    """The seeds' defense-talk stories, the congress's two developments, Parler's and QQ's
    separate turns: no pair of them is called one story."""
    for a, b, label in ev.pairs(items):
        if label == ev.DIFFERENT and a.occasion and a.occasion == b.occasion:
            assert ev.predict(a.article, b.article, RULES) == ev.DIFFERENT, (a.id, b.id)


def test_stored_stories_meet_the_targets(items: list[ev.Item], tmp_path: Path) -> None:
    """The set through the real storage: the stories it forms, pair by pair."""
    found = ev.story_scores(items, ev.stored_stories(items, tmp_path / "stories.db", RULES))
    assert found.precision >= 0.95, found.wrong
    assert found.copy_recall >= 0.95, found.missed
    assert found.related_recall >= 0.70, found.missed


def test_a_stricter_threshold_is_obeyed(items: list[ev.Item], tmp_path: Path) -> None:
    """settings.stories is what decides: with the related signal off, only copies join."""
    strict = StoryRules(related_threshold=1.0)
    found = ev.story_scores(items, ev.stored_stories(items, tmp_path / "strict.db", strict))
    assert found.copy_recall >= 0.95
    assert found.related_recall < 0.2
