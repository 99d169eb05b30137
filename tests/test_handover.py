"""The watchdog's hand-over: spool entries become incidents and fix runs, once.

``auto_heal.handover.watchdog_handover(entries)`` with what a watchdog spools
while Odoo is down (a restart, a log incident with the fix the watchdog ran,
config drift, an escalation); the same batch again (a watchdog killed after
Odoo committed but before it acknowledged) stores nothing new; a user who is
not an Auto-Heal Manager is refused. The last test runs the real
``bin/auto-heal handover`` over JSON-RPC with a Manager's API key, twice, the
second time with the spool as a killed watchdog leaves it.
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import uuid

from odoo.exceptions import AccessError
from odoo.tests import HttpCase, TransactionCase, new_test_user, tagged

from ..engine.actions import FixAttempt

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(REPO, "bin", "auto-heal")
HOST = "wd-host"


def incident(pattern, fingerprint, message, severity="high", captures=None, count=1):
    return {"pattern": pattern, "severity": severity, "count": count,
            "fingerprint": fingerprint, "signature": f"{pattern} | -", "message": message,
            "database": None, "exception": "", "first_seen": "2026-11-29 14:40:19",
            "last_seen": "2026-11-29 14:40:21", "sample": message,
            "source": {"path": "/var/log/odoo/odoo.log", "line": 12},
            "captures": captures or {}}


def record(action, target, state, fingerprint, output="", error="", escalate=False):
    return FixAttempt(run_id=uuid.uuid4().hex[:12], action=action, target=target,
                     actor=f"watchdog:{HOST}", incident=fingerprint, params={"x": 1},
                     state=state, output=output, error=error, escalate=escalate,
                     started="2026-11-29T14:40:22+00:00", ended="2026-11-29T14:40:25+00:00",
                     durations={"plan": 0.1, "apply": 2.0, "verify": 0.9}).to_dict()


def entry(kind, **values):
    return dict(id=uuid.uuid4().hex, kind=kind, host=HOST, time="2026-11-29T14:40:25+00:00",
                **values)


def batch(xml_file="/srv/addons/legacy_cron/data/cron.xml"):
    down = incident("odoo_down", "wd-odoo-down", "the Odoo process is not running")
    cron = incident("cron_field_deprecated", "wd-cron-1",
                    "Invalid field 'numbercall' on model 'ir.cron'",
                    captures={"xml_file": xml_file, "xml_line": "3"}, count=2)
    drift = incident("config_broken", "wd-conf-1",
                     "/etc/odoo/odoo.conf: File contains no section headers. (line 1)")
    return [
        entry("restart", service="odoo", reason="the Odoo process is not running",
              incident=down, record=record("restart_service", "odoo via systemd: odoo",
                                           "done", "wd-odoo-down", output="verified: 200")),
        entry("incident", incident=cron),
        entry("fix_run", record=record("remove_deprecated_cron_fields", xml_file, "done",
                                       "wd-cron-1", output="removed numbercall, doall")),
        entry("drift", incident=drift, drift={"path": "/etc/odoo/odoo.conf", "kind": "changed",
                                              "diff": "-db_password = ***"}),
        entry("fix_run", incident=drift, record=record(
            "restore_config", "/etc/odoo/odoo.conf", "done", "wd-conf-1")),
        entry("escalation", service="postgresql", incident=incident(
            "watchdog_escalated", "wd-esc-pg", "postgresql: restarts stopped",
            severity="critical")),
    ]


@tagged("post_install", "-at_install")
class TestHandover(TransactionCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.env["ir.config_parameter"].set_param("auto_heal.environment", "prod")
        cls.manager = new_test_user(
            cls.env, "ah_handover_manager",
            groups="base.group_user,auto_heal.group_auto_heal_manager")
        cls.user = new_test_user(
            cls.env, "ah_handover_user", groups="base.group_user,auto_heal.group_auto_heal_user")
        cls.Handover = cls.env["auto_heal.handover"]
        cls.Incident = cls.env["auto_heal.incident"]
        cls.Run = cls.env["auto_heal.fix.run"]

    def test_entries_become_incidents_and_fix_runs(self):
        entries = batch()
        answer = self.Handover.with_user(self.manager).watchdog_handover(entries)
        self.assertEqual(answer["stored"], [e["id"] for e in entries])
        self.assertEqual(answer["ignored"], [])

        down = self.Incident.search([("fingerprint", "=", "wd-odoo-down")])
        self.assertEqual((down.pattern_type, down.host, down.count), ("odoo_down", HOST, 1))
        self.assertEqual(down.source, "watchdog")
        [restart] = down.fix_run_ids
        self.assertEqual((restart.action, restart.state, restart.runs_on, restart.claimed_by),
                         ("restart_service", "done", "host", HOST))
        self.assertEqual(restart.engine_run_id, entries[0]["record"]["run_id"])
        self.assertIn("verified: 200", restart.output)
        self.assertEqual(down.state, "resolved")  # the watchdog's restart was verified

        cron = self.Incident.search([("fingerprint", "=", "wd-cron-1")])
        self.assertEqual((cron.pattern_type, cron.count), ("cron_field_deprecated", 2))
        self.assertEqual(cron.pattern_id.type, "cron_field_deprecated")
        # the scan planned a run for the incident; the watchdog's report took it over
        [fix] = cron.fix_run_ids
        self.assertEqual((fix.action, fix.state, fix.claimed_by, fix.target),
                         ("remove_deprecated_cron_fields", "done", HOST,
                          "/srv/addons/legacy_cron/data/cron.xml"))
        self.assertEqual(cron.state, "resolved")
        self.assertIn("remove_deprecated_cron_fields.handover", fix.audit)

        conf = self.Incident.search([("fingerprint", "=", "wd-conf-1")])
        # the fix run entry names the drift's incident: a link, not a second occurrence
        self.assertEqual((conf.pattern_type, conf.count), ("config_broken", 1))
        self.assertEqual(conf.fix_run_ids.mapped("state"), ["done"])
        escalated = self.Incident.search([("fingerprint", "=", "wd-esc-pg")])
        self.assertEqual((escalated.severity, escalated.state), ("critical", "new"))

        rows = self.Handover.search([("entry_id", "in", answer["stored"])])
        self.assertEqual(len(rows), 6)
        self.assertEqual(set(rows.mapped("kind")),
                         {"restart", "incident", "fix_run", "drift", "escalation"})
        self.assertEqual(rows.filtered(lambda r: r.kind == "restart").fix_run_id, restart)
        self.assertNotIn("db_password = s", "".join(rows.mapped("payload")))

    def test_the_same_batch_twice_stores_nothing_new(self):
        entries = batch()
        Handover = self.Handover.with_user(self.manager)
        first = Handover.watchdog_handover(entries)
        counts = {i.fingerprint: i.count for i in self.Incident.search(
            [("fingerprint", "like", "wd-")])}
        runs = self.Run.search_count([])
        rows = self.Handover.search_count([])
        # the watchdog was killed after Odoo committed: it sends the batch again,
        # and a later batch that overlaps it
        again = Handover.watchdog_handover(entries)
        self.assertEqual((again["stored"], again["ignored"]), ([], first["stored"]))
        later = [entry("restart", service="odoo", reason="hung", incident=incident(
            "odoo_hung", "wd-odoo-hung", "hung"))]
        overlap = Handover.watchdog_handover(entries[:2] + later + entries[:1])
        self.assertEqual(overlap["stored"], [later[0]["id"]])
        self.assertEqual(overlap["ignored"], [entries[0]["id"], entries[1]["id"]])
        self.assertEqual({i.fingerprint: i.count for i in self.Incident.search(
            [("fingerprint", "like", "wd-"), ("fingerprint", "!=", "wd-odoo-hung")])}, counts)
        self.assertEqual(self.Run.search_count([]), runs)
        self.assertEqual(self.Handover.search_count([]), rows + 1)

    def test_a_user_who_is_not_a_manager_is_refused(self):
        with self.assertRaises(AccessError):
            self.Handover.with_user(self.user).watchdog_handover(batch())
        with self.assertRaises(AccessError):
            self.Handover.with_user(self.user).watchdog_patterns()
        self.assertFalse(self.Incident.search([("fingerprint", "=", "wd-odoo-down")]))

    def test_patterns_for_the_watchdog_keep_the_admins_edits(self):
        pattern = self.env["auto_heal.pattern"].search([("type", "=", "db_deadlock")])
        pattern.severity = "critical"
        exported = self.Handover.with_user(self.manager).watchdog_patterns()
        by_type = {p["type"]: p for p in exported}
        self.assertEqual(by_type["db_deadlock"]["severity"], "critical")
        self.assertTrue(by_type["cron_field_deprecated"]["regex"])


@tagged("post_install", "-at_install")
class TestHandoverOverRpc(HttpCase):
    def test_bin_auto_heal_handover_twice_after_a_kill_stores_once(self):
        manager = new_test_user(
            self.env, "ah_handover_rpc", groups="base.group_user,auto_heal.group_auto_heal_manager")
        key = self.env["res.users.apikeys"].with_user(manager).sudo()._generate(
            None, "auto_heal watchdog", None)
        root = tempfile.mkdtemp(prefix="auto_heal-handover-")
        self.addCleanup(shutil.rmtree, root, True)
        state = os.path.join(root, "state")
        os.makedirs(state)
        key_file = os.path.join(root, "api-key")
        with open(key_file, "w") as handle:
            handle.write(key + "\n")
        os.chmod(key_file, 0o600)  # an API key file must be 0600 and the watchdog's
        config = os.path.join(root, "auto-heal.toml")
        with open(config, "w") as handle:
            handle.write(f'[watchdog]\nstate_dir = "{state}"\nlog_file = "{root}/wd.log"\n'
                         f'[odoo]\nurl = "{self.base_url()}"\n'
                         f'[handover]\ndb = "{self.env.cr.dbname}"\nlogin = "{manager.login}"\n'
                         f'api_key_file = "{key_file}"\n')
        spool = os.path.join(state, "spool.jsonl")
        entries = batch()
        with open(spool, "w") as handle:
            for item in entries:
                handle.write(json.dumps(item) + "\n")
        with open(spool) as handle:
            as_killed = handle.read()  # what a watchdog killed before acknowledging leaves

        def handover():
            return subprocess.run([sys.executable, BIN, "handover", "--config", config],
                                  capture_output=True, text=True, timeout=300, check=False)

        first = handover()
        self.assertEqual(first.returncode, 0, first.stdout + first.stderr)
        self.assertIn("handed over 6 of 6 entr(y/ies): 6 stored, 0 Odoo already had",
                      first.stdout)
        self.assertNotIn(key, first.stdout + first.stderr)
        self.assertEqual(os.path.getsize(spool), 0)  # acknowledged, compacted

        with open(spool, "w") as handle:
            handle.write(as_killed)
        os.unlink(spool + ".sent")
        second = handover()
        self.assertEqual(second.returncode, 0, second.stdout + second.stderr)
        self.assertIn("handed over 6 of 6 entr(y/ies): 0 stored, 6 Odoo already had",
                      second.stdout)

        self.env.invalidate_all()
        rows = self.env["auto_heal.handover"].search(
            [("entry_id", "in", [e["id"] for e in entries])])
        self.assertEqual(len(rows), 6)
        down = self.env["auto_heal.incident"].search([("fingerprint", "=", "wd-odoo-down")])
        self.assertEqual((down.count, len(down.fix_run_ids)), (1, 1))
