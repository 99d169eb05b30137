"""Detection accuracy on the real-world corpus (tools/accuracy.py, ``make
accuracy``): the thresholds of readme/PATTERNS.md. Accuracy is a count, not a
timing, so the test asserts it."""

import pytest

from engine.patterns import load_patterns
from engine.scanner import DEFAULT_PATTERNS, Scanner
from tools.accuracy import evaluate, summarize
from tools.corpus import load_corpus

MIN_OVERALL = 0.95
MIN_PER_TYPE = 0.90
MIN_EXCERPTS_PER_TYPE = 6
MAX_FALSE_POSITIVES = 0.005


@pytest.fixture(scope="module")
def summary():
    return summarize(evaluate(load_corpus(), Scanner(load_patterns(DEFAULT_PATTERNS))))


def test_overall_accuracy(summary):
    assert summary["accuracy"] >= MIN_OVERALL


def test_every_type_with_enough_excerpts(summary):
    low = {kind: round(row["accuracy"], 3) for kind, row in summary["per_type"].items()
           if row["excerpts"] >= MIN_EXCERPTS_PER_TYPE and row["accuracy"] < MIN_PER_TYPE}
    assert low == {}


def test_false_positives_on_none_lines(summary):
    assert summary["false_positive_rate"] <= MAX_FALSE_POSITIVES
