"""bin/auto-heal, run as a real process on real files."""

import json
import os
import queue
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest

from host.tests.conftest import BIN
from host.tests.conftest import run_auto_heal as run
from tools import fake_odoo
from tools.samples import CRON_XML, CRON_XML_FIXED, NUMBERCALL_LINE

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SAMPLE = os.path.join(REPO, "tests", "samples", "real", "odoo18-numbercall-startup-failure.log")
IS_ROOT = os.geteuid() == 0


def assert_one_line_error(result):
    assert result.returncode == 2, (result.stdout, result.stderr)
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("auto-heal: error: "), lines[0]
    assert "Traceback" not in result.stderr + result.stdout


# --------------------------------------------------------------------------
# help and bad input


@pytest.mark.parametrize("command", [[], ["detect"], ["fix-cron"], ["health"], ["backup"]])
def test_help(command):
    result = run(command + ["--help"])
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: auto-heal")
    assert "exit codes" in result.stdout
    assert result.stderr == ""


@pytest.fixture
def junk(tmp_path):
    p = tmp_path / "junk.bin"
    p.write_bytes(bytes(range(256)) * 40)
    return p


@pytest.fixture
def broken_xml(tmp_path):
    p = tmp_path / "broken.xml"
    p.write_bytes(
        b'<odoo>\n  <record id="x" model="ir.cron">\n'
        b'    <field name="numbercall">-1</field>\n</odoo>\n'
    )
    return p


BAD_INPUT = {
    "no command": [],
    "unknown command": ["explode"],
    "unknown option": ["detect", "--log", "{sample}", "--frobnicate"],
    "detect without --log": ["detect"],
    "detect missing log": ["detect", "--log", "{tmp}/missing.log"],
    "detect log is a folder": ["detect", "--log", "{tmp}"],
    "detect dangling symlink": ["detect", "--log", "{tmp}/dangling.log"],
    "detect bad --follow": ["detect", "--log", "{sample}", "--follow", "soon"],
    "detect negative --follow": ["detect", "--log", "{sample}", "--follow", "-1"],
    "detect bad --min-severity": ["detect", "--log", "{sample}", "--min-severity", "urgent"],
    "detect missing patterns": ["detect", "--log", "{sample}", "--patterns", "{tmp}/none.json"],
    "detect patterns not JSON": ["detect", "--log", "{sample}", "--patterns", "{tmp}/bad.json"],
    "detect patterns binary junk": ["detect", "--log", "{sample}", "--patterns", "{junk}"],
    "detect state binary junk": ["detect", "--log", "{sample}", "--state", "{junk}"],
    "detect state is a folder": ["detect", "--log", "{sample}", "--state", "{tmp}"],
    "fix-cron nothing to do": ["fix-cron"],
    "fix-cron missing path": ["fix-cron", "{tmp}/nope"],
    "fix-cron malformed XML": ["fix-cron", "{broken}"],
    "fix-cron malformed XML dry-run": ["fix-cron", "--dry-run", "{broken}"],
    "fix-cron binary junk": ["fix-cron", "--check", "{junk_xml}"],
    "fix-cron dry-run and check": ["fix-cron", "--dry-run", "--check", "{tmp}"],
    "fix-cron missing log": ["fix-cron", "--from-log", "{tmp}/missing.log", "--root", "{tmp}"],
    "fix-cron bad root": ["fix-cron", "--root", "{tmp}/nope", "{tmp}"],
    "health nothing asked": ["health"],
    "health bad url": ["health", "--url", "ftp://odoo"],
    "health bad timeout": ["health", "--path", "/", "--timeout", "0"],
    "health bad percentage": ["health", "--path", "/", "--disk-warn", "150"],
    "health warn below crit": ["health", "--path", "/", "--disk-warn", "1", "--disk-crit", "5"],
    "backup missing config": ["backup", "--config", "{tmp}/odoo.conf"],
    "backup config is a folder": ["backup", "--config", "{tmp}"],
    "backup bad keep": ["backup", "--config", "{sample}", "--keep", "0"],
    "backup keep not a number": ["backup", "--config", "{sample}", "--keep", "many"],
    "backup without --config": ["backup"],
}


@pytest.mark.parametrize("case", sorted(BAD_INPUT))
def test_bad_input_is_one_line_and_exit_2(case, tmp_path, home, junk, broken_xml):
    (tmp_path / "bad.json").write_text('{"patterns": [')
    os.symlink(tmp_path / "nowhere", tmp_path / "dangling.log")
    junk_xml = tmp_path / "junk.xml"
    junk_xml.write_bytes(junk.read_bytes())
    args = [
        a.format(tmp=tmp_path, sample=SAMPLE, junk=junk, broken=broken_xml, junk_xml=junk_xml)
        for a in BAD_INPUT[case]
    ]
    before = broken_xml.read_bytes()
    result = run(args, home=home)
    assert_one_line_error(result)
    assert broken_xml.read_bytes() == before
    assert not (home / "audit.jsonl").exists()


def test_unreadable_log(tmp_path):
    log = tmp_path / "odoo.log"
    log.write_text("x\n")
    os.chmod(log, 0)
    command = ["detect", "--log", log]
    if IS_ROOT:  # root reads a chmod 000 file: run without the capabilities that allow it
        setpriv = shutil.which("setpriv")
        if not setpriv:
            pytest.skip("root without setpriv (util-linux) reads a chmod 000 file anyway")
        result = subprocess.run(
            [setpriv, "--bounding-set", "-dac_override,-dac_read_search", sys.executable, BIN]
            + [str(a) for a in command], capture_output=True, text=True, timeout=60)
    else:
        result = run(command)
    assert_one_line_error(result)
    assert "not readable" in result.stderr


def test_malformed_xml_error_names_file_and_line(tmp_path, broken_xml, home):
    result = run(["fix-cron", broken_xml], home=home)
    assert_one_line_error(result)
    assert result.stderr.startswith("auto-heal: error: %s:4: malformed XML: " % broken_xml)


# --------------------------------------------------------------------------
# detect


def test_detect_real_sample_json():
    result = run(["detect", "--log", SAMPLE, "--json"])
    assert result.returncode == 1, result.stderr
    doc = json.loads(result.stdout)
    assert doc["bytes_scanned"] == os.path.getsize(SAMPLE)
    cron = [i for i in doc["incidents"] if i["pattern"] == "cron_field_deprecated"]
    assert len(cron) == 1
    incident = cron[0]
    for key in (
        "pattern",
        "severity",
        "count",
        "fingerprint",
        "first_seen",
        "last_seen",
        "sample",
        "source",
        "captures",
    ):
        assert key in incident
    assert incident["captures"]["xml_file"] == "/srv/addons/legacy_cron/data/cron.xml"
    assert incident["captures"]["xml_line"] == "3"
    assert incident["count"] == 1
    assert incident["source"] == {"path": SAMPLE, "line": 18}
    assert incident["first_seen"].startswith("2026-11-29 14:40:22")
    assert "Invalid field 'numbercall' on model 'ir.cron'" in incident["sample"]


def test_detect_real_sample_text():
    result = run(["detect", "--log", SAMPLE, "--min-severity", "medium"])
    assert result.returncode == 1, result.stderr
    out = result.stdout
    assert "cron_field_deprecated" in out
    assert "source: %s:18" % SAMPLE in out
    assert "xml_file=/srv/addons/legacy_cron/data/cron.xml" in out
    assert "xml_line=3" in out
    assert "first seen: 2026-11-29 14:40:22" in out
    assert "ValueError: Invalid field 'numbercall' on model 'ir.cron'" in out
    assert "wkhtmltopdf" not in out.lower()  # below --min-severity
    assert re.match(
        r"^\d+ incident\(s\), \d+ finding\(s\), 6056 bytes scanned$", out.rstrip().splitlines()[-1]
    )


def test_detect_nothing_found_exit_0(tmp_path):
    log = tmp_path / "quiet.log"
    log.write_text("2026-11-29 10:00:00,000 7 INFO db odoo.modules.loading: 1 modules loaded\n")
    result = run(["detect", "--log", log])
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "no incidents, %d bytes scanned" % log.stat().st_size
    assert json.loads(run(["detect", "--log", log, "--json"]).stdout) == {
        "incidents": [],
        "bytes_scanned": log.stat().st_size,
    }


def test_detect_binary_junk_log_is_data_not_a_crash(tmp_path, junk):
    result = run(["detect", "--log", junk, "--json"])
    assert result.returncode in (0, 1), result.stderr
    assert "Traceback" not in result.stderr
    assert json.loads(result.stdout)["bytes_scanned"] == junk.stat().st_size


def test_detect_masks_secrets(tmp_path):
    log = tmp_path / "odoo.log"
    log.write_text(
        "2026-11-29 10:00:00,000 7 ERROR db odoo.sql_db: Connection to "
        "postgresql://odoo:Hunter22@db:5432/prod failed: password=Hunter22 refused\n"
    )
    result = run(["detect", "--log", log])
    assert result.returncode == 1
    assert "Hunter22" not in result.stdout + result.stderr
    assert "postgresql://odoo:***@db" in result.stdout


def test_detect_broken_pattern_is_a_warning_and_the_rest_load(tmp_path):
    default = os.environ.get("AUTO_HEAL_PATTERNS") or os.path.join(REPO, "data", "patterns.json")
    doc = json.load(open(default))
    doc["patterns"].append({"type": "broken_one", "regex": "(unclosed", "severity": "high"})
    doc["patterns"].append({"type": "odd_one", "regex": "x", "severity": "urgent"})
    patterns = tmp_path / "patterns.json"
    patterns.write_text(json.dumps(doc))
    result = run(["detect", "--log", SAMPLE, "--patterns", patterns, "--json"])
    assert result.returncode == 1
    warnings = result.stderr.splitlines()
    assert len(warnings) == 2
    assert all(w.startswith("auto-heal: warning: ") for w in warnings)
    assert "broken_one" in warnings[0] and "odd_one" in warnings[1]
    assert any(
        i["pattern"] == "cron_field_deprecated" for i in json.loads(result.stdout)["incidents"]
    )


def _patterns(doc):
    return [i["pattern"] for i in doc["incidents"]]


def test_detect_state_reports_only_new_findings(tmp_path):
    log = tmp_path / "odoo.log"
    shutil.copy(SAMPLE, log)
    state = tmp_path / "state.json"
    first = run(["detect", "--log", log, "--state", state, "--json", "--settle", "0"])
    assert first.returncode == 1, first.stderr
    assert "cron_field_deprecated" in _patterns(json.loads(first.stdout))
    saved = json.loads(state.read_text())
    assert saved["cursors"][str(log)]["offset"] == log.stat().st_size
    assert oct(state.stat().st_mode & 0o777) == "0o600"

    again = run(["detect", "--log", log, "--state", state, "--json", "--settle", "0"])
    assert again.returncode == 0
    assert json.loads(again.stdout) == {"incidents": [], "bytes_scanned": 0}

    size = log.stat().st_size
    with open(log, "a") as fh:
        fh.write(
            "2026-11-29 14:45:00,000 5681 ERROR probe18 odoo.sql_db: bad query: "
            "deadlock detected\nDETAIL:  Process 1 waits for ShareLock on transaction 2\n"
            "2026-11-29 14:45:01,000 5681 INFO probe18 odoo.modules.loading: done\n"
        )
    new = run(["detect", "--log", log, "--state", state, "--json", "--settle", "0"])
    assert new.returncode == 1, new.stderr
    doc = json.loads(new.stdout)
    assert doc["bytes_scanned"] == log.stat().st_size - size
    assert "cron_field_deprecated" not in _patterns(doc)
    assert len(doc["incidents"]) == 1
    assert doc["incidents"][0]["source"]["line"] == sum(1 for _ in open(SAMPLE)) + 1


def test_detect_state_holds_back_a_record_still_being_written(tmp_path):
    log = tmp_path / "odoo.log"
    log.write_text("2026-11-29 14:45:00,000 5681 ERROR db odoo.x: first error\n")
    state = tmp_path / "state.json"
    # just written, default --settle 10: the last record may still grow
    held = run(["detect", "--log", log, "--state", state, "--json"])
    assert json.loads(held.stdout)["incidents"] == []
    with open(log, "a") as fh:
        fh.write(
            "Traceback (most recent call last):\nValueError: boom\n"
            "2026-11-29 14:45:05,000 5681 INFO db odoo.x: next\n"
        )
    done = run(["detect", "--log", log, "--state", state, "--json"])
    incidents = json.loads(done.stdout)["incidents"]
    assert len(incidents) == 1 and "ValueError: boom" in incidents[0]["sample"]


def test_detect_several_logs(tmp_path):
    a = tmp_path / "a.log"
    b = tmp_path / "b.log"
    shutil.copy(SAMPLE, a)
    b.write_text("2026-11-29 10:00:00,000 7 ERROR db odoo.x: something odd\n")
    doc = json.loads(run(["detect", "--log", a, "--log", b, "--json"]).stdout)
    assert {i["source"]["path"] for i in doc["incidents"]} == {str(a), str(b)}
    assert doc["bytes_scanned"] == a.stat().st_size + b.stat().st_size


class _Lines:
    """Lines of a process's stdout, read by a thread, with a timeout per line."""

    def __init__(self, stream):
        self.queue = queue.Queue()
        threading.Thread(target=self._pump, args=(stream,), daemon=True).start()

    def _pump(self, stream):
        for line in stream:
            self.queue.put(line)
        self.queue.put("")

    def next(self, timeout=20):
        try:
            return self.queue.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError("no output within %ss" % timeout) from None


def test_detect_follow_prints_new_incidents_and_stops_cleanly(tmp_path):
    log = tmp_path / "odoo.log"
    log.write_text("2026-11-29 10:00:00,000 7 INFO db odoo: start\n")
    env = dict(os.environ)
    proc = subprocess.Popen(
        [
            sys.executable,
            BIN,
            "detect",
            "--log",
            str(log),
            "--follow",
            "0.2",
            "--settle",
            "0",
            "--json",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    lines = _Lines(proc.stdout)
    try:
        first = json.loads(lines.next())
        assert first == {"incidents": [], "bytes_scanned": log.stat().st_size}
        with open(log, "a") as fh:
            fh.write(
                "2026-11-29 10:00:05,000 7 ERROR db odoo.sql_db: deadlock detected\n"
                "2026-11-29 10:00:06,000 7 INFO db odoo: next\n"
            )
        found = json.loads(lines.next())["incidents"]  # empty rounds print nothing
        assert len(found) == 1 and found[0]["source"]["line"] == 2
        proc.send_signal(signal.SIGINT)
        rc = proc.wait(timeout=20)
        err = proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert rc == 0
    assert "Traceback" not in err
    assert err == ""


def test_detect_follow_stops_on_sigterm(tmp_path):
    log = tmp_path / "odoo.log"
    log.write_text("2026-11-29 10:00:00,000 7 INFO db odoo: start\n")
    proc = subprocess.Popen(
        [sys.executable, BIN, "detect", "--log", str(log), "--follow", "0.2"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert _Lines(proc.stdout).next().startswith("no incidents")
        proc.terminate()
        assert proc.wait(timeout=20) == 0
        assert proc.stderr.read() == ""
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


# --------------------------------------------------------------------------
# fix-cron

@pytest.fixture
def addons(tmp_path):
    root = tmp_path / "addons"
    (root / "legacy_cron" / "data").mkdir(parents=True)
    (root / "other" / "data").mkdir(parents=True)
    cron = root / "legacy_cron" / "data" / "cron.xml"
    cron.write_bytes(CRON_XML)
    os.chmod(cron, 0o640)
    other = root / "other" / "data" / "cron.xml"
    other.write_bytes(CRON_XML)
    (root / "other" / "data" / "views.xml").write_bytes(
        b"<odoo><record id='v' model='ir.ui.view'/></odoo>\n"
    )
    return root


def test_fix_cron_dry_run_and_check_change_nothing(addons, home):
    cron = addons / "legacy_cron" / "data" / "cron.xml"
    dry = run(["fix-cron", "--dry-run", addons / "legacy_cron"], home=home)
    assert dry.returncode == 0, dry.stderr
    assert "--- a/%s" % str(cron).lstrip("/") in dry.stdout
    assert '-        <field name="numbercall">-1</field>\n' in dry.stdout
    assert '-        <field name="doall" eval="False"/>\n' in dry.stdout
    assert cron.read_bytes() == CRON_XML
    check = run(["fix-cron", "--check", addons], home=home)
    assert check.returncode == 1
    assert "would fix %s" % cron in check.stdout
    assert cron.read_bytes() == CRON_XML
    assert not (home / "audit.jsonl").exists() and not (home / "backups").exists()


def test_fix_cron_writes_backs_up_audits_and_is_idempotent(addons, home):
    cron = addons / "legacy_cron" / "data" / "cron.xml"
    result = run(["fix-cron", addons / "legacy_cron"], home=home)
    assert result.returncode == 0, result.stderr
    assert cron.read_bytes() == CRON_XML_FIXED
    assert oct(cron.stat().st_mode & 0o777) == "0o640"
    assert "fixed %s: removed numbercall (line %d" % (cron, NUMBERCALL_LINE) in result.stdout
    # the untouched module stays untouched
    assert (addons / "other" / "data" / "cron.xml").read_bytes() == CRON_XML
    # backup: exact original bytes, with a sidecar
    backups = sorted((home / "backups").iterdir())
    assert len(backups) == 2
    assert backups[0].read_bytes() == CRON_XML
    sidecar = json.loads(backups[1].read_text())
    assert sidecar["path"] == str(cron) and sidecar["mode"] == 0o640
    # audit: one line per runner step of the remove_deprecated_cron_fields action
    lines = [json.loads(line) for line in (home / "audit.jsonl").read_text().splitlines()]
    assert [(e["action"], e["target"], e["result"]) for e in lines] == [
        ("remove_deprecated_cron_fields.plan", str(cron), "planned"),
        ("remove_deprecated_cron_fields.apply", str(cron), "applied"),
        ("remove_deprecated_cron_fields.verify", str(cron), "ok"),
    ]
    assert all(e["actor"].startswith("cli:") and e["duration"] >= 0 and e["time"]
               for e in lines)
    run_id = re.search(r"\(run ([0-9a-f]+)\)", result.stdout).group(1)
    assert {e["details"]["run_id"] for e in lines} == {run_id}
    # the run record keeps the removals and the backup, for `rollback RUN_ID`
    record = json.loads((home / "runs" / ("%s.json" % run_id)).read_text())
    assert record["state"] == "done"
    removals = record["plan"]["details"]["files"][0]["removals"]
    assert [r["field"] for r in removals] == ["numbercall", "doall"]
    # second run: nothing to do, nothing written, nothing audited
    again = run(["fix-cron", addons / "legacy_cron"], home=home)
    assert again.returncode == 0
    assert "0 file(s) fixed, 1 with nothing to fix, 0 error(s)" in again.stdout
    assert cron.read_bytes() == CRON_XML_FIXED
    assert len((home / "audit.jsonl").read_text().splitlines()) == 3
    assert run(["fix-cron", "--check", addons / "legacy_cron"], home=home).returncode == 0


def test_fix_cron_explicit_backup_dir_and_audit_log(addons, tmp_path):
    bk = tmp_path / "bk"
    audit = tmp_path / "logs" / "audit.jsonl"
    result = run(["fix-cron", "--backup-dir", bk, "--audit-log", audit, addons / "other"])
    assert result.returncode == 0, result.stderr
    assert len(list(bk.iterdir())) == 2
    results = [json.loads(line)["result"] for line in audit.read_text().splitlines()]
    assert results == ["planned", "applied", "ok"]


def test_fix_cron_malformed_file_does_not_stop_the_others(addons, home):
    bad = addons / "other" / "data" / "broken.xml"
    bad.write_bytes(b"<odoo>\n<record id='x' model='ir.cron'>\n</odoo>\n")
    result = run(["fix-cron", addons], home=home)
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "auto-heal: error: %s:3: malformed XML: "
        "Opening and ending tag mismatch: record line 2 and odoo" % bad
    ]
    assert (addons / "legacy_cron" / "data" / "cron.xml").read_bytes() == CRON_XML_FIXED
    assert (addons / "other" / "data" / "cron.xml").read_bytes() == CRON_XML_FIXED
    assert bad.read_bytes() == b"<odoo>\n<record id='x' model='ir.cron'>\n</odoo>\n"


def test_fix_cron_refuses_symlink_escape(addons, tmp_path, home):
    outside = tmp_path / "outside.xml"
    outside.write_bytes(CRON_XML)
    os.symlink(outside, addons / "legacy_cron" / "data" / "evil.xml")
    result = run(["fix-cron", addons / "legacy_cron"], home=home)
    assert result.returncode == 0
    assert "outside the allowed roots" in result.stderr
    assert outside.read_bytes() == CRON_XML


def _log_naming(tmp_path, xml_path):
    log = tmp_path / "odoo.log"
    log.write_text(
        open(SAMPLE).read().replace("/srv/addons/legacy_cron/data/cron.xml", str(xml_path))
    )
    return log


def test_fix_cron_from_log_fixes_exactly_the_named_file(addons, tmp_path, home):
    cron = addons / "legacy_cron" / "data" / "cron.xml"
    log = _log_naming(tmp_path, cron)
    unbounded = run(["fix-cron", "--from-log", log], home=home)
    assert_one_line_error(unbounded)
    assert "--from-log needs --root" in unbounded.stderr
    assert cron.read_bytes() == CRON_XML
    dry = run(["fix-cron", "--dry-run", "--from-log", log, "--root", addons], home=home)
    assert dry.returncode == 0, dry.stderr
    assert cron.read_bytes() == CRON_XML
    result = run(["fix-cron", "--from-log", log, "--root", addons], home=home)
    assert result.returncode == 0, result.stderr
    assert cron.read_bytes() == CRON_XML_FIXED
    assert (addons / "other" / "data" / "cron.xml").read_bytes() == CRON_XML
    assert "1 file(s) fixed" in result.stdout


def test_fix_cron_from_log_with_root(addons, tmp_path, home):
    cron = addons / "legacy_cron" / "data" / "cron.xml"
    log = _log_naming(tmp_path, cron)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    refused = run(["fix-cron", "--from-log", log, "--root", elsewhere], home=home)
    assert_one_line_error(refused)
    assert "outside the allowed roots" in refused.stderr
    assert cron.read_bytes() == CRON_XML
    ok = run(["fix-cron", "--from-log", log, "--root", addons], home=home)
    assert ok.returncode == 0 and cron.read_bytes() == CRON_XML_FIXED


def test_fix_cron_from_log_naming_a_missing_file(tmp_path, home):
    result = run(["fix-cron", "--from-log", SAMPLE, "--root", tmp_path],
                 home=home)  # /srv/addons/... is not here
    assert result.returncode == 0
    assert "does not exist here" in result.stderr
    assert "names no existing ir.cron XML file" in result.stdout


# --------------------------------------------------------------------------
# health

@pytest.fixture
def odoo_stub():
    procs = []

    def start(mode):
        proc, url = fake_odoo.start("--db-status", mode.removeprefix("db-"))
        procs.append(proc)
        return url

    yield start
    for proc in procs:
        proc.terminate()
        proc.wait(timeout=10)


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_health_http_ok_exit_0(odoo_stub):
    result = run(["health", "--url", odoo_stub("db-up")])
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.splitlines()[-1] == "overall: OK"


def test_health_database_down_exit_2(odoo_stub):
    result = run(["health", "--url", odoo_stub("db-down"), "--json"])
    assert result.returncode == 2
    doc = json.loads(result.stdout)
    assert doc["status"] == "critical"
    assert [(c["name"], c["status"], c["value"]) for c in doc["checks"]] == [
        ("odoo_http", "ok", 200),
        ("odoo_db", "critical", 500),
    ]


def test_health_odoo_down_exit_2():
    result = run(["health", "--url", "http://127.0.0.1:%d" % _free_port(), "--timeout", "2"])
    assert result.returncode == 2
    assert "Connection refused" in result.stdout


def test_health_dsn_nobody_listening_critical_and_masked():
    dsn = "postgresql://odoo:T0pS3cret@127.0.0.1:%d/postgres" % _free_port()
    result = run(["health", "--dsn", dsn, "--timeout", "2"])
    assert result.returncode == 2
    assert "T0pS3cret" not in result.stdout + result.stderr
    assert "postgresql://odoo:***@127.0.0.1" in result.stdout
    assert result.stdout.splitlines()[-1] == "overall: CRITICAL"
    kv = run(
        [
            "health",
            "--dsn",
            "host=127.0.0.1 port=%d password=T0pS3cret user=o" % _free_port(),
            "--json",
        ]
    )
    assert kv.returncode == 2 and "T0pS3cret" not in kv.stdout
    assert json.loads(kv.stdout)["checks"][0]["status"] == "critical"


@pytest.mark.skipif(
    not os.environ.get("AUTO_HEAL_PGHOST"), reason="no test PostgreSQL (AUTO_HEAL_PGHOST)"
)
def test_health_dsn_real_postgres_ok():
    dsn = "host=%s port=%s user=%s password=%s dbname=postgres" % (
        os.environ["AUTO_HEAL_PGHOST"],
        os.environ.get("AUTO_HEAL_PGPORT", "5432"),
        os.environ.get("AUTO_HEAL_PGUSER", "postgres"),
        os.environ.get("AUTO_HEAL_PGPASSWORD", ""),
    )
    result = run(["health", "--dsn", dsn])
    assert result.returncode == 0, result.stdout
    if os.environ.get("AUTO_HEAL_PGPASSWORD"):
        assert os.environ["AUTO_HEAL_PGPASSWORD"] not in result.stdout


def test_health_disk_and_log_thresholds(tmp_path):
    free = 100.0 * shutil.disk_usage(tmp_path).free / shutil.disk_usage(tmp_path).total
    ok = run(["health", "--path", tmp_path, "--disk-warn", "0", "--disk-crit", "0"])
    assert ok.returncode == 0
    warn = run(
        ["health", "--path", tmp_path, "--disk-warn", str(min(100, free + 1)), "--disk-crit", "0"]
    )
    assert warn.returncode == 1 and warn.stdout.splitlines()[-1] == "overall: WARNING"
    log = tmp_path / "odoo.log"
    log.write_text("x\n")
    os.utime(log, (time.time() - 600, time.time() - 600))
    assert run(["health", "--log", log, "--log-warn", "3600", "--log-crit", "7200"]).returncode == 0
    assert run(["health", "--log", log, "--log-warn", "60", "--log-crit", "7200"]).returncode == 1
    assert run(["health", "--log", log, "--log-warn", "60", "--log-crit", "300"]).returncode == 2
    # only the checks asked for run
    doc = json.loads(run(["health", "--log", log, "--json"]).stdout)
    assert [c["name"] for c in doc["checks"]] == ["log:%s" % log]


# --------------------------------------------------------------------------
# backup


def test_backup_config(tmp_path, home):
    conf = tmp_path / "odoo.conf"
    conf.write_text("[options]\nadmin_passwd = x\n")
    dest = tmp_path / "versions"
    first = run(["backup", "--config", conf, "--dest", dest, "--json"], home=home)
    assert first.returncode == 0, first.stderr
    v = json.loads(first.stdout)
    assert v["created"] is True
    assert open(v["path"], "rb").read() == conf.read_bytes()
    assert json.loads(open(v["path"] + ".json").read())["sha256"] == v["sha256"]
    second = run(["backup", "--config", conf, "--dest", dest], home=home)
    assert second.returncode == 0 and second.stdout.startswith("unchanged:")
    conf.write_text("[options]\nadmin_passwd = y\n")
    third = run(["backup", "--config", conf, "--dest", dest, "--keep", "1"], home=home)
    assert third.returncode == 0 and third.stdout.startswith("kept ")
    assert len(list(dest.iterdir())) == 2  # --keep 1: one copy and its metadata
    audit = [json.loads(line) for line in (home / "audit.jsonl").read_text().splitlines()]
    assert [(a["action"], a["result"]) for a in audit] == [
        ("backup-config", "created"),
        ("backup-config", "created"),
    ]
    assert "x\n" not in (home / "audit.jsonl").read_text()


def test_backup_default_dest_under_auto_heal_home(tmp_path, home):
    conf = tmp_path / "odoo.conf"
    conf.write_text("[options]\n")
    result = run(["backup", "--config", conf], home=home)
    assert result.returncode == 0, result.stderr
    assert len(list((home / "config").iterdir())) == 2
