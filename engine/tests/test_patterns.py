"""Loading the pattern database: clear errors, and the good patterns still load."""

import json

import pytest

from engine.fingerprint import fingerprint, normalize
from engine.patterns import PatternFileError, PatternSet, dump_patterns, load_patterns

GOOD = {"type": "db_deadlock", "regex": "deadlock detected", "severity": "high"}


def write(tmp_path, content, name="patterns.json"):
    path = tmp_path / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    return path


@pytest.mark.parametrize("entry, message", [
    ({"type": "bad_regex", "regex": "(?P<x>", "severity": "low"},
     "pattern 'bad_regex': regex: does not compile: missing ), unterminated subpattern"),
    ({"type": "bad_severity", "regex": "x", "severity": "urgent"},
     "pattern 'bad_severity': severity: must be one of low, medium, high, critical, "
     "not 'urgent'"),
    ({"type": "Bad Type", "regex": "x", "severity": "low"},
     "pattern 'Bad Type': type: must be a code"),
    ({"type": "unknown", "regex": "x", "severity": "low"},
     "pattern 'unknown': type: 'unknown' is reserved"),
    ({"type": "empty", "regex": "x*", "severity": "low"},
     "pattern 'empty': regex: matches the empty string"),
    ({"type": "both", "regex": "x", "check": "crons", "severity": "low"},
     "pattern 'both': regex: give either a regex or a check name"),
    ({"type": "levels", "regex": "x", "severity": "low", "levels": ["LOUD"]},
     "pattern 'levels': levels: unknown level 'LOUD'"),
    ({"type": "fields", "regex": "x", "severity": "low", "fingerprint_fields": ["path"]},
     "pattern 'fields': fingerprint_fields: 'path' is not a named group"),
    ({"type": "flag", "regex": "x", "severity": "low", "auto_fix": "yes"},
     "pattern 'flag': auto_fix: must be true or false"),
    ("just a string", "pattern '?': entry: must be an object"),
])
def test_a_bad_entry_names_the_pattern_and_the_others_still_load(tmp_path, entry, message):
    path = write(tmp_path, json.dumps({"patterns": [GOOD, entry]}))
    pattern_set = load_patterns(path)
    assert [p.type for p in pattern_set.patterns] == ["db_deadlock"]
    assert len(pattern_set.errors) == 1
    assert pattern_set.errors[0].startswith(message)


def test_duplicate_types_keep_the_first():
    pattern_set = PatternSet.from_entries([GOOD, dict(GOOD, severity="low")])
    assert [(p.type, p.severity) for p in pattern_set.patterns] == [("db_deadlock", "high")]
    assert pattern_set.errors == [
        "pattern 'db_deadlock': type: defined twice; the first one is kept"]


def test_inactive_patterns_and_checks_are_kept_apart():
    pattern_set = PatternSet.from_entries([
        GOOD,
        {"type": "off", "regex": "x", "severity": "low", "active": False},
        {"type": "cron_failing", "check": "cron_failing", "severity": "medium"},
    ])
    assert [p.type for p in pattern_set.patterns] == ["db_deadlock"]
    assert [p.type for p in pattern_set.checks] == ["cron_failing"]


@pytest.mark.parametrize("content, message", [
    (None, "patterns file not found: "),
    ("{not json", "is not valid JSON: Expecting property name enclosed in double quotes "
                  "at line 1 column 2"),
    ('["a list"]', 'must hold {"patterns": [...]}'),
    ('{"patterns": {}}', 'must hold {"patterns": [...]}'),
    (b'{"patterns": ["\xff"]}', "is not UTF-8"),
])
def test_an_unusable_file_is_one_clear_error(tmp_path, content, message):
    path = tmp_path / "missing.json" if content is None else write(tmp_path, content)
    with pytest.raises(PatternFileError) as raised:
        load_patterns(path)
    assert message in str(raised.value)
    assert "\n" not in str(raised.value)


def test_dump_round_trips(tmp_path):
    entries = [dict(GOOD, name="Deadlock", fingerprint_fields=[], levels=["ERROR"],
                    description="d", auto_fix=False, fix_script="", generic=False)]
    first = PatternSet.from_entries(entries).patterns
    path = write(tmp_path, dump_patterns(first))
    assert load_patterns(path).patterns == first


@pytest.mark.parametrize("a, b", [
    ("Worker (101) virtual memory limit (2147483648) reached.",
     "Worker (999) virtual memory limit (1073741824) reached."),
    ("_read_file reading /var/lib/odoo/filestore/prod/ab/ab12cd34ef56",
     "_read_file reading /opt/data/filestore/prod/0f/0f99aa88bb77"),
    ("Login failed for db:prod login:'admin' from 10.0.0.1",
     "Login failed for db:prod login:'bob' from 192.168.1.20"),
    ("request 6f1c2a8e-9b7d-4c3e-8a1f-0d2e3c4b5a69 at 2026-11-29 10:00:01",
     "request 00000000-1111-2222-3333-444444444444 at 2025-01-01T00:00:00Z"),
    ("object at 0x7f3a2b1c failed with code deadbeef12",
     "object at 0x10 failed with code 0123456789abcdef"),
])
def test_values_do_not_split_fingerprints(a, b):
    assert normalize(a) == normalize(b)
    assert fingerprint("x", a)[0] == fingerprint("x", b)[0]


def test_type_exception_and_fields_do_split_fingerprints():
    base = fingerprint("x", "m", exception=("ValueError", "bad 1"), fields={"xml_file": "/a.xml"})
    assert base[0] == fingerprint("x", "m", exception=("ValueError", "bad 2"),
                                  fields={"xml_file": "/a.xml"})[0]
    assert base[0] != fingerprint("y", "m", exception=("ValueError", "bad 1"),
                                  fields={"xml_file": "/a.xml"})[0]
    assert base[0] != fingerprint("x", "m", exception=("KeyError", "bad 1"),
                                  fields={"xml_file": "/a.xml"})[0]
    assert base[0] != fingerprint("x", "m", exception=("ValueError", "bad 1"),
                                  fields={"xml_file": "/b.xml"})[0]
