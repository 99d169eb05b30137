"""One record gives at most one finding per pattern, however long it is (issue 8, item 7).

A record of thousands of lines, or longer than the reader's block limit, used
to be split into pieces by the bounded walk to its start, each piece one more
finding (one giant record became 1,027 findings).
"""

import pytest

from engine import reader as reader_module
from engine.patterns import PatternSet
from engine.reader import LogReader
from engine.scanner import Scanner
from engine.tests.test_scanner import AVAILABLE_BACKENDS

PATTERNS = [
    {"type": "db_deadlock", "severity": "high", "regex": r"deadlock detected"},
    {"type": "port_in_use", "severity": "critical", "regex": r"Address already in use"},
]


def _scan(path, backend):
    scanner = Scanner(PatternSet.from_entries(PATTERNS), backend=backend)
    return scanner.scan_file(str(path)).findings


@pytest.mark.parametrize("backend", AVAILABLE_BACKENDS)
def test_a_record_of_twenty_thousand_matching_lines_is_one_finding(tmp_path, backend):
    path = tmp_path / "odoo.log"
    body = b"".join(b"  deadlock detected in step %d\n" % i for i in range(20_000))
    path.write_bytes(b"2026-11-29 10:00:01,000 7 ERROR prod odoo.sql_db: bad query\n" + body
                     + b"2026-11-29 10:00:02,000 7 INFO prod odoo.x: next\n")
    findings = _scan(path, backend)
    assert [(f.pattern_type, f.line) for f in findings] == [("db_deadlock", 1)]


@pytest.mark.parametrize("backend", AVAILABLE_BACKENDS)
def test_a_record_cut_by_the_reader_still_gives_one_finding_per_pattern(
        tmp_path, backend, monkeypatch):
    monkeypatch.setattr(reader_module, "MAX_PENDING", 4096)
    path = tmp_path / "odoo.log"
    body = b"".join(b"  deadlock detected, retry %d\n" % i for i in range(2_000))
    body += b"  nothing to see here\n" * 2_000  # whole blocks with no hit in between
    body += b"  deadlock detected again\n" * 200
    body += b"  OSError: [Errno 98] Address already in use\n" * 500
    path.write_bytes(b"2026-11-29 10:00:01,000 7 ERROR prod odoo.sql_db: bad query\n" + body
                     + b"2026-11-29 10:00:02,000 7 ERROR prod odoo.x: deadlock detected\n")
    scanner = Scanner(PatternSet.from_entries(PATTERNS), backend=backend)
    reader = LogReader(str(path), block_size=1024)
    blocks = list(reader.blocks())
    assert sum(block.continued for block in blocks) > 20  # the record was cut many times
    findings = list(scanner.iter_findings(blocks))
    # The giant record: its first part is a deadlock; a later part adds the
    # port error once. The next record is a finding of its own.
    kinds = [(f.pattern_type, f.line) for f in findings]
    assert kinds[0] == ("db_deadlock", 1)
    assert [kind for kind, _ in kinds[1:-1]] == ["port_in_use"]
    assert kinds[-1] == ("db_deadlock", 4_702)
