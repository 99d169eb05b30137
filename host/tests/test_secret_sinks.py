"""Each form of secret (tools/secret_forms.py) through each sink of the watchdog.

A real ``bin/auto-heal`` reads an Odoo log holding every form, with a
catch-all pattern that copies each record into an incident (and names a
``path`` that a ``fix_permissions`` run then refuses, so the text reaches the
audit log too). Then, for every (form, sink) pair: the form's marker is in
what was written (the text reached the sink), none of its secret fragments is.

Sinks: the watchdog log (``[watchdog] log_file``), the spool, the state file
(entries wait in its outbox while the spool cannot be written), the audit log,
``detect --json`` and ``status --json``, and the alert command's stdin (a
PostgreSQL DSN whose quoted password the probe fails with).
"""

import json
import os
import sys

import pytest

from host.tests.conftest import run_auto_heal
from host.tests.watchdog_helpers import free_port, write_config
from tools.secret_forms import CATCH_ALL, FORM_NAMES, FORMS, leaks, log_text

#: The catch-all pattern of a careless Manager: it captures the rest of the line as a
#: path and asks for fix_permissions on it (refused: outside the roots, so audited).
PATTERN = dict(CATCH_ALL, regex=r"(?P<path>AHFORM_(?P<form>[a-z_]+)[^\n]*)",
               fix_script="fix_permissions")
#: Sinks that get the record's first line only; the others get the whole sample.
FIRST_LINE_SINKS = ("watchdog_log", "audit")
SINKS = ("watchdog_log", "spool", "state", "audit", "detect_json", "status_json")
#: The DSN of the PostgreSQL probe: libpq quoting, an escaped quote, spaces.
DSN_SECRETS = ("Dsnpw1", "Dsnpw2")
DSN = "host=127.0.0.1 port=%d dbname=postgres user=odoo password='Dsnpw1 \\'Dsnpw2 x'"


def _config(root, log, patterns, hook_out):
    state = os.path.join(root, "state")
    roots = os.path.join(root, "roots")
    os.makedirs(roots, exist_ok=True)
    return {
        "watchdog": {"state_dir": state, "log_file": os.path.join(root, "watchdog.log"),
                     "interval": 0.2, "log_level": "debug"},
        "odoo": {"url": f"http://127.0.0.1:{free_port()}", "pidfile": "", "logs": [log],
                 "config": "", "restart": {"via": ""}},
        "postgresql": {"dsn": DSN % free_port(), "restart": {"via": ""}},
        "probes": {"postgresql": {"period": 0.1, "timeout": 1.0, "failure_threshold": 1},
                   "disk": {"paths": []}},
        "scan": {"settle": 0.0, "patterns": patterns},
        "fixes": {"auto": ["fix_permissions"], "roots": [roots], "first_delay": 0.0},
        "actions": {"fix_permissions": {"owner": "nobody:nogroup"}},
        "handover": {"db": ""},
        "alert": {"command": [sys.executable, "-c",
                              "import sys; open(sys.argv[1], 'ab').write(sys.stdin.buffer.read()"
                              " + b'\\n')", hook_out]},
    }


def _run(args):
    return run_auto_heal(args, home="/nonexistent")


def _read(path):
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            return handle.read()
    except FileNotFoundError:
        return ""


@pytest.fixture(scope="module")
def sinks(tmp_path_factory):
    """Run the watchdog over the forms once; the text of each sink."""
    root = str(tmp_path_factory.mktemp("secret-sinks"))
    log = os.path.join(root, "odoo.log")
    with open(log, "w", encoding="utf-8") as handle:
        handle.write(log_text())
    patterns = os.path.join(root, "patterns.json")
    with open(patterns, "w", encoding="utf-8") as handle:
        json.dump({"patterns": [PATTERN]}, handle)
    hook_out = os.path.join(root, "alerts.jsonl")
    config = _config(root, log, patterns, hook_out)
    path = write_config(root, config)
    monitor = _run(["monitor", "--config", path, "--max-cycles", "2"])
    assert monitor.returncode == 0, monitor.stderr
    state_dir = config["watchdog"]["state_dir"]
    status = _run(["status", "--config", path, "--json"])

    # the same log again, while the spool cannot be written: the entries wait in
    # the state's outbox
    blocked_root = os.path.join(root, "blocked")
    os.makedirs(blocked_root)
    blocked = _config(blocked_root, log, patterns, os.path.join(blocked_root, "alerts.jsonl"))
    os.makedirs(os.path.join(blocked["watchdog"]["state_dir"], "spool.jsonl"))
    blocked_run = _run(["monitor", "--config", write_config(blocked_root, blocked),
                        "--max-cycles", "1"])
    assert blocked_run.returncode == 0, blocked_run.stderr
    state_text = _read(os.path.join(blocked["watchdog"]["state_dir"], "state.json"))
    assert '"outbox"' in state_text and "AHFORM_" in state_text, state_text[:2000]

    detect = _run(["detect", "--json", "--patterns", patterns, "--log", log])
    assert detect.returncode == 1, detect.stderr  # incidents found
    return {
        "watchdog_log": _read(config["watchdog"]["log_file"]),
        "spool": _read(os.path.join(state_dir, "spool.jsonl")),
        "state": state_text,
        "audit": _read(os.path.join(state_dir, "audit.jsonl")),
        "detect_json": detect.stdout + detect.stderr,
        "status_json": status.stdout + status.stderr,
        "alert_hook": _read(hook_out),
        "monitor_stderr": monitor.stderr + blocked_run.stderr,
    }


def _cases():
    for sink in SINKS:
        for name in FORM_NAMES:
            if sink == "status_json":
                continue  # the status shows counts and probes, no log text
            yield sink, name


@pytest.mark.parametrize("sink,name", list(_cases()))
def test_each_form_of_secret_never_reaches_a_sink(sinks, sink, name):
    form = FORMS[name]
    text = sinks[sink]
    assert form.marker in text, f"{name} never reached {sink}: the test would prove nothing"
    if sink in FIRST_LINE_SINKS and "\n" in form.text:
        first_line = form.text.split("\n")[0]
        assert not [s for s in form.secrets if s in first_line and s in text]
    assert leaks(text, form) == [], f"{name} leaked into {sink}"


@pytest.mark.parametrize("sink", ["watchdog_log", "state", "spool",
                                  "status_json"])
def test_a_quoted_libpq_password_never_reaches_a_sink(sinks, sink):
    text = sinks[sink]
    assert "password=" in text, f"the DSN never reached {sink}"
    assert [s for s in DSN_SECRETS if s in text] == [], f"the DSN's password leaked into {sink}"


def test_nothing_leaks_to_the_terminal(sinks):
    text = sinks["monitor_stderr"]
    for form in FORMS.values():
        assert leaks(text, form) == []
    assert [s for s in DSN_SECRETS if s in text] == []


# --------------------------------------------------------------------------
# the sinks mask what their source did not


def _plain_config(root, **extra):
    config = {
        "watchdog": {"state_dir": os.path.join(root, "state"),
                     "log_file": os.path.join(root, "watchdog.log"), "interval": 0.2,
                     "log_level": "debug"},
        "odoo": {"url": f"http://127.0.0.1:{free_port()}", "pidfile": "", "config": "",
                 "logs": [], "restart": {"via": ""}},
        "postgresql": {"dsn": ""},
        "probes": {"disk": {"paths": []}},
        "handover": {"db": ""},
    }
    for key, value in extra.items():
        config[key] = dict(config.get(key, {}), **value)
    return config


def test_the_watchdog_log_and_the_alert_command_mask_any_line(tmp_path):
    # log paths named by the operator, which the "log file not found" line repeats
    root = str(tmp_path)
    hook_out = os.path.join(root, "hook.jsonl")
    logs = [os.path.join(root, "PGPASSWORD=PathPw2", "odoo.log"),
            os.path.join(root, "x", "session_id=SessInPath1", "odoo.log")]
    config = _plain_config(root, odoo={"logs": logs}, probes={
        "disk": {"paths": []}, "log_freshness": {"period": 0.1, "warn_seconds": 1.0,
                                                 "crit_seconds": 2.0}},
        alert={"command": [sys.executable, "-c", "import sys; open(sys.argv[1], 'ab')"
                           ".write(sys.stdin.buffer.read() + b'\\n')", hook_out]})
    result = _run(["monitor", "--config", write_config(root, config), "--max-cycles", "2"])
    assert result.returncode == 0, result.stderr
    log = _read(config["watchdog"]["log_file"])
    hook = _read(hook_out)
    assert "log file not found" in log and "PGPASSWORD=***" in log
    assert '"event": "alert"' in hook and "PGPASSWORD=***" in hook
    for text in (log, hook, result.stderr):
        assert "PathPw2" not in text and "SessInPath1" not in text


def test_a_state_left_by_an_older_watchdog_is_masked_when_saved(tmp_path):
    root = str(tmp_path)
    config = _plain_config(root)
    path = write_config(root, config)
    state_dir = config["watchdog"]["state_dir"]
    os.makedirs(state_dir)
    leaky = "connection failed: host=db password='Dsnpw1 \\'Dsnpw2 x' user=odoo"
    with open(os.path.join(state_dir, "state.json"), "w") as handle:
        json.dump({"version": 1, "cursors": {}, "watchdog": {
            "probes": {"postgresql": {"status": "failing", "failures": 3, "successes": 0,
                                      "last_run": 1.0, "last_detail": leaky,
                                      "changed_at": 1.0}},
            "notes": {"pg": leaky}}}, handle)
    status = _run(["status", "--config", path, "--json"])
    assert "password=" in status.stdout, status.stdout + status.stderr
    result = _run(["monitor", "--config", path, "--max-cycles", "1"])
    assert result.returncode == 0, result.stderr
    saved = _read(os.path.join(state_dir, "state.json"))
    assert "password='***'" in saved
    for text in (saved, status.stdout, status.stderr):
        assert [s for s in DSN_SECRETS if s in text] == [], text
