"""Print the story-clustering figures on the evaluation set (tests/data/stories/eval.yaml).

    .venv/bin/python bench/story_eval.py [--copy-threshold X] [--related-threshold Y]

Pair figures: each labelled pair through the two signals. Story figures: the whole set
stored through the real storage in a temporary SQLite file, the stories read back.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

import story_eval as ev  # noqa: E402

from crawler.types import StoryRules  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--copy-threshold", type=float, default=None)
    parser.add_argument("--related-threshold", type=float, default=None)
    args = parser.parse_args()
    rules = StoryRules()
    if args.copy_threshold is not None:
        rules = replace(rules, copy_threshold=args.copy_threshold)
    if args.related_threshold is not None:
        rules = replace(rules, related_threshold=args.related_threshold)
    items = ev.load()
    labelled = ev.pairs(items)
    counts = {label: sum(1 for *_, v in labelled if v == label)
              for label in (ev.COPY, ev.DEVELOPMENT, ev.DIFFERENT)}
    hard = sum(1 for a, b, v in labelled
               if v == ev.DIFFERENT and a.occasion and a.occasion == b.occasion)
    real_copies = sum(1 for a, b, v in labelled if v == ev.COPY and not a.derived
                      and not b.derived)
    print(f"{len(items)} items, {len(labelled)} pairs: {counts[ev.COPY]} copies "
          f"({real_copies} real, the rest derived), {counts[ev.DEVELOPMENT]} same-development, "
          f"{counts[ev.DIFFERENT]} different ({hard} of them same-occasion hard negatives)")
    print(f"rules: {rules}")
    copy, related = ev.pair_scores(items, rules)
    print(f"pairs  copy:            precision {copy.precision:.3f}  recall {copy.recall:.3f}"
          f"  ({copy.true_positives}/{copy.actual}, {copy.predicted} predicted)")
    print(f"pairs  same development: precision {related.precision:.3f}  recall "
          f"{related.recall:.3f}  ({related.true_positives}/{related.actual}, "
          f"{related.predicted} predicted)")
    with tempfile.TemporaryDirectory() as folder:
        stored = ev.story_scores(items, ev.stored_stories(items, Path(folder) / "s.db", rules))
    print(f"stored stories: precision {stored.precision:.3f}  copy recall "
          f"{stored.copy_recall:.3f}  same-development recall {stored.related_recall:.3f}")
    for a, b in stored.wrong:
        print(f"  wrongly together: {a} ~ {b}")
    for a, b in stored.missed:
        print(f"  missed: {a} ~ {b}")


if __name__ == "__main__":
    main()
