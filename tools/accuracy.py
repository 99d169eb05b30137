"""Measure detection on the real-world corpus (``make accuracy``).

Every entry of ``tests/corpus/`` is scanned on its own by the engine's real
detection, the code path ``bin/auto-heal detect`` takes
(:meth:`engine.scanner.Scanner.iter_findings`, then
:func:`engine.incidents.aggregate`). An entry is right when the set of types
it yields is exactly its ``# expect:`` set (empty for ``none``).

Usage::

    python -m tools.accuracy [--patterns FILE] [--misses] [--json]

It prints precision and recall per type, the confusion pairs, the false
positive rate on the ``none`` lines, overall accuracy, the same for Odoo 16+,
and how many incidents the corpus makes per distinct failure.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

if not __package__:  # run as a script: python tools/accuracy.py
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from engine.incidents import aggregate  # noqa: E402
from engine.patterns import load_patterns  # noqa: E402
from engine.scanner import DEFAULT_PATTERNS, Scanner  # noqa: E402
from tools.corpus import CORPUS_DIR, load_corpus  # noqa: E402

NONE = "none"


@dataclass
class Outcome:
    """What the engine said about one corpus entry."""

    entry: object
    predicted: tuple
    findings: list = field(default_factory=list)

    @property
    def expected(self):
        return () if self.entry.is_none else tuple(sorted(set(self.entry.expect)))

    @property
    def right(self):
        return self.predicted == self.expected


def label(types):
    return ",".join(types) if types else NONE


def detect(scanner, entry):
    """The findings the engine makes of *entry*, as a one-shot scan of its text."""
    return scanner.scan_bytes(entry.text.encode("utf-8"), path=entry.ident)


def evaluate(entries, scanner):
    outcomes = []
    for entry in entries:
        findings = detect(scanner, entry)
        predicted = tuple(sorted({f.pattern_type for f in findings}))
        outcomes.append(Outcome(entry, predicted, findings))
    return outcomes


def _ratio(part, whole):
    return part / whole if whole else None


def summarize(outcomes):
    """All figures as a dict (the ``--json`` output)."""
    types = sorted({t for o in outcomes for t in o.expected + o.predicted})
    per_type = {}
    for kind in types:
        tp = sum(1 for o in outcomes if kind in o.expected and kind in o.predicted)
        fp = sum(1 for o in outcomes if kind not in o.expected and kind in o.predicted)
        fn = sum(1 for o in outcomes if kind in o.expected and kind not in o.predicted)
        mine = [o for o in outcomes if kind in o.expected]
        per_type[kind] = {
            "excerpts": len(mine), "right": sum(1 for o in mine if o.right),
            "accuracy": _ratio(sum(1 for o in mine if o.right), len(mine)),
            "precision": _ratio(tp, tp + fp), "recall": _ratio(tp, tp + fn),
            "tp": tp, "fp": fp, "fn": fn,
        }
    confusion = Counter((label(o.expected), label(o.predicted)) for o in outcomes if not o.right)
    nones = [o for o in outcomes if o.entry.is_none]
    recent = [o for o in outcomes if (o.entry.band or 0) >= 16]
    return {
        "excerpts": len(outcomes),
        "accuracy": _ratio(sum(o.right for o in outcomes), len(outcomes)),
        "accuracy_16_plus": _ratio(sum(o.right for o in recent), len(recent)),
        "excerpts_16_plus": len(recent),
        "none_lines": len(nones),
        "false_positives_on_none": sum(1 for o in nones if not o.right),
        "false_positive_rate": _ratio(sum(1 for o in nones if not o.right), len(nones)),
        "per_type": per_type,
        "confusion": [{"expected": e, "predicted": p, "count": n}
                      for (e, p), n in confusion.most_common()],
        "fingerprints": fingerprint_stability(outcomes),
    }


def fingerprint_stability(outcomes):
    """Incidents per distinct failure.

    Entries that share a ``# failure:`` slug are one failure seen several
    times (other pids, ids, timestamps); every other entry with findings is a
    failure of its own. A failure makes as many incidents as its findings have
    distinct fingerprints; ideally one (two when it really holds two failures).
    ``split`` lists the failures that make more incidents than they have types.
    """
    groups = defaultdict(list)
    for outcome in outcomes:
        if outcome.entry.is_none or not outcome.findings:
            continue
        groups[outcome.entry.failure or outcome.entry.ident].append(outcome)
    made = {slug: len(aggregate([f for o in group for f in o.findings]))
            for slug, group in groups.items()}
    split = {slug: count for slug, count in made.items()
             if count > max(1, len(groups[slug][0].expected))}
    repeated = {slug: group for slug, group in groups.items() if len(group) > 1}
    incidents = sum(made.values())
    return {
        "failures": len(groups), "incidents": incidents,
        "incidents_per_failure": _ratio(incidents, len(groups)),
        "repeated_failures": len(repeated),
        "repeated_excerpts": sum(len(g) for g in repeated.values()),
        "repeated_incidents": sum(made[slug] for slug in repeated),
        "split": split,
    }


def _pct(value):
    return "   n/a" if value is None else f"{100 * value:5.1f}%"


def report(summary, outcomes, out, misses=False):
    write = out.write
    write(f"corpus: {summary['excerpts']} excerpts ({CORPUS_DIR})\n\n")
    write(f"{'type':<28} {'n':>4} {'right':>5} {'acc':>6} {'prec':>6} {'recall':>6}\n")
    for kind, row in summary["per_type"].items():
        write(f"{kind:<28} {row['excerpts']:>4} {row['right']:>5} {_pct(row['accuracy'])} "
              f"{_pct(row['precision'])} {_pct(row['recall'])}\n")
    write("\nconfusion (expected -> predicted):\n")
    for pair in summary["confusion"] or [{"expected": "-", "predicted": "-", "count": 0}]:
        write(f"  {pair['count']:>4}  {pair['expected']} -> {pair['predicted']}\n")
    write(f"\nfalse positives on none lines: {summary['false_positives_on_none']} of "
          f"{summary['none_lines']} ({_pct(summary['false_positive_rate']).strip()})\n")
    write(f"overall accuracy: {_pct(summary['accuracy']).strip()} of {summary['excerpts']}\n")
    write(f"Odoo 16+ accuracy: {_pct(summary['accuracy_16_plus']).strip()} of "
          f"{summary['excerpts_16_plus']}\n")
    prints = summary["fingerprints"]
    write(f"fingerprints: {prints['failures']} distinct failures detected make "
          f"{prints['incidents']} incidents ({prints['incidents_per_failure'] or 0:.2f} per "
          f"failure); {prints['repeated_failures']} failures seen in "
          f"{prints['repeated_excerpts']} excerpts make {prints['repeated_incidents']} "
          f"incidents\n")
    for slug, count in prints["split"].items():
        write(f"  split: {slug} -> {count} incidents\n")
    if misses:
        write("\nmisses:\n")
        for outcome in outcomes:
            if not outcome.right:
                write(f"  {outcome.entry.ident}: expected {label(outcome.expected)}, "
                      f"got {label(outcome.predicted)}\n")


def main(argv=None):
    parser = argparse.ArgumentParser(prog="accuracy", description=__doc__.split("\n\n")[0])
    parser.add_argument("--patterns", default=DEFAULT_PATTERNS, help="patterns file")
    parser.add_argument("--corpus", default=CORPUS_DIR, help="corpus folder")
    parser.add_argument("--misses", action="store_true", help="list every wrong entry")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)
    patterns = load_patterns(args.patterns)
    for error in patterns.errors:
        print(f"warning: {error}", file=sys.stderr)
    outcomes = evaluate(load_corpus(args.corpus), Scanner(patterns))
    summary = summarize(outcomes)
    if args.json:
        json.dump(summary, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        report(summary, outcomes, sys.stdout, misses=args.misses)
    return 0


if __name__ == "__main__":
    sys.exit(main())
