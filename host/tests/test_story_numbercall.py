"""The whole numbercall story on a real Odoo 18 and a real PostgreSQL.

1. A module ``legacy_cron`` whose cron XML still sets ``numbercall`` and
   ``doall`` fails to install: Odoo 18 logs "Failed to initialize database".
2. ``bin/auto-heal fix-cron --from-log <that log>`` fixes exactly that file
   (both fields at once), with a backup and an audit line.
3. The module then installs: ir_module_module says 'installed' and the
   ir_cron row exists.

Needs ``ODOO_BIN`` (an Odoo 18 server) and a PostgreSQL given by
``AUTO_HEAL_PGHOST``, ``AUTO_HEAL_PGPORT``, ``AUTO_HEAL_PGUSER``,
``AUTO_HEAL_PGPASSWORD`` (``make test`` starts a private cluster and sets
them); skipped otherwise. Odoo's own addons path comes from
``AUTO_HEAL_ODOO_ADDONS_PATH``, else from the folders next to ODOO_BIN's
``odoo`` package.
"""

import json
import os
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
    odoo_env,
    pg,
)
from tools.samples import CRON_RECORD_LINE, CRON_XML, CRON_XML_FIXED, legacy_cron_module

pytestmark = needs_real_odoo

PARAMS_XML = textwrap.dedent("""\
    <?xml version="1.0" encoding="utf-8"?>
    <odoo>
        <record id="param_legacy" model="ir.config_parameter">
            <field name="key">legacy_cron.enabled</field>
            <field name="value">1</field>
        </record>
    </odoo>
    """).encode()

MANIFEST = textwrap.dedent("""\
    {
        "name": "Legacy cron",
        "version": "18.0.1.0.0",
        "depends": ["base"],
        "data": ["data/params.xml", "data/cron.xml"],
        "license": "LGPL-3",
        "installable": True,
    }
    """)


def _install(tmp_path, addons, dbname, logfile, data_dir):
    params = pg()
    cmd = [ODOO_BIN, f"--addons-path={addons_path(tmp_path, addons)}", "-d", dbname,
           "-i", "legacy_cron", "--stop-after-init", "--without-demo=all",
           "--logfile", str(logfile), "--data-dir", str(data_dir),
           "--db_host", params["host"], "--db_port", str(params["port"]),
           "--db_user", params["user"], "--http-port", str(free_port()),
           "--http-interface", "127.0.0.1", "--max-cron-threads", "0", "--log-level", "info"]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=ODOO_TIMEOUT,
                          stdin=subprocess.DEVNULL, env=odoo_env())


def test_numbercall_story(tmp_path, dbname):
    addons = tmp_path / "addons"
    module = legacy_cron_module(addons)
    (module / "__manifest__.py").write_text(MANIFEST)  # the legacy module, with a params file
    cron_xml = module / "data" / "cron.xml"
    params_xml = module / "data" / "params.xml"
    params_xml.write_bytes(PARAMS_XML)
    data_dir = tmp_path / "odoo-data"
    home = tmp_path / "auto-heal-home"

    # 1. the install fails on the deprecated fields
    first_log = tmp_path / "odoo-first.log"
    first = _install(tmp_path, addons, dbname, first_log, data_dir)
    log_text = first_log.read_text(errors="replace") if first_log.exists() else ""
    assert first.returncode != 0 or "Failed to initialize database" in log_text, (
        first.returncode,
        log_text[-3000:],
        first.stderr[-3000:],
    )
    assert "Invalid field 'numbercall' on model 'ir.cron'" in log_text, log_text[-3000:]
    assert cron_xml.read_bytes() == CRON_XML

    # the watchdog sees it
    detect = subprocess.run(
        [sys.executable, BIN, "detect", "--log", str(first_log), "--json"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert detect.returncode == 1, detect.stderr
    cron = [
        i for i in json.loads(detect.stdout)["incidents"] if i["pattern"] == "cron_field_deprecated"
    ]
    assert cron and cron[0]["captures"]["xml_file"] == str(cron_xml), cron
    assert cron[0]["captures"]["xml_line"] == str(CRON_RECORD_LINE)

    # 2. fix-cron --from-log fixes exactly that file, both fields at once
    env = dict(os.environ, AUTO_HEAL_HOME=str(home))
    fix = subprocess.run(
        [sys.executable, BIN, "fix-cron", "--from-log", str(first_log), "--root", str(addons)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert fix.returncode == 0, (fix.stdout, fix.stderr)
    assert cron_xml.read_bytes() == CRON_XML_FIXED
    assert params_xml.read_bytes() == PARAMS_XML
    audit = [json.loads(line) for line in (home / "audit.jsonl").read_text().splitlines()]
    assert [(a["action"], a["target"], a["result"]) for a in audit] == [
        ("remove_deprecated_cron_fields.plan", str(cron_xml), "planned"),
        ("remove_deprecated_cron_fields.apply", str(cron_xml), "applied"),
        ("remove_deprecated_cron_fields.verify", str(cron_xml), "ok"),
    ]
    backups = [p for p in (home / "backups").iterdir() if not p.name.endswith(".json")]
    assert [p.read_bytes() for p in backups] == [CRON_XML]

    # 3. the module now installs
    second_log = tmp_path / "odoo-second.log"
    second = _install(tmp_path, addons, dbname, second_log, data_dir)
    log_text = second_log.read_text(errors="replace")
    assert second.returncode == 0, (log_text[-3000:], second.stderr[-3000:])
    assert "Failed to initialize database" not in log_text
    conn = connect(dbname)
    try:
        with conn.cursor() as cr:
            cr.execute("SELECT state FROM ir_module_module WHERE name = 'legacy_cron'")
            assert cr.fetchone() == ("installed",)
            cr.execute("""
                SELECT c.interval_number, c.interval_type, c.active
                  FROM ir_cron c
                  JOIN ir_model_data d ON d.model = 'ir.cron' AND d.res_id = c.id
                 WHERE d.module = 'legacy_cron' AND d.name = 'ir_cron_legacy'
            """)
            assert cr.fetchall() == [(1, "days", True)]
    finally:
        conn.close()
