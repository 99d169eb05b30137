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
import secrets
import socket
import subprocess
import sys
import textwrap

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.path.join(REPO, "bin", "auto-heal")

ODOO_BIN = os.environ.get("ODOO_BIN", "").strip()
PGHOST = os.environ.get("AUTO_HEAL_PGHOST", "").strip()

pytestmark = pytest.mark.skipif(
    not ODOO_BIN or not PGHOST,
    reason="needs a real Odoo 18 (ODOO_BIN) and PostgreSQL (AUTO_HEAL_PGHOST); "
    "`make test` sets both",
)

ODOO_TIMEOUT = 900

CRON_XML = textwrap.dedent("""\
    <?xml version="1.0" encoding="utf-8"?>
    <odoo>
        <!-- Written for Odoo 16: numbercall and doall are gone in Odoo 18. -->
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
    b"",
)

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


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _odoo_addons_path():
    configured = os.environ.get("AUTO_HEAL_ODOO_ADDONS_PATH", "").strip()
    if configured:
        return configured
    found = []
    for candidate in ("/opt/odoo18/src/odoo/addons", "/opt/odoo18/src/addons"):
        if os.path.isdir(candidate):
            found.append(candidate)
    if not found:
        pytest.skip("set AUTO_HEAL_ODOO_ADDONS_PATH to Odoo's addons path")
    return ",".join(found)


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
    return psycopg2.connect(
        host=pg["host"],
        port=pg["port"],
        user=pg["user"],
        password=pg["password"],
        dbname=dbname,
        connect_timeout=10,
    )


def _drop(dbname):
    conn = _connect("postgres")
    try:
        conn.autocommit = True
        with conn.cursor() as cr:
            cr.execute('DROP DATABASE IF EXISTS "%s" WITH (FORCE)' % dbname)
    finally:
        conn.close()


def _install(addons, dbname, logfile, data_dir):
    pg = _pg()
    cmd = [
        ODOO_BIN,
        "--addons-path=%s,%s" % (_odoo_addons_path(), addons),
        "-d",
        dbname,
        "-i",
        "legacy_cron",
        "--stop-after-init",
        "--without-demo=all",
        "--logfile",
        str(logfile),
        "--data-dir",
        str(data_dir),
        "--db_host",
        pg["host"],
        "--db_port",
        str(pg["port"]),
        "--db_user",
        pg["user"],
        "--db_password",
        pg["password"],
        "--http-port",
        str(_free_port()),
        "--http-interface",
        "127.0.0.1",
        "--max-cron-threads",
        "0",
        "--log-level",
        "info",
    ]
    return subprocess.run(
        cmd, capture_output=True, text=True, timeout=ODOO_TIMEOUT, stdin=subprocess.DEVNULL
    )


@pytest.fixture
def dbname():
    name = "auto_heal_story_%s" % secrets.token_hex(4)
    yield name
    _drop(name)


def test_numbercall_story(tmp_path, dbname):
    addons = tmp_path / "addons"
    module = addons / "legacy_cron"
    (module / "data").mkdir(parents=True)
    (module / "__init__.py").write_text("")
    (module / "__manifest__.py").write_text(MANIFEST)
    cron_xml = module / "data" / "cron.xml"
    cron_xml.write_bytes(CRON_XML)
    params_xml = module / "data" / "params.xml"
    params_xml.write_bytes(PARAMS_XML)
    data_dir = tmp_path / "odoo-data"
    home = tmp_path / "auto-heal-home"

    # 1. the install fails on the deprecated fields
    first_log = tmp_path / "odoo-first.log"
    first = _install(addons, dbname, first_log, data_dir)
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
    assert cron[0]["captures"]["xml_line"] == "4"

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
    second = _install(addons, dbname, second_log, data_dir)
    log_text = second_log.read_text(errors="replace")
    assert second.returncode == 0, (log_text[-3000:], second.stderr[-3000:])
    assert "Failed to initialize database" not in log_text
    conn = _connect(dbname)
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
