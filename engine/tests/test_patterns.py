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


# Alternatives and definitions (fail2ban style)

LISTED = {"type": "view_error", "severity": "high", "fingerprint_fields": ["xml_file"],
          "regex": [{"regex": "%(at)s, near", "source": "14.0 odoo/tools/convert.py"},
                    {"regex": "%(at)s, somewhere inside", "source": "18.0 odoo/tools/convert.py"},
                    "View error: %(where)s"]}
SHARED = {"at": r"while parsing (?P<xml_file>[^\n]+?\.xml):(?P<xml_line>\d+)",
          "where": r"%(at)s \(100%%\)"}


def test_alternatives_share_definitions_and_group_names(tmp_path):
    path = write(tmp_path, json.dumps({"version": 2, "definitions": SHARED, "patterns": [LISTED]}))
    pattern_set = load_patterns(path)
    assert pattern_set.errors == []
    (pattern,) = pattern_set.patterns
    assert pattern.alternatives[2] == r"View error: while parsing (?P<xml_file>[^\n]+?\.xml):" \
                                      r"(?P<xml_line>\d+) \(100%\)"
    assert pattern.sources == ("14.0 odoo/tools/convert.py", "18.0 odoo/tools/convert.py", "")
    for text, line in [("while parsing /a/v.xml:3, near", "3"),
                       ("while parsing /a/v.xml:4, somewhere inside", "4"),
                       ("View error: while parsing /a/v.xml:5 (100%)", "5")]:
        match = pattern.compiled.search(text)
        assert pattern.captures(match) == {"xml_file": "/a/v.xml", "xml_line": line}
    assert pattern.compiled.search("while parsing /a/v.xml:3") is None


def test_a_pattern_definition_wins_over_the_files(tmp_path):
    entry = dict(LISTED, definitions={"where": "somewhere else"})
    path = write(tmp_path, json.dumps({"definitions": SHARED, "patterns": [entry]}))
    (pattern,) = load_patterns(path).patterns
    assert pattern.alternatives[2] == "View error: somewhere else"


@pytest.mark.parametrize("regex, definitions, message", [
    (["%(nowhere)s"], {}, "pattern 'alt': regex[1]: no definition named 'nowhere'"),
    (["a", "%(loop)s"], {"loop": "x%(loop)s"},
     "pattern 'alt': regex[2]: definition 'loop' uses itself (loop -> loop)"),
    (["ok", "(unclosed"], {}, "pattern 'alt': regex[2]: does not compile: missing )"),
    (["ok", "a|"], {}, "pattern 'alt': regex[2]: matches the empty string"),
    (["ok", r"(?<=ZZ)marker"], {},
     "pattern 'alt': regex[2]: RE2 refuses it (patterns must run in linear time): "
     "invalid perl operator: (?<="),
    (["ok", r"(?P<w>\w+) again (?P=w)"], {},
     "pattern 'alt': regex[2]: RE2 refuses it (patterns must run in linear time): "
     "invalid perl operator: (?P"),
    ([], {}, "pattern 'alt': regex: the list of alternatives is empty"),
    (["ok", ""], {}, "pattern 'alt': regex[2]: must be a non-empty string"),
    (["ok", {"regex": "x", "from": "18.0"}], {}, "pattern 'alt': regex[2]: unknown key 'from'"),
    (["(?P<x__2>a)"], {}, "pattern 'alt': regex[1]: group name 'x__2': names ending in "
                          "__<digits> are reserved"),
    (["ok"], {"bad name": "x"}, "pattern 'alt': definitions: 'bad name' must be a name"),
])
def test_a_bad_alternative_is_refused_by_number(tmp_path, regex, definitions, message):
    if message.startswith("pattern 'alt': regex[2]: RE2") and not _re2_installed():
        pytest.skip("google-re2 is not installed")
    entry = {"type": "alt", "severity": "low", "regex": regex, "definitions": definitions}
    pattern_set = load_patterns(write(tmp_path, json.dumps({"patterns": [GOOD, entry]})))
    assert [p.type for p in pattern_set.patterns] == ["db_deadlock"]
    assert len(pattern_set.errors) == 1 and pattern_set.errors[0].startswith(message), \
        pattern_set.errors


def _re2_installed():
    from engine import patterns
    return patterns._re2() is not None


def test_the_single_string_form_is_taken_as_it_is():
    """The seed's form: no definitions, a % is a %."""
    (pattern,) = PatternSet.from_entries([
        {"type": "seed", "severity": "low", "regex": r"100%(x)s done"}]).patterns
    assert pattern.regex == r"100%(x)s done"
    assert pattern.alternatives == (pattern.regex,)


def test_bad_file_definitions_are_one_clear_error(tmp_path):
    path = write(tmp_path, json.dumps({"definitions": ["x"], "patterns": [GOOD]}))
    with pytest.raises(PatternFileError) as raised:
        load_patterns(path)
    assert "definitions must be an object of name: text" in str(raised.value)


def test_a_listed_pattern_round_trips_through_dump(tmp_path):
    path = write(tmp_path, json.dumps({"definitions": SHARED, "patterns": [LISTED]}))
    first = load_patterns(path).patterns
    dumped = json.loads(dump_patterns(first))
    regex = dumped["patterns"][0]["regex"]
    assert isinstance(regex, list) and regex[2] == (r"View error: while parsing (?P<xml_file>"
                                                    r"[^\n]+?\.xml):(?P<xml_line>\d+) \(100%%\)")
    again = load_patterns(write(tmp_path, json.dumps(dumped), "again.json")).patterns
    assert again == first and again[0].regex == first[0].regex


def test_the_joined_regex_loads_as_a_single_string():
    """What the addon stores and hands to the watchdog: one string, captures intact."""
    (listed,) = PatternSet.from_entries([dict(LISTED, definitions=SHARED)]).patterns
    (stored,) = PatternSet.from_entries([{"type": "view_error", "severity": "high",
                                          "regex": listed.regex,
                                          "fingerprint_fields": ["xml_file"]}]).patterns
    match = stored.compiled.search("while parsing /b.xml:7, somewhere inside")
    assert stored.captures(match) == {"xml_file": "/b.xml", "xml_line": "7"}
