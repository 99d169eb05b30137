"""The real-world corpus (tests/corpus/, README.md there) meets its coverage
rules: enough excerpts, recent versions, other languages and none lines, and
for every log pattern type enough excerpts from enough sources and versions.

Types that do not meet the per-type rule yet are listed in PENDING; the test
checks that each of them really is short, so the list can only shrink."""

import re
from collections import Counter

import pytest

from engine.patterns import UNKNOWN, load_patterns
from engine.scanner import DEFAULT_PATTERNS
from tools.corpus import FORMS, CorpusError, load_corpus, parse_corpus

CORPUS = load_corpus()
LOG_TYPES = [p.type for p in load_patterns(DEFAULT_PATTERNS).patterns]

#: Per-type rule: at least this many excerpts, from this many sources and versions.
MIN_EXCERPTS, MIN_SOURCES, MIN_VERSIONS = 6, 3, 2
#: Types still short of the per-type rule, and why (see tests/corpus/README.md).
PENDING = {
    "cron_job_deactivated": "new in 18.0 (ir_cron.py); no public thread quotes it yet",
    "view_tree_renamed": "new in 18.0: no 19.0 excerpt found yet (six 18.0 ones, four sources)",
}

_SOURCE = re.compile(r"^(?:https?://\S+|real Odoo 18\.0 run here: \S.*)$")


def of_type(kind):
    return [e for e in CORPUS if kind in e.expect]


def source_key(source):
    """Runs here all count as one source, whatever the script or run."""
    return "here" if source.startswith("real Odoo 18.0 run here") else source


def coverage(kind):
    entries = of_type(kind)
    return (len(entries), len({source_key(e.source) for e in entries}),
            len({e.band for e in entries if e.band}))


def meets(kind):
    count, sources, versions = coverage(kind)
    return count >= MIN_EXCERPTS and sources >= MIN_SOURCES and versions >= MIN_VERSIONS


def test_the_corpus_is_large_enough():
    assert len(CORPUS) >= 300


def test_half_of_it_comes_from_odoo_16_to_19():
    assert sum(1 for e in CORPUS if e.band is not None and 16 <= e.band <= 19) >= 150


def test_it_has_real_noise_to_measure_false_positives():
    assert sum(1 for e in CORPUS if e.is_none) >= 200


def test_it_has_excerpts_in_other_languages():
    assert sum(1 for e in CORPUS if e.lang != "en") >= 20


def test_it_keeps_every_form_admins_meet():
    assert set(FORMS) - {e.form for e in CORPUS} == set()


@pytest.mark.parametrize("kind", [t for t in LOG_TYPES if t not in PENDING])
def test_every_log_type_has_excerpts_from_several_sources_and_versions(kind):
    assert meets(kind), f"{kind}: (excerpts, sources, versions) = {coverage(kind)}"


@pytest.mark.parametrize("kind", sorted(PENDING))
def test_a_pending_type_is_really_short(kind):
    assert kind in LOG_TYPES, f"{kind} is no log pattern type"
    assert not meets(kind), f"{kind} meets the rule now: take it out of PENDING"


def test_every_expectation_names_a_type():
    known = set(LOG_TYPES) | {UNKNOWN, "none"}
    assert [(e.ident, e.expect) for e in CORPUS if not set(e.expect) <= known] == []


def test_every_source_is_an_address_or_a_run_here():
    assert [e.ident for e in CORPUS if not _SOURCE.match(e.source)] == []


def test_no_excerpt_is_there_twice():
    twice = [key for key, n in Counter((e.source, e.text) for e in CORPUS).items() if n > 1
             and not any(e.failure for e in CORPUS if (e.source, e.text) == key)]
    assert twice == []


@pytest.mark.parametrize("text, error", [
    ("# source: a\n# expect: none\nx\n", "lacks # version, # form"),
    ("# source: a\n# version: 16\n# form: bare\n# expect: none\nx\n", "is not like 16.0"),
    ("# source: a\n# version: 16.0\n# form: tweet\n# expect: none\nx\n", "form 'tweet'"),
    ("# source: a\n# version: 16.0\n# colour: red\n", "unknown header # colour:"),
    ("# source: a\n# version: 16.0\n# form: bare\nx\n# expect: none\n", "must end with # expect"),
    ("stray\n# source: a\n", "text before the first # source: line"),
])
def test_a_malformed_corpus_file_gets_a_one_line_error(text, error):
    with pytest.raises(CorpusError, match=re.escape(error)):
        parse_corpus(text, "bad.txt")
