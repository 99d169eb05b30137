"""``monitor`` claims the host fix runs approved in Odoo (``[handover] run_approved``), runs
them here and reports back, as ``run-approved`` does: data from Odoo, power from this
host (readme/SECURITY.md). A real monitor process against a real JSON-RPC server
(tools/fake_odoo.py --rpc) and a real fake Odoo to watch."""

import json
import os

import pytest

from host.tests.watchdog_helpers import base_config, wait_for, write_config
from tools.fake_odoo import start as start_fake_odoo
from tools.samples import CRON_XML, CRON_XML_FIXED, legacy_cron_module

KEY = "7c1e2d3f4a5b6c7d8e9f0a1b2c3d4e5f6a7b8c9d"


@pytest.fixture
def rpc(tmp_path):
    servers = []

    def start(runs):
        state = tmp_path / "rpc.json"
        state.write_text(json.dumps({"db": "prod", "login": "watchdog", "key": KEY, "uid": 7,
                                     "runs": runs}))
        proc, url = start_fake_odoo("--rpc", state)
        servers.append(proc)
        return state, url

    yield start
    for proc in servers:
        proc.terminate()
        proc.wait(timeout=10)


def _config(tmp_path, fake, url, roots, run_approved=True):
    key_file = tmp_path / "api-key"
    key_file.write_text(KEY + "\n")
    os.chmod(key_file, 0o600)
    return write_config(tmp_path, base_config(tmp_path, fake, handover={
        "url": url, "db": "prod", "login": "watchdog", "api_key_file": str(key_file),
        "retry": 0.5, "run_approved": run_approved}, fixes={"roots": roots},
        watchdog={"host": "web1"}))


def test_the_monitor_runs_approved_host_runs_with_its_own_power_only(tmp_path, fake, monitors,
                                                                     rpc):
    addons = tmp_path / "addons"
    legacy_cron_module(addons)
    cron = addons / "legacy_cron" / "data" / "cron.xml"
    marker = tmp_path / "ran-as-root"
    state, url = rpc([
        {"id": 1, "state": "approved", "action": "remove_deprecated_cron_fields",
         "params": {"paths": [str(cron)]}, "incident": "fp-cron"},
        # a Manager's run that names the program to run: power, not data
        {"id": 2, "state": "approved", "action": "restart_service", "incident": "",
         "params": {"service": "odoo", "via": "command",
                    "command": ["/usr/bin/touch", str(marker)]}},
        # a file outside this host's roots
        {"id": 3, "state": "approved", "action": "remove_deprecated_cron_fields",
         "params": {"paths": ["/etc/passwd"]}, "incident": ""},
        {"id": 4, "state": "pending", "action": "remove_deprecated_cron_fields",
         "params": {"paths": [str(cron)]}, "incident": "fp-cron"},
    ])
    fake.start()
    monitor = monitors(_config(tmp_path, fake, url, [str(addons)]), tmp_path / "state")

    def reported():
        done = [r for r in json.loads(state.read_text())["runs"] if r.get("record")]
        return done if len(done) == 3 else None

    runs = wait_for(reported, 60, what="the three approved runs reported")
    by_id = {r["id"]: r for r in json.loads(state.read_text())["runs"]}
    assert {r["id"] for r in runs} == {1, 2, 3}
    assert (by_id[1]["state"], by_id[1]["host"]) == ("done", "web1")
    assert by_id[1]["record"]["incident"] == "fp-cron"
    assert cron.read_bytes() == CRON_XML_FIXED
    assert not marker.exists()  # an argv from the database never runs here
    assert by_id[2]["state"] == "failed"
    assert "set on the host" in by_id[2]["record"]["error"]
    assert by_id[3]["state"] == "failed"
    assert "outside the allowed roots" in by_id[3]["record"]["error"]
    assert by_id[4]["state"] == "pending"  # not approved: never claimed
    wd = monitor.wait(lambda wd: sum(wd["counters"].get("approved_runs", {}).values()) == 3,
                      20, "the runs counted")
    assert wd["counters"]["approved_runs"] == {"done": 1, "blocked": 2}
    log = open(tmp_path / "watchdog.log").read()
    assert "approved fix run 1: remove_deprecated_cron_fields %s -> done" % cron in log
    # the record is kept here: `bin/auto-heal rollback RUN_ID` works on this host
    run_id = by_id[1]["record"]["run_id"]
    assert (tmp_path / "state" / "runs" / f"{run_id}.json").exists()
    assert cron.read_bytes() != CRON_XML


def test_run_approved_off_claims_nothing(tmp_path, fake, monitors, rpc):
    state, url = rpc([{"id": 1, "state": "approved", "action": "remove_deprecated_cron_fields",
                       "params": {"paths": ["/nowhere/cron.xml"]}, "incident": ""}])
    fake.start()
    monitor = monitors(_config(tmp_path, fake, url, [], run_approved=False), tmp_path / "state")
    # patterns are pulled at the first hand-over: Odoo was reached, and still nothing claimed
    wait_for(lambda: any(c[-1] == "watchdog_patterns"
                         for c in json.loads(state.read_text()).get("calls", [])), 30,
             what="the first hand-over")
    monitor.wait(lambda wd: wd["counters"]["cycles"] >= 4, 20, "a few cycles")
    data = json.loads(state.read_text())
    assert data["runs"][0]["state"] == "approved"
    assert not any(c[-1] == "watchdog_claim" for c in data.get("calls", []))
