"""fail2ban-style proof for every default pattern.

Each ``tests/samples/<type>.log`` holds log fragments, each preceded by its
expectation::

    # expect: cron_field_deprecated    -> classifies as exactly this type, once
    # expect: cron_field_deprecated {"xml_file": "/srv/a/cron.xml", "xml_line": "3"}
    #                                  -> ... and captures these values (null: nothing)
    # expect: none                     -> no finding at all (a near miss)
    # expect: unknown                  -> an error no pattern matches

Other lines starting with ``# `` are comments. Every pattern in
data/patterns.json must have positive samples and near misses, every backend
must agree, and a positive sample must match exactly one specific pattern.
Every alternative of a pattern must match one of the pattern's positive
samples (one generated test per alternative), name the Odoo source of its
wording, and compile in RE2.
"""

import glob
import json
import os
import re

import pytest

from engine import matcher as matcher_module
from engine.patterns import UNKNOWN, load_patterns, read_entries
from engine.records import HEADER_START
from engine.scanner import DEFAULT_PATTERNS, REPO_ROOT, Scanner

SAMPLES = os.path.join(REPO_ROOT, "tests", "samples")
EXPECT = re.compile(r"^# expect: (?P<kind>[a-z][a-z0-9_]*)(?:\s+(?P<captures>\{.*\}))?\s*$")
#: A line that means to be an expectation; one that EXPECT does not parse is an error.
EXPECT_LIKE = re.compile(r"^#\s*expect\b")
BACKENDS = [name for name, module in (("hyperscan", matcher_module.hyperscan),
                                      ("re2", matcher_module.re2), ("re", True)) if module]


def parse_expectation(text, where):
    """(type, captures or None) of an ``# expect:`` line; ValueError when malformed.

    >>> parse_expectation('# expect: x {"path": "/a", "uid": null}', "f:1")
    ('x', {'path': '/a', 'uid': None})
    >>> parse_expectation("# expect: x {path: /a}", "f:1")
    Traceback (most recent call last):
    ...
    ValueError: f:1: the captured values are not a JSON object: Expecting property name \
enclosed in double quotes
    """
    expect = EXPECT.match(text)
    if not expect:
        raise ValueError(f"{where}: not an expectation: # expect: <type> [{{JSON captures}}]")
    captures = None
    if expect["captures"]:
        try:
            captures = json.loads(expect["captures"])
        except json.JSONDecodeError as exc:
            raise ValueError(f"{where}: the captured values are not a JSON object: "
                             f"{exc.msg}") from None
        if not all(isinstance(v, (str, type(None))) for v in captures.values()):
            raise ValueError(f"{where}: captured values are strings or null")
    return expect["kind"], captures


def read_samples():
    """[(file, line, expected type, fragment bytes, captures)] from every sample file."""
    samples = []
    for path in sorted(glob.glob(os.path.join(SAMPLES, "*.log"))):
        name = os.path.relpath(path, REPO_ROOT)
        current = None
        with open(path, "rb") as handle:
            for number, raw in enumerate(handle, 1):
                text = raw.decode("utf-8", "replace").rstrip("\n")
                if EXPECT_LIKE.match(text):
                    kind, captures = parse_expectation(text, f"{name}:{number}")
                    current = [name, number, kind, b"", captures]
                    samples.append(current)
                elif text.startswith("# ") or text == "#":
                    continue
                elif current is not None:
                    current[3] += raw
    return [tuple(sample) for sample in samples]


SAMPLE_LIST = read_samples()
SAMPLE_IDS = [f"{f}:{n}" for f, n, *_ in SAMPLE_LIST]
PATTERN_SET = load_patterns(DEFAULT_PATTERNS)
ALTERNATIVES = [(p.type, number, alternative)
                for p in PATTERN_SET.patterns
                for number, alternative in enumerate(p.alternatives, 1)]


def test_the_default_patterns_load_without_errors():
    assert PATTERN_SET.errors == []
    assert len(PATTERN_SET.patterns) >= 24


def test_every_pattern_has_positive_samples_and_near_misses():
    expected = {kind for _, _, kind, *_ in SAMPLE_LIST}
    missing = [p.type for p in PATTERN_SET.patterns if p.type not in expected]
    assert missing == []
    for pattern in PATTERN_SET.patterns:
        path = os.path.join(SAMPLES, f"{pattern.type}.log")
        kinds = [kind for file, _, kind, *_ in SAMPLE_LIST
                 if file == os.path.relpath(path, REPO_ROOT)]
        assert kinds.count(pattern.type) >= 1, f"{pattern.type}: no positive sample in its file"
        assert "none" in kinds, f"{pattern.type}: no near miss (# expect: none) in its file"


def test_every_expectation_names_a_known_type():
    known = {p.type for p in PATTERN_SET.patterns} | {UNKNOWN, "none"}
    assert [(f, n, k) for f, n, k, *_ in SAMPLE_LIST if k not in known] == []


def test_captured_values_are_named_groups_of_the_expected_pattern():
    by_type = PATTERN_SET.by_type()
    wrong = []
    for file, line, kind, _, captures in SAMPLE_LIST:
        if captures is None:
            continue
        if kind in ("none", UNKNOWN):
            wrong.append((file, line, "a none/unknown sample captures nothing"))
            continue
        names = {n.split("__")[0] for n in by_type[kind].compiled.groupindex}
        wrong += [(file, line, name) for name in captures if name not in names]
    assert wrong == []


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("file, line, expected, fragment, captures", SAMPLE_LIST, ids=SAMPLE_IDS)
def test_sample(file, line, expected, fragment, captures, backend):
    scanner = SCANNERS[backend]
    findings = scanner.scan_bytes(fragment, path=file)
    found = [f.pattern_type for f in findings]
    if expected == "none":
        assert found == [], f"{file}:{line} must not match"
    else:
        assert found == [expected], f"{file}:{line}"
    if captures:
        got = {name: findings[0].captures.get(name) for name in captures}
        assert got == captures, f"{file}:{line}: captured values"


@pytest.mark.parametrize("kind, number, alternative", ALTERNATIVES,
                         ids=[f"{kind}[{number}]" for kind, number, _ in ALTERNATIVES])
def test_every_alternative_matches_a_positive_sample(kind, number, alternative):
    """fail2ban's rule: an alternative that no sample proves is dead or wrong."""
    regex = re.compile(alternative, re.MULTILINE)
    positives = [(f, n, fragment) for f, n, k, fragment, _ in SAMPLE_LIST if k == kind]
    matched = [f"{f}:{n}" for f, n, fragment in positives
               if regex.search(fragment.decode("utf-8", "replace"))]
    assert matched, f"{kind} regex[{number}] matches none of its {len(positives)} samples"


def test_every_alternative_names_the_source_of_its_wording():
    missing = [f"{p.type}[{n}]" for p in PATTERN_SET.patterns
               for n, source in enumerate(p.sources, 1) if not source.strip()]
    assert missing == []


@pytest.mark.skipif(matcher_module.re2 is None, reason="google-re2 is not installed")
def test_every_alternative_compiles_in_re2():
    """The loader refuses an alternative RE2 rejects; prove it holds for the defaults."""
    options = matcher_module.re2.Options()
    options.log_errors = False
    refused = []
    for kind, number, alternative in ALTERNATIVES:
        try:
            matcher_module.re2.compile("(?m)" + alternative, options)
        except Exception as exc:  # re2's own error type
            refused.append(f"{kind}[{number}]: {exc}")
    assert refused == []
    assert all(isinstance(e["regex"], list) for e in read_entries(DEFAULT_PATTERNS)
               if not e.get("check")), "a default pattern skipped the per-alternative checks"


@pytest.mark.parametrize("backend", [b for b in BACKENDS if b != "re"])
def test_no_default_pattern_falls_back_to_python_re(backend):
    assert SCANNERS[backend].matcher.slow_patterns == []


@pytest.mark.parametrize("file, line, expected, fragment, captures",
                         [s for s in SAMPLE_LIST if s[2] not in ("none", UNKNOWN)],
                         ids=[f"{f}:{n}" for f, n, k, *_ in SAMPLE_LIST
                              if k not in ("none", UNKNOWN)])
def test_a_positive_sample_matches_one_specific_pattern(file, line, expected, fragment, captures):
    text = fragment.decode("utf-8", "replace")
    by_type = PATTERN_SET.by_type()
    if by_type[expected].generic:
        specific = [p.type for p in PATTERN_SET.patterns
                    if not p.generic and p.compiled.search(text)]
        assert specific == [], f"{file}:{line}: a generic sample also matches {specific}"
    else:
        specific = [p.type for p in PATTERN_SET.patterns
                    if not p.generic and p.compiled.search(text)]
        assert specific == [expected], f"{file}:{line}: ambiguous, matches {specific}"


def test_samples_are_odoo_records_or_raw_stderr():
    """Samples must look like what Odoo writes, so that the tests mean something."""
    for file, line, _, fragment, _ in SAMPLE_LIST:
        first = fragment.split(b"\n", 1)[0]
        assert fragment.strip(), f"{file}:{line}: empty fragment"
        assert HEADER_START.match(first) or not first[:4].isdigit(), \
            f"{file}:{line}: looks like a record header but does not parse"


SCANNERS = {backend: Scanner(PATTERN_SET, backend=backend) for backend in BACKENDS}
