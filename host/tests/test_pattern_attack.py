"""A pattern that backtracks exponentially never stalls ``detect`` (issue 8, item 3).

The attacker owns what the scanner reads: a Manager writes the patterns (they
reach the watchdog's patterns file), anyone writes log text. Both files are
written here by an unprivileged process; ``bin/auto-heal detect`` then runs as
a real process with a timeout, on every backend this host has. Without
engine.linear, Python's re spends hours on ``(a+)+$`` against 34 ``a`` and a
``b``: the run times out and the test fails.
"""

import json
import os
import pathlib
import pwd
import shutil
import tempfile

import pytest

from engine import matcher as matcher_module
from host.tests.conftest import run_auto_heal
from tools.testing import run_as

BACKENDS = [name for name in ("hyperscan", "re2", "re") if getattr(matcher_module, name, True)]

ATTACK_LINE = "a" * 34 + "b"


def _plant(folder):
    """As nobody: a patterns file with a catastrophic regex, a log that triggers it."""
    def write():
        patterns = {"version": 1, "patterns": [
            {"type": "redos", "regex": "(a+)+$", "severity": "critical"},
            {"type": "db_deadlock", "regex": "deadlock detected", "severity": "high"},
        ]}
        with open(os.path.join(folder, "patterns.json"), "w") as handle:
            json.dump(patterns, handle)
        with open(os.path.join(folder, "odoo.log"), "w") as handle:
            handle.write(f"2026-11-29 10:00:01,000 42 ERROR prod odoo.http: {ATTACK_LINE}\n"
                         "aaaa\n"
                         "2026-11-29 10:00:02,000 42 ERROR prod odoo.sql_db: deadlock detected\n")
        return "ok"
    assert run_as("nobody", write) == "ok"


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_catastrophic_pattern_is_refused_by_name_and_detect_finishes(tmp_path, backend):
    # Every user can reach it (pytest's tmp_path is root-only); nobody owns it.
    folder = tempfile.mkdtemp(prefix="auto_heal-redos-", dir="/tmp")
    os.chmod(folder, 0o755)
    if os.geteuid() == 0:
        nobody = pwd.getpwnam("nobody")
        os.chown(folder, nobody.pw_uid, nobody.pw_gid)
    try:
        _run(folder, tmp_path, backend)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _run(folder, tmp_path, backend):
    _plant(folder)
    folder = pathlib.Path(folder)
    result = run_auto_heal(["detect", "--json", "--patterns", folder / "patterns.json",
                            "--log", folder / "odoo.log"], tmp_path / "home",
                           env=dict(os.environ, AUTO_HEAL_BACKEND=backend))
    assert result.returncode == 1, result.stderr
    assert result.stderr.splitlines() == [
        "auto-heal: warning: patterns: pattern 'redos': regex: refused: nested repeats can "
        "match the same text in many ways, so a backtracking engine may take exponential "
        "time; write the repeat once (for example a+ instead of (a+)+)"]
    found = {i["pattern"]: i["count"] for i in json.loads(result.stdout)["incidents"]}
    # The attack record is an ERROR that no (remaining) pattern names: it is unknown.
    assert found == {"db_deadlock": 1, "unknown": 1}
