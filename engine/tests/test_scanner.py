"""Matcher and scanner: one pass over all patterns, innermost cause, unknowns."""

import os
import tracemalloc

import pytest

from engine import matcher as matcher_module
from engine.incidents import aggregate
from engine.matcher import Matcher
from engine.patterns import PatternSet
from engine.scanner import Scanner

PATTERNS = [
    {"type": "cron_field_deprecated", "severity": "high",
     "regex": r"Invalid field '(?P<field>numbercall|doall)' on model 'ir\.cron'",
     "fix_script": "remove_deprecated_cron_fields"},
    {"type": "db_deadlock", "severity": "high", "regex": r"deadlock detected"},
    {"type": "worker_memory_limit", "severity": "medium", "levels": ["INFO", "WARNING"],
     "regex": r"virtual memory limit \((?P<limit>[^)]+)\) reached"},
    {"type": "port_in_use", "severity": "critical",
     "regex": r"\[Errno 98\] Address already in use"},
    # A look-behind: only Python's backtracking re takes it, so it is refused.
    {"type": "lookbehind", "severity": "low", "regex": r"(?<=ZZ)special marker"},
    {"type": "registry_load_failed", "severity": "critical", "generic": True,
     "regex": r"Failed to (?:load registry|initialize database)"},
]

AVAILABLE_BACKENDS = [name for name, module in
                      (("hyperscan", matcher_module.hyperscan), ("re2", matcher_module.re2),
                       ("re", True)) if module]


def header(second, level, message, pid=4242, db="prod", millis=0):
    return (f"2026-11-29 10:00:{second:02d},{millis:03d} {pid} {level} {db} "
            f"odoo.test: {message}\n").encode()


def scan(data, backend="re", patterns=PATTERNS):
    scanner = Scanner(PatternSet.from_entries(patterns), backend=backend)
    return scanner.scan_bytes(data, path="odoo.log")


TRACEBACK_NUMBERCALL = (
    b"Traceback (most recent call last):\n"
    b'  File "/srv/odoo/odoo/models.py", line 4923, in create\n'
    b"ValueError: Invalid field 'numbercall' on model 'ir.cron'\n"
    b"\nThe above exception was the direct cause of the following exception:\n\n"
    b"Traceback (most recent call last):\n"
    b"odoo.tools.convert.ParseError: while parsing /srv/addons/x/data/cron.xml:3\n")


@pytest.mark.parametrize("backend", AVAILABLE_BACKENDS)
def test_innermost_cause_wins_and_the_generic_wrapper_is_absorbed(backend):
    data = (header(1, "INFO", "loading x")
            + header(2, "ERROR", "Failed to load registry")
            + header(2, "CRITICAL", "Failed to initialize database `prod`.", millis=1)
            + TRACEBACK_NUMBERCALL
            + header(3, "INFO", "Initiating shutdown"))
    findings = scan(data, backend)
    assert [(f.pattern_type, f.line) for f in findings] == [("cron_field_deprecated", 3)]
    assert findings[0].captures == {"field": "numbercall"}
    assert findings[0].exception == "ValueError"
    assert findings[0].fix_script == "remove_deprecated_cron_fields"


def test_generic_finding_stands_when_nothing_specific_follows():
    data = (header(1, "ERROR", "Failed to load registry")
            + header(9, "ERROR", "deadlock detected")          # too late to absorb it
            + header(10, "ERROR", "Failed to load registry", pid=7)
            + header(10, "ERROR", "deadlock detected", pid=8))  # another process
    kinds = sorted(f.pattern_type for f in scan(data))
    assert kinds == ["db_deadlock", "db_deadlock", "registry_load_failed",
                     "registry_load_failed"]


def test_failures_logged_at_info_are_found_and_level_filters_apply():
    data = (header(1, "INFO", "Worker (31337) virtual memory limit (2.0 GiB) reached.")
            + header(2, "DEBUG", "Worker (31338) virtual memory limit (2.0 GiB) reached."))
    findings = scan(data)
    assert [(f.pattern_type, f.level, f.captures["limit"]) for f in findings] == [
        ("worker_memory_limit", "INFO", "2.0 GiB")]


def test_unknown_errors_are_grouped_and_warnings_are_not_unknown():
    data = (header(1, "ERROR", "Something odd for partner 17")
            + header(2, "ERROR", "Something odd for partner 4711")
            + header(3, "WARNING", "Something merely suspicious")
            + header(4, "CRITICAL", "Meltdown in 0x7f00aa"))
    findings = scan(data)
    assert [(f.pattern_type, f.severity) for f in findings] == [
        ("unknown", "medium"), ("unknown", "medium"), ("unknown", "critical")]
    incidents = aggregate(findings)
    assert [i.count for i in incidents] == [2, 1]


def test_raw_stderr_text_holds_findings_too():
    """A fatal error before logging was set up: a bare traceback on stderr."""
    data = (b"Traceback (most recent call last):\n"
            b'  File "/usr/bin/odoo", line 8, in <module>\n'
            b"OSError: [Errno 98] Address already in use\n"
            + header(5, "INFO", "Odoo version 18.0"))
    [finding] = scan(data)
    assert finding.pattern_type == "port_in_use"
    assert finding.level is None and finding.line == 1
    assert finding.message == "OSError: [Errno 98] Address already in use"
    unknown = scan(b"Traceback (most recent call last):\n  File \"x\"\nKeyError: 'boom'\n")
    assert [(f.pattern_type, f.severity, f.message) for f in unknown] == [
        ("unknown", "high", "KeyError: 'boom'")]


@pytest.mark.parametrize("backend", AVAILABLE_BACKENDS)
def test_a_pattern_only_python_re_takes_is_refused_by_name(backend):
    pattern_set = PatternSet.from_entries(PATTERNS)
    assert pattern_set.errors == [
        "pattern 'lookbehind': regex: refused: look-arounds are not supported by "
        "linear-time engines (RE2, hyperscan)"]
    matcher = Matcher(pattern_set.patterns, backend=backend)
    assert matcher.slow_patterns == []
    data = header(1, "INFO", "ZZspecial marker here") + header(2, "ERROR", "deadlock detected")
    findings = scan(data, backend)
    assert [(f.pattern_type, f.line) for f in findings] == [("db_deadlock", 2)]


def test_info_traffic_reaches_no_record_parsing():
    matcher = Matcher(PatternSet.from_entries(PATTERNS).patterns, backend=AVAILABLE_BACKENDS[0])
    data = b"".join(header(i % 60, "INFO", f"GET /web/{i} 200") for i in range(5000))
    assert list(matcher.hit_records(data)) == []


def test_fingerprints_group_records_that_differ_only_in_values():
    data = b"".join(
        header(i, "ERROR", f"bad query: UPDATE res_partner SET x={i} WHERE id={i * 7}")
        + b"Traceback (most recent call last):\n  File \"x\"\n"
          b"psycopg2.errors.DeadlockDetected: deadlock detected\n"
        for i in range(1, 6))
    data += header(30, "ERROR", "deadlock detected", db="other")
    incidents = aggregate(scan(data))
    assert [(i.pattern, i.count, i.database) for i in incidents] == [
        ("db_deadlock", 5, "prod"), ("db_deadlock", 1, "other")]
    first = incidents[0]
    assert (first.source_line, first.first_seen.second, first.last_seen.second) == (1, 1, 5)
    assert "psycopg2.errors.DeadlockDetected" in first.signature


def test_secrets_never_reach_samples_or_messages():
    data = header(1, "ERROR", "deadlock detected; dsn=postgresql://odoo:hunter2@db/prod")
    [finding] = scan(data)
    assert "hunter2" not in finding.sample + finding.message + finding.signature
    assert "postgresql://odoo:***@db/prod" in finding.sample


@pytest.mark.parametrize("backend", AVAILABLE_BACKENDS)
def test_backends_agree_on_a_mixed_log(backend, tmp_path):
    chunks = []
    for i in range(3000):
        if i % 97 == 0:
            chunks.append(header(i % 60, "ERROR", f"deadlock detected {i}", pid=i))
        elif i % 151 == 0:
            chunks.append(header(i % 60, "ERROR", "Failed to load registry", pid=i)
                          + header(i % 60, "CRITICAL", "Failed to initialize database", pid=i)
                          + TRACEBACK_NUMBERCALL)
        elif i % 89 == 0:
            chunks.append(header(i % 60, "ERROR", f"odd thing {i}", pid=i))
        else:
            chunks.append(header(i % 60, "INFO", f"request {i} done", pid=i))
    path = tmp_path / "odoo.log"
    path.write_bytes(b"".join(chunks))
    reference = Scanner(PatternSet.from_entries(PATTERNS), backend="re").scan_file(str(path))
    result = Scanner(PatternSet.from_entries(PATTERNS), backend=backend).scan_file(str(path))
    summary = [(f.pattern_type, f.line, f.fingerprint) for f in result.findings]
    assert summary == [(f.pattern_type, f.line, f.fingerprint) for f in reference.findings]
    kinds = [kind for kind, _, _ in summary]
    # i % 97 (31 values), then i % 151 (19 more), then i % 89 (33 more), of 0..2999
    assert (kinds.count("db_deadlock"), kinds.count("cron_field_deprecated"),
            kinds.count("unknown"), len(kinds)) == (31, 19, 33, 83)


def test_unknown_backend_is_a_clear_error():
    with pytest.raises(ValueError, match="backend 'fast' is not available"):
        Matcher([], backend="fast")


def test_memory_stays_flat_while_scanning_a_large_file(tmp_path):
    path = tmp_path / "big.log"
    line = header(1, "INFO", "x" * 200)
    with open(path, "wb") as handle:
        for _ in range(40):
            handle.write(line * 5000 + header(2, "ERROR", "deadlock detected"))
    size = os.path.getsize(path)
    scanner = Scanner(PatternSet.from_entries(PATTERNS), backend=AVAILABLE_BACKENDS[0])
    tracemalloc.start()
    result = scanner.scan_file(str(path))
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert len(result.findings) == 40
    assert size > 40 << 20
    assert peak < 12 << 20  # a few blocks, never the file
