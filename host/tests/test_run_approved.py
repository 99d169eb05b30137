"""run-approved and host/rpc.py against a real HTTP server process speaking
Odoo's JSON-RPC contract (tools/fake_odoo.py --rpc). The real Odoo 18
end to end is test_run_approved_odoo.py."""

import json
import os
import pwd
import socket
import textwrap

import pytest

from host.rpc import OdooRPC, RPCError
from host.tests.conftest import run_auto_heal
from tools.fake_odoo import start as start_fake_odoo
from tools.samples import CRON_XML, CRON_XML_FIXED, legacy_cron_module

KEY = "9f2c1e7d5b3a48a6b0c4e1f2a3b4c5d6e7f8a9b0"

class FakeOdoo:
    def __init__(self, tmp_path, runs=(), mode="ok"):
        self.state_path = tmp_path / "fake_odoo_state.json"
        self.write({"db": "prod", "login": "watchdog", "key": KEY, "uid": 7, "mode": mode,
                    "runs": list(runs)})
        self.proc, self.url = start_fake_odoo("--rpc", self.state_path)

    def write(self, state):
        self.state_path.write_text(json.dumps(state))

    def state(self):
        return json.loads(self.state_path.read_text())

    def set_mode(self, mode):
        state = self.state()
        state["mode"] = mode
        self.write(state)

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=10)


@pytest.fixture
def fake_odoo(tmp_path):
    servers = []

    def start(runs=(), mode="ok"):
        server = FakeOdoo(tmp_path, runs, mode)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


def run(args, home, key=KEY, timeout=120):
    """``bin/auto-heal`` with *key* as $AUTO_HEAL_API_KEY (None: none)."""
    env = {k: v for k, v in os.environ.items() if k != "AUTO_HEAL_API_KEY"}
    if key is not None:
        env["AUTO_HEAL_API_KEY"] = key
    return run_auto_heal(args, home, env=env, timeout=timeout)


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _no_key_anywhere(home, *texts):
    for text in texts:
        assert KEY not in text
    for dirpath, _, filenames in os.walk(home):
        for name in filenames:
            with open(os.path.join(dirpath, name), "rb") as fh:
                assert KEY.encode() not in fh.read(), name


# --------------------------------------------------------------------------
# the client


def test_client_login_and_calls(fake_odoo):
    server = fake_odoo([{"id": 1, "state": "approved", "action": "x", "params": {},
                         "incident": "fp"}])
    client = OdooRPC(server.url, "prod", "watchdog", KEY, timeout=10)
    assert client.login() == 7
    assert client.call("common", "version")["server_version"] == "18.0"
    claimed = client.execute_kw("auto_heal.fix.run", "watchdog_claim", ["host1"])
    assert claimed == [{"id": 1, "action": "x", "params": {}, "incident": "fp"}]
    assert client.execute_kw("auto_heal.fix.run", "watchdog_claim", ["host1"]) == []
    assert server.state()["runs"][0]["host"] == "host1"


@pytest.mark.parametrize("case,expected", [
    ("bad login", "login refused for 'watchdog' on database 'prod' (wrong login or API key)"),
    ("bad db", 'Odoo refused common.authenticate: psycopg2.OperationalError: connection to '
               'server failed: FATAL: database "nope" does not exist'),
    ("http500", "HTTP 500 from http://127.0.0.1:PORT/jsonrpc"),
    ("not_json", "http://127.0.0.1:PORT/jsonrpc did not answer JSON-RPC (is it Odoo?)"),
    ("rpc_error", "Odoo refused object.execute_kw: odoo.exceptions.AccessError: You are not "
                  "allowed to access 'Fix Run' (auto_heal.fix.run) records."),
])
def test_client_errors_are_one_line(fake_odoo, case, expected):
    server = fake_odoo(mode=case if case in ("http500", "not_json", "rpc_error") else "ok")
    client = OdooRPC(server.url, "nope" if case == "bad db" else "prod", "watchdog",
                     "wrong" if case == "bad login" else KEY, timeout=10)
    with pytest.raises(RPCError) as info:
        client.execute_kw("auto_heal.fix.run", "watchdog_claim", ["h"])
    message = str(info.value)
    assert message == expected.replace("PORT", server.url.rsplit(":", 1)[1])
    assert "\n" not in message and KEY not in message


def test_client_unreachable_and_timeout():
    with pytest.raises(RPCError, match=r"cannot reach http://127.0.0.1:\d+/jsonrpc: "
                                       "Connection refused"):
        OdooRPC("http://127.0.0.1:%d" % _free_port(), "db", "u", KEY, timeout=5).login()
    with socket.socket() as silent:  # accepts, never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        url = "http://127.0.0.1:%d" % silent.getsockname()[1]
        with pytest.raises(RPCError, match=r"no answer from .* within 1s"):
            OdooRPC(url, "db", "u", KEY, timeout=1).login()


# --------------------------------------------------------------------------
# run-approved


@pytest.fixture
def addons(tmp_path):
    root = tmp_path / "addons"
    legacy_cron_module(root)
    return root


def test_run_approved_runs_claimed_host_runs_and_reports(fake_odoo, addons, home, tmp_path):
    cron = addons / "legacy_cron" / "data" / "cron.xml"
    server = fake_odoo([
        {"id": 11, "state": "approved", "action": "remove_deprecated_cron_fields",
         "params": {"paths": [str(cron)]}, "incident": "fp-cron"},
        {"id": 12, "state": "pending", "action": "remove_deprecated_cron_fields",
         "params": {"paths": [str(cron)]}, "incident": "fp-cron"},
    ])
    result = run(["run-approved", "--url", server.url, "--db", "prod", "--login", "watchdog",
                  "--root", addons, "--host", "web1"], home)
    assert result.returncode == 0, (result.stdout, result.stderr)
    assert cron.read_bytes() == CRON_XML_FIXED
    state = server.state()
    done, pending = state["runs"]
    assert (done["state"], done["host"]) == ("done", "web1")
    assert pending["state"] == "pending"  # not approved: not claimed, not run
    record = done["record"]
    assert record["state"] == "done" and record["incident"] == "fp-cron"
    assert record["actor"] == "watchdog:watchdog@prod"
    assert record["action"] == "remove_deprecated_cron_fields" and record["target"] == str(cron)
    assert "verified:" in record["output"]
    assert record["plan"]["diff"].count("\n-") == 2
    # the local run store has it too: `rollback RUN_ID` works on the host
    assert (home / "runs" / ("%s.json" % record["run_id"])).exists()
    assert "fix run 11: remove_deprecated_cron_fields %s -> done" % cron in result.stdout
    audit = [json.loads(line) for line in (home / "audit.jsonl").read_text().splitlines()]
    assert {a["actor"] for a in audit} == {"watchdog:watchdog@prod"}
    assert {a["details"]["incident"] for a in audit} == {"fp-cron"}
    _no_key_anywhere(home, result.stdout, result.stderr)
    assert [c[1:] for c in state["calls"]] == [
        ["common", "authenticate", None], ["object", "execute_kw", "watchdog_claim"],
        ["object", "execute_kw", "watchdog_report"]]

    rollback = run(["rollback", record["run_id"]], home)
    assert rollback.returncode == 0, rollback.stderr
    assert cron.read_bytes() == CRON_XML

    # nothing approved any more: nothing to do
    again = run(["run-approved", "--url", server.url, "--db", "prod", "--login", "watchdog",
                 "--root", addons, "--host", "web1"], home)
    assert again.returncode == 0
    assert again.stdout.strip() == "no approved host fix run for web1"


def test_run_approved_refuses_what_the_host_does_not_allow(fake_odoo, addons, home, tmp_path):
    marker = tmp_path / "ran"
    server = fake_odoo([
        {"id": 1, "state": "approved", "action": "restart_service", "incident": "",
         "params": {"service": "odoo", "via": "command", "url": "http://127.0.0.1:9",
                    "command": ["/usr/bin/touch", str(marker)]}},
        {"id": 2, "state": "approved", "action": "reset_stuck_module_states", "params": {},
         "incident": ""},
        {"id": 3, "state": "approved", "action": "no_such_action", "params": {},
         "incident": ""},
        {"id": 4, "state": "approved", "action": "remove_deprecated_cron_fields",
         "params": "not json", "incident": ""},
        {"id": 5, "state": "approved", "action": "remove_deprecated_cron_fields",
         "params": {"paths": ["/etc"]}, "incident": ""},
    ])
    result = run(["run-approved", "--url", server.url, "--db", "prod", "--login", "watchdog",
                  "--root", addons], home)
    assert result.returncode == 1, result.stderr
    assert not marker.exists()  # an argv from the database never runs here
    records = {r["id"]: r["record"] for r in server.state()["runs"]}
    assert {r["state"] for r in records.values()} == {"blocked"}
    assert "command, url, via are set on the host" in records[1]["error"]
    assert "runs inside Odoo" in records[2]["error"]
    assert "unknown fix action 'no_such_action'" in records[3]["error"]
    assert "params are not JSON" in records[4]["error"]
    assert "outside the allowed roots" in records[5]["error"]
    assert {r["state"] for r in server.state()["runs"]} == {"failed"}
    assert "5 run(s) claimed, 5 need attention" in result.stdout


def test_run_approved_file_actions_need_a_root(fake_odoo, addons, home):
    cron = addons / "legacy_cron" / "data" / "cron.xml"
    server = fake_odoo([{"id": 1, "state": "approved", "action":
                         "remove_deprecated_cron_fields", "params": {"paths": [str(cron)]},
                         "incident": ""}])
    result = run(["run-approved", "--url", server.url, "--db", "prod", "--login", "watchdog"],
                 home)
    assert result.returncode == 1
    assert "this host has no roots" in server.state()["runs"][0]["record"]["error"]
    assert cron.read_bytes() == CRON_XML


def test_run_approved_budget_comes_from_the_local_history(fake_odoo, addons, home):
    cron = addons / "legacy_cron" / "data" / "cron.xml"
    first = run(["fix", "remove_deprecated_cron_fields", "--path", cron], home)
    assert first.returncode == 0, first.stdout + first.stderr
    cron.write_bytes(CRON_XML)  # a deployment brings the broken file back
    server = fake_odoo([{"id": 1, "state": "approved", "action":
                         "remove_deprecated_cron_fields", "params": {"paths": [str(cron)]},
                         "incident": "fp"}])
    result = run(["run-approved", "--url", server.url, "--db", "prod", "--login", "watchdog",
                  "--root", addons, "--budget-max-runs", "1"], home)
    assert result.returncode == 1
    record = server.state()["runs"][0]["record"]
    assert (record["state"], record["escalate"]) == ("refused", True)
    assert "budget used up: 1 runs within 30 min" in record["error"]
    assert "escalate: a person must look at" in result.stdout
    assert cron.read_bytes() == CRON_XML


def test_run_approved_report_failure_is_reported(fake_odoo, addons, home):
    cron = addons / "legacy_cron" / "data" / "cron.xml"
    server = fake_odoo([{"id": 1, "state": "approved", "action":
                         "remove_deprecated_cron_fields", "params": {"paths": [str(cron)]},
                         "incident": ""}], mode="report_error")
    result = run(["run-approved", "--url", server.url, "--db", "prod", "--login", "watchdog",
                  "--root", addons], home)
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        "auto-heal: error: fix run 1: Odoo refused object.execute_kw: "
        "odoo.exceptions.ValidationError: the run is not running"]
    assert "NOT reported" in result.stdout
    assert cron.read_bytes() == CRON_XML_FIXED  # the fix itself was done and recorded locally
    assert len(list((home / "runs").glob("[0-9a-f]*.json"))) == 1


@pytest.mark.parametrize("case", ["bad key", "http500", "rpc_error", "unreachable", "bad db"])
def test_run_approved_errors_are_one_line_exit_2(fake_odoo, home, tmp_path, case):
    server = fake_odoo([], mode=case if case in ("http500", "rpc_error") else "ok")
    url = "http://127.0.0.1:%d" % _free_port() if case == "unreachable" else server.url
    result = run(["run-approved", "--url", url, "--db", "nope" if case == "bad db" else "prod",
                  "--login", "watchdog"], home, key="wrong-key" if case == "bad key" else KEY)
    assert result.returncode == 2, (result.stdout, result.stderr)
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("auto-heal: error: "), lines
    assert "Traceback" not in result.stderr
    assert {"bad key": "login refused", "http500": "HTTP 500", "rpc_error": "AccessError",
            "unreachable": "cannot reach", "bad db": "does not exist"}[case] in lines[0]
    _no_key_anywhere(home, result.stdout, result.stderr)


def test_run_approved_api_key_file(fake_odoo, home, tmp_path):
    server = fake_odoo([])
    key_file = tmp_path / "key"
    key_file.write_text(KEY + "\n")
    os.chmod(key_file, 0o600)
    result = run(["run-approved", "--url", server.url, "--db", "prod", "--login", "watchdog",
                  "--api-key-file", key_file, "--host", "h"], home, key=None)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "no approved host fix run for h"
    missing = run(["run-approved", "--url", server.url, "--db", "prod"], home, key=None)
    assert missing.returncode == 2
    assert "needs an API key" in missing.stderr


def _host_config(tmp_path, text):
    path = tmp_path / "auto-heal.toml"
    path.write_text(textwrap.dedent(text))
    return path


def test_run_approved_takes_data_from_odoo_and_power_from_this_host(fake_odoo, tmp_path, home):
    """Odoo names the path (an Errno 13 capture): the run is done with this host's
    owner and modes from [actions.fix_permissions]. Runs that carry host parameters
    (an owner, a mode, an argv, a pg_ctl) are refused and reported back as failed:
    nothing of theirs runs."""
    data = tmp_path / "data"
    (data / "filestore").mkdir(parents=True)
    os.chmod(data / "filestore", 0o700)
    me = pwd.getpwuid(os.getuid()).pw_name
    marker = tmp_path / "odoo-argv-ran"
    evil = tmp_path / "evil-pg_ctl"
    evil.write_text(f"#!/bin/sh\ntouch {marker}\n")
    os.chmod(evil, 0o755)
    server = fake_odoo([
        {"id": 1, "state": "approved", "action": "fix_permissions", "incident": "fp-13",
         "params": {"path": str(data / "filestore" / "x")}},
        {"id": 2, "state": "approved", "action": "fix_permissions", "incident": "fp-13b",
         "params": {"path": str(data / "filestore"), "owner": "root:root", "dir_mode": "0755"}},
        {"id": 3, "state": "approved", "action": "restart_service", "incident": "fp-db",
         "params": {"service": "odoo", "via": "command",
                    "command": ["/usr/bin/touch", str(marker)]}},
        {"id": 4, "state": "approved", "action": "restart_service", "incident": "fp-pg",
         "params": {"service": "postgresql", "pg_ctl": str(evil)}},
    ])
    config = _host_config(tmp_path, f"""\
        [fixes]
        roots = ["{data}"]
        [odoo]
        url = "{server.url}"
        [odoo.restart]
        via = "command"
        command = ["/bin/true"]
        timeout = 10
        [actions.fix_permissions]
        owner = "{me}"
        dir_mode = "0750"
        """)
    result = run(["run-approved", "--url", server.url, "--db", "prod", "--login", "watchdog",
                  "--config", config], home)
    assert result.returncode == 1, (result.stdout, result.stderr)
    st = os.stat(data / "filestore")
    assert (st.st_mode & 0o7777, st.st_uid) == (0o750, os.getuid())
    assert not marker.exists()
    records = {r["id"]: r["record"] for r in server.state()["runs"]}
    assert records[1]["state"] == "done" and records[1]["params"]["owner"] == me
    assert records[2]["state"] == "blocked"
    assert "dir_mode, owner are set on the host" in records[2]["error"]
    assert records[3]["state"] == "blocked"
    assert "command, via are set on the host" in records[3]["error"]
    assert records[4]["state"] == "blocked"
    assert "pg_ctl is set on the host" in records[4]["error"]
    assert "fix run 4: restart_service - -> blocked" in result.stdout


def test_run_approved_restarts_only_the_way_this_host_says(fake_odoo, tmp_path, home):
    """A restart_service run from Odoo names the service (data); the argv is this
    host's [odoo.restart] command."""
    marker = tmp_path / "host-argv-ran"
    server = fake_odoo([{"id": 1, "state": "approved", "action": "restart_service",
                         "incident": "fp", "params": {"service": "odoo"}}])
    config = _host_config(tmp_path, f"""\
        [odoo]
        url = "{server.url}"
        [odoo.restart]
        via = "command"
        command = ["/usr/bin/touch", "{marker}"]
        timeout = 10
        """)
    result = run(["run-approved", "--url", server.url, "--db", "prod", "--login", "watchdog",
                  "--config", config], home)
    assert result.returncode == 0, (result.stdout, result.stderr)
    assert marker.exists()
    record = server.state()["runs"][0]["record"]
    assert record["state"] == "done"
    assert record["plan"]["details"]["argv"] == ["/usr/bin/touch", str(marker)]


def test_run_approved_bad_host_config(fake_odoo, tmp_path, home):
    bad = _host_config(tmp_path, """\
        [actions.restart_service]
        service = "odoo"
        """)
    result = run(["run-approved", "--url", "http://127.0.0.1:9", "--db", "prod",
                  "--config", bad], home)
    assert result.returncode == 2
    assert result.stderr.startswith("auto-heal: error: ")
    assert "[actions.restart_service] has no host parameter 'service'" in result.stderr


def test_an_api_key_file_others_can_read_is_refused(fake_odoo, tmp_path, home):
    server = fake_odoo([])
    key_file = tmp_path / "key"
    key_file.write_text(KEY + "\n")
    os.chmod(key_file, 0o644)
    result = run(["run-approved", "--url", server.url, "--db", "prod", "--login", "watchdog",
                  "--api-key-file", key_file], home, key=None)
    assert result.returncode == 2
    assert "must be mode 0600" in result.stderr
    _no_key_anywhere(home, result.stdout, result.stderr)
    fifo = tmp_path / "key.fifo"
    os.mkfifo(fifo, 0o600)
    hung = run(["run-approved", "--url", server.url, "--db", "prod", "--login", "watchdog",
                "--api-key-file", fifo], home, key=None, timeout=30)
    assert hung.returncode == 2 and "not a regular file" in hung.stderr


# --------------------------------------------------------------------------
# what was approved is what runs (engine/planhash.py)


def _claim_run(cron, **approval):
    return dict({"id": 1, "state": "approved", "action": "remove_deprecated_cron_fields",
                 "params": {"paths": [str(cron)]}, "incident": "fp-cron"}, **approval)


def test_run_approved_plans_only_then_refuses_a_plan_that_changed_here(fake_odoo, addons,
                                                                        home):
    """A plan-only claim reports this host's plan (nothing changes); once that plan is
    approved, a file changed since is refused as stale and reported, untouched; the
    approved plan itself runs."""
    cron = addons / "legacy_cron" / "data" / "cron.xml"
    args = ["run-approved", "--url", None, "--db", "prod", "--login", "watchdog",
            "--root", addons, "--host", "web1"]
    server = fake_odoo([_claim_run(cron, plan_only=True, target_host="web1")])
    args[2] = server.url
    first = run(args, home)
    assert cron.read_bytes() == CRON_XML  # planned only
    [reported] = server.state()["runs"]
    record = reported["record"]
    assert (record["state"], reported["state"]) == ("planned", "pending"), first.stdout
    assert record["plan_hash"].startswith("sha256:")
    assert record["plan"]["diff"].count("\n-") == 2
    approved_plan = record["plan_hash"]

    # edited after the approval, before the run (next to the fields: inside the diff)
    changed = CRON_XML.replace(b"days</field>", b"days</field> <!-- renamed -->")
    cron.write_bytes(changed)
    state = server.state()
    state["runs"] = [_claim_run(cron, host_plan_hash=approved_plan, target_host="web1")]
    server.write(state)
    second = run(args, home)
    assert second.returncode == 1, (second.stdout, second.stderr)
    assert cron.read_bytes() == changed, "a plan nobody approved changed the file"
    [reported] = server.state()["runs"]
    record = reported["record"]
    assert (record["state"], reported["state"]) == ("stale", "stale")
    assert "differs from the host plan approved in Odoo" in record["error"]
    assert record["plan_hash"] != approved_plan
    assert "renamed" in record["plan"]["diff"]
    assert "-> stale" in second.stdout
    audit = [json.loads(line) for line in (home / "audit.jsonl").read_text().splitlines()]
    assert audit[-1]["result"] == "stale"
    assert audit[-1]["details"]["approved_hash"] == approved_plan
    assert not any(a["action"].endswith(".apply") for a in audit)

    state = server.state()  # the new plan is approved in Odoo: it runs
    state["runs"] = [_claim_run(cron, host_plan_hash=record["plan_hash"], target_host="web1")]
    server.write(state)
    third = run(args, home)
    assert third.returncode == 0, (third.stdout, third.stderr)
    assert server.state()["runs"][0]["record"]["state"] == "done"
    assert b"numbercall" not in cron.read_bytes() and b"renamed" in cron.read_bytes()


def test_run_approved_refuses_a_claim_that_is_not_the_approved_request(fake_odoo, addons,
                                                                         home):
    from engine.planhash import request_hash

    cron = addons / "legacy_cron" / "data" / "cron.xml"
    other = addons / "legacy_cron" / "data" / "other.xml"
    approved = request_hash("remove_deprecated_cron_fields", {"paths": [str(other)]}, "web1")
    server = fake_odoo([_claim_run(cron, plan_hash=approved, target_host="web1")])
    result = run(["run-approved", "--url", server.url, "--db", "prod", "--login", "watchdog",
                  "--root", addons, "--host", "web1"], home)
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert cron.read_bytes() == CRON_XML
    record = server.state()["runs"][0]["record"]
    assert record["state"] == "stale"
    assert "the claim is not the request approved in Odoo" in record["error"]
    assert "numbercall" in record["plan"]["diff"]  # this host's plan, for the approver

    matching = request_hash("remove_deprecated_cron_fields", {"paths": [str(cron)]}, "WEB1")
    server.write(dict(server.state(), runs=[_claim_run(cron, plan_hash=matching,
                                                       target_host="web1")]))
    result = run(["run-approved", "--url", server.url, "--db", "prod", "--login", "watchdog",
                  "--root", addons, "--host", "web1"], home)
    assert result.returncode == 0, (result.stdout, result.stderr)
    assert cron.read_bytes() == CRON_XML_FIXED
