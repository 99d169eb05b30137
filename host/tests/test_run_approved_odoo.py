"""run-approved against a real Odoo 18 with auto_heal installed, over real JSON-RPC.

1. A fresh database gets ``auto_heal`` (``odoo -i auto_heal --stop-after-init``).
2. ``odoo shell`` creates an Auto-Heal Manager user with a persistent API key
   (``res.users.apikeys._generate``), an incident of the real
   ``cron_field_deprecated`` pattern naming a module's cron XML, and its fix
   run ``remove_deprecated_cron_fields``, submitted to the policy and
   approved by that manager (who did not submit it: four eyes in prod).
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
import signal
import subprocess
import sys
import textwrap

from host.tests.conftest import BIN
from host.tests.real_odoo import (
    ODOO_BIN,
    ODOO_TIMEOUT,
    addons_path,
    connect,
    free_port,
    needs_real_odoo,
    odoo_args,
    odoo_env,
    tail,
    wait_for_health,
)
from tools.samples import CRON_XML_FIXED, legacy_cron_module

pytestmark = needs_real_odoo

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
        "host": "e2e-host",  # the watchdog of this host (--host) claims the run
        "message": "Invalid field 'numbercall' on model 'ir.cron'",
        "captures": json.dumps({{"xml_file": xml_file, "xml_line": "3",
                                 "field": "numbercall"}}),
    }})
    # planned and submitted by the system; the watchdog's user approves it (four eyes in
    # prod: whoever submits a run by hand may not approve it)
    Run = env["auto_heal.fix.run"]
    run = Run.search([("incident_id", "=", incident.id)]) or Run.create({{
        "incident_id": incident.id, "action": "remove_deprecated_cron_fields",
        "params": json.dumps({{"path": xml_file}}),
    }})
    if run.state == "draft":
        run.action_submit()
    if run.state == "pending":
        run.with_user(user).action_approve()
    env.cr.commit()
    print("AH_SETUP " + json.dumps({{"key": key, "run": run.id, "state": run.state,
                                     "runs_on": run.runs_on, "user": user.id}}))
""")


def test_run_approved_against_real_odoo(tmp_path, dbname):
    addons = addons_path(tmp_path)
    data_dir = tmp_path / "odoo-data"
    module = legacy_cron_module(tmp_path / "custom")
    xml_file = module / "data" / "cron.xml"

    # 1. install auto_heal on a fresh database
    install_log = tmp_path / "install.log"
    install = subprocess.run(
        [ODOO_BIN, *odoo_args(addons, dbname, data_dir, install_log, free_port()),
         "-i", "auto_heal", "--stop-after-init"],
        capture_output=True, text=True, timeout=ODOO_TIMEOUT, stdin=subprocess.DEVNULL,
        env=odoo_env())
    assert install.returncode == 0, (tail(install_log), install.stderr[-2000:])

    # 2. a manager with an API key, and an approved host fix run
    shell_log = tmp_path / "shell.log"
    shell = subprocess.run(
        [ODOO_BIN, "shell", *odoo_args(addons, dbname, data_dir, shell_log,
                                        free_port()), "--no-http"],
        input=SETUP.format(xml_file=str(xml_file)), capture_output=True, text=True,
        timeout=ODOO_TIMEOUT, env=odoo_env())
    setup_lines = [line for line in shell.stdout.splitlines() if line.startswith("AH_SETUP ")]
    assert setup_lines, (shell.stdout[-3000:], shell.stderr[-3000:], tail(shell_log))
    setup = json.loads(setup_lines[-1][len("AH_SETUP "):])
    assert (setup["state"], setup["runs_on"]) == ("approved", "host"), setup
    key_file = tmp_path / "api-key"
    key_file.write_text(setup["key"] + "\n")
    os.chmod(key_file, 0o600)  # an API key file must be 0600 and root's

    # 3. Odoo serves; the watchdog claims, fixes and reports
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server_log = tmp_path / "server.log"
    server = subprocess.Popen(
        [ODOO_BIN, *odoo_args(addons, dbname, data_dir, server_log, port)],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True, env=odoo_env())
    home = tmp_path / "auto-heal-home"
    env = dict(os.environ, AUTO_HEAL_HOME=str(home))
    env.pop("AUTO_HEAL_API_KEY", None)
    try:
        wait_for_health(url, server, server_log)
        command = [sys.executable, BIN, "run-approved", "--url", url, "--db", dbname,
                   "--login", "ah_watchdog", "--api-key-file", str(key_file),
                   "--root", str(tmp_path / "custom"), "--host", "e2e-host"]
        result = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env)
        assert result.returncode == 0, (result.stdout, result.stderr, tail(server_log))
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
    local = [json.loads(p.read_text()) for p in (home / "runs").glob("[0-9a-f]*.json")]
    assert [r["state"] for r in local] == ["done"]
    conn = connect(dbname)
    try:
        with conn.cursor() as cr:
            cr.execute("SELECT state, claimed_by, engine_run_id, target, applied "
                       "FROM auto_heal_fix_run WHERE id = %s", [setup["run"]])
            assert cr.fetchone() == ("done", "e2e-host", local[0]["run_id"], str(xml_file),
                                     True)
    finally:
        conn.close()
