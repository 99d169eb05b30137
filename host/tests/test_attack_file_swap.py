"""Attack: the odoo user swaps a file for a symlink while root fixes it (readme/SECURITY.md).

An unprivileged process (``nobody``) owns the addons folder. It watches the
cron XML that ``bin/auto-heal fix-cron --from-log`` (root) is about to fix,
and right after root's 1st, 2nd, ... Nth open of it, swaps it for a symlink
to a root-only 0600 file. Whatever the moment, the victim is never touched,
and a run that saw the swap ends refused or failed, saying why. The same
holds for ``restore_config`` (apply and rollback) and for the cron rollback.
"""

import json
import os
import pwd
import shutil
import stat
import subprocess
import sys
import tempfile

import pytest

from tools import samples
from tools.testing import Unprivileged, count_opens, swap_for_symlink_after_opens

from .watchdog_helpers import BIN, REPO

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the attacks need root and nobody")
SAMPLE = os.path.join(REPO, "tests", "samples", "real", "odoo18-numbercall-startup-failure.log")
NOBODY = pwd.getpwnam("nobody") if os.geteuid() == 0 else None
VICTIM_BYTES = b"root:$6$secret-hash:19000:0:99999:7:::\n"

#: A big cron XML, so that root's parse between two opens outlasts the attacker's swap.
CRON_XML = samples.CRON_XML.replace(
    b"</odoo>", b"".join(b'    <record id="p%d" model="res.partner"><field name="name">P %d'
                         b'</field></record>\n' % (n, n) for n in range(40000)) + b"</odoo>")


@pytest.fixture
def scene():
    """/tmp/x: addons/legacy_cron (nobody's), secret/victim (root 0600), the log, state."""
    base = tempfile.mkdtemp(prefix="auto_heal-swap-", dir="/tmp")
    os.chmod(base, 0o755)
    addons = os.path.join(base, "addons")
    data = os.path.join(addons, "legacy_cron", "data")
    os.makedirs(data)
    with open(os.path.join(addons, "legacy_cron", "__manifest__.py"), "w") as fh:
        fh.write("{'name': 'Legacy', 'data': ['data/cron.xml']}\n")
    for folder, _, files in os.walk(addons):
        os.chown(folder, NOBODY.pw_uid, NOBODY.pw_gid)
        for name in files:
            os.chown(os.path.join(folder, name), NOBODY.pw_uid, NOBODY.pw_gid)
    secret = os.path.join(base, "secret")
    os.makedirs(secret, mode=0o700)
    victim = os.path.join(secret, "shadow")
    with open(victim, "wb") as fh:
        fh.write(VICTIM_BYTES)
    os.chmod(victim, 0o600)
    cron = os.path.join(data, "cron.xml")
    log = os.path.join(base, "odoo.log")
    with open(SAMPLE) as fh:
        text = fh.read().replace("/srv/addons/legacy_cron/data/cron.xml", cron)
    with open(log, "w") as fh:
        fh.write(text)
    yield {"base": base, "addons": addons, "cron": cron, "victim": victim, "log": log,
           "state": os.path.join(base, "state")}
    shutil.rmtree(base, ignore_errors=True)


def _reset(scene):
    """A fresh cron XML owned by nobody (the attacker's own file)."""
    cron = scene["cron"]
    if os.path.lexists(cron):
        os.unlink(cron)
    with open(cron, "wb") as fh:
        fh.write(CRON_XML)
    os.chown(cron, NOBODY.pw_uid, NOBODY.pw_gid)
    os.chmod(cron, 0o644)
    shutil.rmtree(scene["state"], ignore_errors=True)


def _victim_state(path):
    st = os.lstat(path)
    with open(path, "rb") as fh:
        return fh.read(), st.st_ino, stat.S_IMODE(st.st_mode), st.st_uid, st.st_size


def _fix_cron(scene):
    state = scene["state"]
    env = dict(os.environ, AUTO_HEAL_HOME=state)
    return subprocess.run(
        [sys.executable, BIN, "fix-cron", "--from-log", scene["log"], "--root", scene["addons"],
         "--backup-dir", os.path.join(state, "backups"), "--runs-dir",
         os.path.join(state, "runs"), "--audit-log", os.path.join(state, "audit.jsonl")],
        capture_output=True, text=True, timeout=300, env=env)


def _runs(scene):
    folder = os.path.join(scene["state"], "runs")
    if not os.path.isdir(folder):
        return []
    return [json.load(open(os.path.join(folder, name))) for name in sorted(os.listdir(folder))
            if name.endswith(".json") and not name.startswith(".")]


REASONS = ("symlink", "changed since", "swapped", "no longer the file")


def test_fix_cron_never_writes_through_a_file_swapped_at_any_open(scene):
    _reset(scene)
    opens = count_opens(scene["cron"], lambda: _fix_cron(scene))
    assert opens >= 3, opens  # plan, backup, apply: root reads the file several times
    assert b"numbercall" not in open(scene["cron"], "rb").read()  # the clean run fixed it
    victim = _victim_state(scene["victim"])
    refused = []
    for _attempt in range(2):
        for nth in range(opens, 0, -1):  # the last opens first: where a path-based write loses
            _reset(scene)
            attacker = Unprivileged(
                "nobody", swap_for_symlink_after_opens(scene["cron"], scene["victim"], nth))
            attacker.wait_ready()
            result = _fix_cron(scene)
            report = attacker.finish()
            assert _victim_state(scene["victim"]) == victim, (nth, report, result.stderr)
            assert report.startswith("swapped after open"), report
            runs = _runs(scene)
            states = [r["state"] for r in runs]
            if states != ["done"]:
                refused.append(nth)
                assert result.returncode != 0, (nth, result.stdout)
                reasons = result.stderr + " ".join(r.get("error", "") for r in runs)
                assert any(word in reasons for word in REASONS), (nth, reasons)
                assert not [s for s in states if s == "done"], (nth, states)
    # every open but root's last one came before a check that saw the swap
    assert set(refused) >= set(range(1, opens)), (refused, opens)


def test_the_cron_rollback_never_follows_a_symlink(scene):
    from engine.actions.runner import Context, execute, rollback_run
    from engine.audit import AuditLog

    _reset(scene)
    context = Context(actor="test", audit=AuditLog(os.path.join(scene["base"], "audit.jsonl")),
                      backup_dir=os.path.join(scene["base"], "backups"),
                      roots=(scene["addons"],))
    record = execute("remove_deprecated_cron_fields", context, {"paths": [scene["cron"]]})
    assert record.state == "done", record.error
    victim = _victim_state(scene["victim"])
    attacker = Unprivileged("nobody", swap_for_symlink_after_opens(
        os.path.dirname(scene["cron"]) + "/cron.xml", scene["victim"], 0))
    attacker.wait_ready()
    assert attacker.finish().startswith("swapped")
    with pytest.raises(Exception, match="symlink"):
        rollback_run(record, context)
    assert _victim_state(scene["victim"]) == victim
    assert os.path.islink(scene["cron"])


CONF_GOOD = b"[options]\nworkers = 2\ndb_password = good\n"
CONF_BAD = b"[options]\nworkers = 2\ndb_password = good\nbroken line\n"


@pytest.mark.parametrize("nth", [1, 2, 3])
def test_restore_config_never_writes_through_a_swapped_config(scene, nth):
    from engine.actions.runner import Context, execute
    from engine.audit import AuditLog
    from engine.backup import backup_config

    etc = os.path.join(scene["base"], "etc")
    os.makedirs(etc)
    os.chown(etc, NOBODY.pw_uid, NOBODY.pw_gid)  # the Docker image chowns it to odoo
    conf = os.path.join(etc, "odoo.conf")
    with open(conf, "wb") as fh:
        fh.write(CONF_GOOD)
    versions = os.path.join(scene["base"], "versions")
    good = backup_config(conf, versions)
    with open(conf, "wb") as fh:
        fh.write(CONF_BAD)
    os.chown(conf, NOBODY.pw_uid, NOBODY.pw_gid)
    victim = _victim_state(scene["victim"])
    context = Context(actor="test", audit=AuditLog(os.path.join(scene["base"], "audit.jsonl")),
                      backup_dir=os.path.join(scene["base"], "backups"))
    attacker = Unprivileged("nobody", swap_for_symlink_after_opens(conf, scene["victim"], nth))
    attacker.wait_ready()
    record = execute("restore_config", context,
                     {"config": conf, "version": good.name, "versions_dir": versions})
    report = attacker.finish()
    assert report.startswith("swapped"), report
    assert _victim_state(scene["victim"]) == victim, (record.state, record.error)
    assert record.state != "done"
    assert any(word in record.error for word in REASONS), record.error


def test_the_unattended_monitor_never_writes_through_a_swapped_file(scene):
    """The same attack on `monitor` with [fixes] auto: a log record names the XML,
    the watchdog fixes it by itself, and the odoo user swaps the file meanwhile."""
    from .watchdog_helpers import (
        FakeOdoo,
        MonitorProcess,
        base_config,
        spool_entries,
        wait_for,
        write_config,
    )

    victim = _victim_state(scene["victim"])
    fake = FakeOdoo(os.path.join(scene["base"], "odoo"))
    try:
        fake.start()
        for nth in (2, 3, 4):
            _reset(scene)
            open(fake.log, "w").close()  # the record of the round before is not read again
            state_dir = os.path.join(scene["base"], f"state-{nth}")
            config = base_config(scene["base"], fake, fixes={
                "auto": ["remove_deprecated_cron_fields"], "roots": [scene["addons"]],
                "first_delay": 0.0})
            config["watchdog"]["state_dir"] = state_dir
            config["scan"] = {"settle": 0.0}
            monitor = MonitorProcess(write_config(scene["base"], config, f"wd-{nth}.toml"),
                                     state_dir)
            try:
                monitor.wait(lambda wd: wd["status"]["healthy"], 30)
                attacker = Unprivileged("nobody", swap_for_symlink_after_opens(
                    scene["cron"], scene["victim"], nth))
                attacker.wait_ready()
                with open(fake.log, "a") as handle, open(scene["log"]) as record:
                    handle.write(record.read())
                runs = wait_for(lambda folder=state_dir: [
                    e["record"] for e in spool_entries(folder) if e["kind"] == "fix_run"],
                    120, what="the watchdog's fix run")
                report = attacker.finish()
            finally:
                monitor.stop()
            assert _victim_state(scene["victim"]) == victim, (nth, report, runs)
            assert report.startswith("swapped"), (report, runs)
            assert [r["state"] for r in runs] != ["done"], (nth, runs)
            assert any(word in runs[0]["error"] for word in REASONS), runs[0]["error"]
    finally:
        fake.cleanup()
