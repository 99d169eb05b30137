"""run-approved against a real Odoo 18 with auto_heal installed, over real JSON-RPC.

1. A fresh database gets ``auto_heal`` (``odoo -i auto_heal --stop-after-init``).
2. ``odoo shell`` creates an Auto-Heal Manager user with a persistent API key
   (``res.users.apikeys._generate``), an incident of the real
   ``cron_field_deprecated`` pattern naming a module's cron XML, and its fix
   run ``remove_deprecated_cron_fields``, submitted to the policy and
   approved by that manager.
3. Odoo runs as a server; ``bin/auto-heal run-approved --url --db --login
   --api-key-file --root`` logs in with the API key, claims the run, fixes
   the file on this host and reports back.
4. The database says the run is done, claimed by this host, with the engine's
   run id; the XML lost both fields; a second run-approved finds nothing.

Needs ``ODOO_BIN`` and ``AUTO_HEAL_PGHOST`` (+ PORT, USER, PASSWORD); ``make
test`` sets them. The addons path is ``AUTO_HEAL_ODOO_ADDONS_PATH`` (Odoo's
plus a folder holding ``auto_heal``), else it is built with tools.odoo_env.
"""

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import textwrap
import time
import urllib.request

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.path.join(REPO, "bin", "auto-heal")
ODOO_BIN = os.environ.get("ODOO_BIN", "").strip()
PGHOST = os.environ.get("AUTO_HEAL_PGHOST", "").strip()
ODOO_TIMEOUT = 1200

pytestmark = pytest.mark.skipif(
    not ODOO_BIN or not PGHOST,
    reason="needs a real Odoo 18 (ODOO_BIN) and PostgreSQL (AUTO_HEAL_PGHOST); "
    "`make test` sets both",
)

CRON_XML = textwrap.dedent("""\
    <?xml version="1.0" encoding="utf-8"?>
    <odoo>
        <record id="ir_cron_legacy" model="ir.cron">
            <field name="name">Legacy job</field>
            <field name="model_id" ref="base.model_res_partner"/>
            <field name="state">code</field>
            <field name="code">model.search([], limit=1)</field>
            <field name="interval_number">1</field>
            <field name="interval_type">days</field>
            <field name="numbercall">-1</field>
            <field name="doall" eval="False"/>
        </record>
    </odoo>
    """).encode()
CRON_XML_FIXED = CRON_XML.replace(
    b'        <field name="numbercall">-1</field>\n        <field name="doall" eval="False"/>\n',
    b"")

# Runs inside `odoo shell`: the manager, its API key, the incident and its approved run.
SETUP = textwrap.dedent("""
    import json
    xml_file = {xml_file!r}
    manager_group = env.ref("auto_heal.group_auto_heal_manager")
    user = env["res.users"].create({{
        "name": "Auto-Heal Watchdog", "login": "ah_watchdog",
        # no e-mail address: a technical user must still be able to claim and report
        "groups_id": [(6, 0, [env.ref("base.group_user").id, manager_group.id])],
    }})
    key = env["res.users.apikeys"].with_user(user).sudo()._generate(None, "watchdog", None)
    pattern = env["auto_heal.pattern"].with_context(active_test=False).search(
        [("type", "=", "cron_field_deprecated")])
    incident = env["auto_heal.incident"].create({{
        "fingerprint": "ah-run-approved-e2e", "pattern_id": pattern.id,
        "pattern_type": pattern.type, "severity": pattern.severity, "state": "new",
        "message": "Invalid field 'numbercall' on model 'ir.cron'",
        "captures": json.dumps({{"xml_file": xml_file, "xml_line": "3",
                                 "field": "numbercall"}}),
    }})
    Run = env["auto_heal.fix.run"].with_user(user)
    run = Run.search([("incident_id", "=", incident.id)]) or Run.create({{
        "incident_id": incident.id, "action": "remove_deprecated_cron_fields",
        "params": json.dumps({{"path": xml_file}}),
    }})
    if run.state == "draft":
        run.action_submit()
    if run.state == "pending":
        run.action_approve()
    env.cr.commit()
    print("AH_SETUP " + json.dumps({{"key": key, "run": run.id, "state": run.state,
                                     "runs_on": run.runs_on, "user": user.id}}))
""")


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _pg():
    return {
        "host": PGHOST,
        "port": os.environ.get("AUTO_HEAL_PGPORT", "5432"),
        "user": os.environ.get("AUTO_HEAL_PGUSER", "odoo"),
        "password": os.environ.get("AUTO_HEAL_PGPASSWORD", ""),
    }


def _connect(dbname):
    psycopg2 = pytest.importorskip("psycopg2")
    pg = _pg()
    return psycopg2.connect(host=pg["host"], port=pg["port"], user=pg["user"],
                            password=pg["password"], dbname=dbname, connect_timeout=10)


def _addons_path(tmp_path):
    configured = os.environ.get("AUTO_HEAL_ODOO_ADDONS_PATH", "").strip()
    if configured:
        return configured
    from tools.odoo_env import addons_dir_with_auto_heal, odoo_addons_path

    return "%s,%s" % (odoo_addons_path(ODOO_BIN), addons_dir_with_auto_heal(tmp_path / "link"))


def _odoo_args(addons_path, dbname, data_dir, logfile, port):
    pg = _pg()
    return [
        f"--addons-path={addons_path}", "-d", dbname, f"--db-filter=^{dbname}$",
        "--db_host", pg["host"], "--db_port", str(pg["port"]), "--db_user", pg["user"],
        "--db_password", pg["password"], "--data-dir", str(data_dir),
        "--logfile", str(logfile), "--http-interface", "127.0.0.1",
        "--http-port", str(port), "--max-cron-threads", "0", "--workers", "0",
        "--without-demo=all",
    ]


@pytest.fixture
def dbname():
    name = "auto_heal_watchdog_%s" % secrets.token_hex(4)
    yield name
    conn = _connect("postgres")
    try:
        conn.autocommit = True
        with conn.cursor() as cr:
            cr.execute('DROP DATABASE IF EXISTS "%s" WITH (FORCE)' % name)
    finally:
        conn.close()


def _tail(path, n=3000):
    try:
        return open(path, errors="replace").read()[-n:]
    except OSError:
        return ""


def _wait_for_health(url, proc, logfile, timeout=600):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"Odoo exited with {proc.returncode}: {_tail(logfile)}")
        try:
            with urllib.request.urlopen(url + "/web/health", timeout=5) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(1)
    pytest.fail(f"Odoo did not answer /web/health within {timeout}s: {_tail(logfile)}")


def test_run_approved_against_real_odoo(tmp_path, dbname):
    addons_path = _addons_path(tmp_path)
    data_dir = tmp_path / "odoo-data"
    module = tmp_path / "custom" / "legacy_cron"
    (module / "data").mkdir(parents=True)
    (module / "__manifest__.py").write_text("{'name': 'Legacy cron', 'depends': ['base']}\n")
    xml_file = module / "data" / "cron.xml"
    xml_file.write_bytes(CRON_XML)

    # 1. install auto_heal on a fresh database
    install_log = tmp_path / "install.log"
    install = subprocess.run(
        [ODOO_BIN, *_odoo_args(addons_path, dbname, data_dir, install_log, _free_port()),
         "-i", "auto_heal", "--stop-after-init"],
        capture_output=True, text=True, timeout=ODOO_TIMEOUT, stdin=subprocess.DEVNULL)
    assert install.returncode == 0, (_tail(install_log), install.stderr[-2000:])

    # 2. a manager with an API key, and an approved host fix run
    shell_log = tmp_path / "shell.log"
    shell = subprocess.run(
        [ODOO_BIN, "shell", *_odoo_args(addons_path, dbname, data_dir, shell_log,
                                        _free_port()), "--no-http"],
        input=SETUP.format(xml_file=str(xml_file)), capture_output=True, text=True,
        timeout=ODOO_TIMEOUT)
    setup_lines = [line for line in shell.stdout.splitlines() if line.startswith("AH_SETUP ")]
    assert setup_lines, (shell.stdout[-3000:], shell.stderr[-3000:], _tail(shell_log))
    setup = json.loads(setup_lines[-1][len("AH_SETUP "):])
    assert (setup["state"], setup["runs_on"]) == ("approved", "host"), setup
    key_file = tmp_path / "api-key"
    key_file.write_text(setup["key"] + "\n")
    os.chmod(key_file, 0o600)

    # 3. Odoo serves; the watchdog claims, fixes and reports
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    server_log = tmp_path / "server.log"
    server = subprocess.Popen(
        [ODOO_BIN, *_odoo_args(addons_path, dbname, data_dir, server_log, port)],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True)
    home = tmp_path / "auto-heal-home"
    env = dict(os.environ, AUTO_HEAL_HOME=str(home))
    env.pop("AUTO_HEAL_API_KEY", None)
    try:
        _wait_for_health(url, server, server_log)
        command = [sys.executable, BIN, "run-approved", "--url", url, "--db", dbname,
                   "--login", "ah_watchdog", "--api-key-file", str(key_file),
                   "--root", str(tmp_path / "custom"), "--host", "e2e-host"]
        result = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env)
        assert result.returncode == 0, (result.stdout, result.stderr, _tail(server_log))
        assert setup["key"] not in result.stdout + result.stderr
        assert f"fix run {setup['run']}: remove_deprecated_cron_fields" in result.stdout
        assert "-> done" in result.stdout and "reported" in result.stdout
        again = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env)
        assert again.returncode == 0, again.stderr
        assert again.stdout.strip() == "no approved host fix run for e2e-host"
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait(timeout=30)

    # 4. the file is fixed, and the database knows
    assert xml_file.read_bytes() == CRON_XML_FIXED
    local = [json.loads(p.read_text()) for p in (home / "runs").iterdir()]
    assert [r["state"] for r in local] == ["done"]
    conn = _connect(dbname)
    try:
        with conn.cursor() as cr:
            cr.execute("SELECT state, claimed_by, engine_run_id, target, applied "
                       "FROM auto_heal_fix_run WHERE id = %s", [setup["run"]])
            assert cr.fetchone() == ("done", "e2e-host", local[0]["run_id"], str(xml_file),
                                     True)
    finally:
        conn.close()
