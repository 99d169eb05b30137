"""The addon's side of the trust boundary (readme/SECURITY.md), each attack run for real.

* A watchdog claims only the host runs bound to its host.
* A report (and a hand-over) is taken only from the watchdog that claimed the
  run: the same user, host and claim token; another Manager's key is refused.
* "Scan Now" is for Auto-Heal Managers only.
* Log sources read only files inside the log folders a Settings administrator
  allowed; symlinks are resolved, and the scan refuses too.
* ``/auto_heal/health`` never opens another database's registry (nor lists
  the databases) for whoever asks.
"""

import json
import os
import shutil
import tempfile
import uuid
from unittest.mock import patch

import odoo
from odoo.exceptions import AccessError, UserError, ValidationError
from odoo.modules.registry import Registry
from odoo.tests import HttpCase, TransactionCase, new_test_user, tagged
from odoo.tools import config

from ..engine.actions import FixAttempt
from ..models.auto_heal_log_source import log_folder_problem, parse_log_folders
from ..tools.secret_forms import CATCH_ALL


class BoundaryCase(TransactionCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.env["ir.config_parameter"].set_param("auto_heal.environment", "prod")
        manager = "base.group_user,auto_heal.group_auto_heal_manager"
        cls.watchdog_a = new_test_user(cls.env, "ah_wd_a", groups=manager)
        cls.watchdog_b = new_test_user(cls.env, "ah_wd_b", groups=manager)
        cls.user = new_test_user(cls.env, "ah_bd_user",
                                 groups="base.group_user,auto_heal.group_auto_heal_user")
        cls.Run = cls.env["auto_heal.fix.run"]
        cls.pattern = cls.env["auto_heal.pattern"].create({
            "type": "ah_bd_host", "name": "host fix", "regex": r"ah_bd_host \d+",
            "severity": "low", "auto_fix": True, "fix_script": "ah_test_host_fix"})

    def approved_run(self, host, fingerprint=None):
        incident = self.env["auto_heal.incident"].create({
            "fingerprint": fingerprint or f"ah-bd-{uuid.uuid4().hex[:8]}",
            "pattern_id": self.pattern.id, "pattern_type": self.pattern.type,
            "severity": "low", "message": "ah_bd_host 1", "host": host})
        run = self.Run.create({"incident_id": incident.id, "action": "ah_test_host_fix",
                               "params": json.dumps({"service": "odoo"})})
        run.with_user(self.watchdog_a).action_submit()
        if run.state == "pending":  # four eyes in prod: not the one who submitted it
            run.with_user(self.watchdog_b).action_approve()
        self.assertEqual((run.state, run.runs_on), ("approved", "host"), run.error)
        return run

    @staticmethod
    def record(run, state="done", **values):
        return FixAttempt(run_id=uuid.uuid4().hex[:12], action=run.action, target="odoo",
                         actor="watchdog", incident=run.incident_id.fingerprint,
                         state=state, **values).to_dict()


@tagged("post_install", "-at_install")
class TestWatchdogBinding(BoundaryCase):
    def test_a_watchdog_claims_only_its_own_hosts_runs(self):
        run_a = self.approved_run("erp-a")
        run_b = self.approved_run("erp-b")
        # the watchdog of erp-b asks: it gets erp-b's run, never erp-a's
        claims = self.Run.with_user(self.watchdog_b).watchdog_claim("erp-b")
        self.assertEqual([c["id"] for c in claims], [run_b.id])
        self.assertEqual((run_a.state, run_a.claimed_by), ("approved", False))
        self.assertEqual((run_b.state, run_b.claimed_by), ("running", "erp-b"))
        self.assertEqual((run_a.target_host, run_b.target_host), ("erp-a", "erp-b"))
        self.assertEqual(self.Run.with_user(self.watchdog_b).watchdog_claim("ERP-A ")[0]["id"],
                         run_a.id, "host names compare like host names")
        with self.assertRaises(UserError):
            self.Run.with_user(self.watchdog_b).watchdog_claim("  ")  # no "any host"

    def test_the_target_host_is_set_before_approval_only(self):
        incident = self.env["auto_heal.incident"].create({
            "fingerprint": "ah-bd-target", "pattern_id": self.pattern.id,
            "pattern_type": self.pattern.type, "severity": "high", "message": "x",
            "host": "odoo-container-1"})
        run = self.Run.create({"incident_id": incident.id, "action": "ah_test_host_fix"})
        run.with_user(self.watchdog_a).action_submit()
        self.assertEqual(run.state, "pending")
        run.with_user(self.watchdog_a).target_host = "erp-host"  # where the watchdog runs
        run.with_user(self.watchdog_b).action_approve()
        with self.assertRaises(UserError):
            run.with_user(self.watchdog_a).target_host = "elsewhere"
        self.assertFalse(self.Run.with_user(self.watchdog_a).watchdog_claim("odoo-container-1"))
        self.assertEqual([c["id"] for c in
                          self.Run.with_user(self.watchdog_a).watchdog_claim("erp-host")],
                         [run.id])

    def test_a_host_run_without_a_host_is_never_approved(self):
        incident = self.env["auto_heal.incident"].create({
            "fingerprint": "ah-bd-nohost", "pattern_id": self.pattern.id,
            "pattern_type": self.pattern.type, "severity": "low", "message": "x"})
        run = self.Run.create({"incident_id": incident.id, "action": "ah_test_host_fix"})
        run.with_user(self.watchdog_a).action_submit()
        self.assertEqual(run.state, "draft")
        self.assertIn("set the target host", run.error)

    def test_only_the_claiming_watchdog_may_report(self):
        run = self.approved_run("erp-a")
        [claim] = self.Run.with_user(self.watchdog_a).watchdog_claim("erp-a")
        token = claim.get("claim_token") or ""
        done = self.record(run, output="pretend it was fixed")
        attempts = [
            (self.watchdog_b, {}),                                    # another key, no claim
            (self.watchdog_b, {"claim_token": token, "host": "erp-a"}),  # another key
            (self.watchdog_a, {"host": "erp-a"}),                     # no claim token
            (self.watchdog_a, {"claim_token": "x" * 43, "host": "erp-a"}),
            (self.watchdog_a, {"claim_token": token, "host": "erp-b"}),  # another host
        ]
        for user, kwargs in attempts:
            with self.subTest(user=user.login, given=sorted(kwargs)):
                with self.assertRaises(UserError):
                    self.Run.with_user(user).watchdog_report(run.id, done, **kwargs)
                self.assertEqual((run.state, run.incident_id.state), ("running", "new"))
        # a Manager cannot read or forge the claim either
        with self.assertRaises(AccessError):
            run.with_user(self.watchdog_b).read(["claim_token_hash"])
        with self.assertRaises(AccessError):
            run.with_user(self.watchdog_b).write({"claim_token_hash": "0" * 64})
        result = self.Run.with_user(self.watchdog_a).watchdog_report(
            run.id, done, claim_token=token, host="erp-a")
        self.assertEqual(result["state"], "done")
        with self.assertRaises(UserError):  # a claim is used once
            self.Run.with_user(self.watchdog_a).watchdog_report(
                run.id, done, claim_token=token, host="erp-a")

    def test_a_hand_over_is_bound_to_its_host(self):
        pending = self.approved_run("erp-a")
        pending.write({"state": "pending"})  # waiting for a person on erp-a
        incident = pending.incident_id
        entry = {"id": uuid.uuid4().hex, "kind": "fix_run", "host": "erp-b",
                 "record": self.record(pending, output="erp-b says: done")}
        answer = self.env["auto_heal.handover"].with_user(self.watchdog_b).watchdog_handover(
            [entry])
        self.assertEqual(pending.state, "pending", "erp-b's report took erp-a's run over")
        self.assertEqual((answer["stored"], answer["fix_runs"], answer.get("refused")),
                         ([entry["id"]], 0, 1))
        self.assertEqual(incident.state, "new")
        self.assertEqual(incident.fix_run_ids, pending)
        row = self.env["auto_heal.handover"].search([("entry_id", "=", entry["id"])])
        self.assertIn("refused", row.summary)
        # the watchdog of erp-a hands the same over: taken
        entry = dict(entry, id=uuid.uuid4().hex, host="erp-a")
        answer = self.env["auto_heal.handover"].with_user(self.watchdog_a).watchdog_handover(
            [entry])
        self.assertEqual((answer["fix_runs"], answer["refused"]), (1, 0))
        self.assertEqual((pending.state, pending.claimed_by), ("done", "erp-a"))


@tagged("post_install", "-at_install")
class TestLogSourceBoundary(BoundaryCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.root = tempfile.mkdtemp(prefix="auto_heal-bd-")
        cls.addClassCleanup(shutil.rmtree, cls.root, True)
        cls.logs = os.path.join(cls.root, "logs")
        cls.private = os.path.join(cls.root, "private")
        os.makedirs(cls.logs)
        os.makedirs(cls.private)
        # what a Manager wants to read: a file the odoo user can read, outside the logs
        cls.secret_file = os.path.join(cls.private, "odoo.conf")
        with open(cls.secret_file, "w") as handle:
            handle.write("2026-11-29 14:40:19,045 42 ERROR prod x: AHFORM_stolen "
                         "[options] admin_passwd = Stolen1\n")
        cls.env["ir.config_parameter"].set_param("auto_heal.log_folders", cls.logs)
        cls.env["ir.config_parameter"].set_param("auto_heal.scan_settle_seconds", "0")
        cls.env["auto_heal.pattern"].create(dict(CATCH_ALL, name="catch all"))
        cls.Source = cls.env["auto_heal.log.source"].with_user(cls.watchdog_a)

    def stolen(self):
        return self.env["auto_heal.incident"].search([("sample", "ilike", "AHFORM_stolen")])

    def test_a_log_source_outside_the_log_folders_is_refused(self):
        with self.assertRaisesRegex(ValidationError, "outside the log folders"):
            self.Source.create({"name": "steal", "path": self.secret_file})
        link = os.path.join(self.logs, "odoo.log")
        os.symlink(self.secret_file, link)
        self.addCleanup(os.unlink, link)
        with self.assertRaisesRegex(ValidationError, "it resolves to"):
            self.Source.create({"name": "steal by symlink", "path": link})
        source = self.Source.create({"name": "ok", "path": os.path.join(self.logs, "x.log")})
        with self.assertRaises(ValidationError):
            source.write({"path": self.secret_file})
        self.assertFalse(self.stolen())

    def test_the_scan_refuses_a_file_that_moved_out(self):
        path = os.path.join(self.logs, "later.log")
        source = self.Source.create({"name": "later", "path": path})
        os.symlink(self.secret_file, path)  # swapped after the source was saved
        self.addCleanup(os.unlink, path)
        self.assertEqual(source.with_user(self.watchdog_a)._scan_sources(), {source.id: "error"})
        self.assertIn("not scanned", source.last_scan_message)
        self.assertFalse(self.stolen())
        # the folders a Settings administrator allows are the only ones: no longer allowed
        os.unlink(path)
        with open(path, "w") as handle:
            handle.write("2026-11-29 14:40:19,045 42 ERROR prod x: AHFORM_stolen later\n")
        self.env["ir.config_parameter"].set_param("auto_heal.log_folders", self.private)
        self.assertEqual(source._scan_sources(), {source.id: "error"})
        self.assertFalse(self.stolen())

    def test_only_settings_admins_set_the_log_folders(self):
        with self.assertRaises(AccessError):
            self.env["ir.config_parameter"].with_user(self.watchdog_a).set_param(
                "auto_heal.log_folders", "/")
        with self.assertRaises(AccessError):
            self.env["res.config.settings"].with_user(self.watchdog_a).create(
                {"auto_heal_log_folders": self.private})
        for folder in ("/", "/etc", "relative/logs", os.path.dirname(config.rcfile or "/etc/x")):
            with self.subTest(folder=folder), self.assertRaises(ValidationError):
                self.env["res.config.settings"].create({"auto_heal_log_folders": folder})
        self.assertEqual(parse_log_folders(" /a/ ,\n/b"), ["/a", "/b"])
        self.assertIsNone(log_folder_problem(self.logs))

    def test_scan_now_is_for_managers_only(self):
        path = os.path.join(self.logs, "scan-now.log")
        with open(path, "w") as handle:
            handle.write("2026-11-29 14:40:19,045 42 ERROR prod x: AHFORM_scan_now\n")
        source = self.Source.create({"name": "scan now", "path": path})
        logger = "odoo.addons.auto_heal.models.auto_heal_log_source"
        with self.assertNoLogs(logger), \
                self.assertRaisesRegex(AccessError, "Only Auto-Heal managers may scan"):
            source.with_user(self.user).action_scan_now()
        self.assertEqual(source.last_scan_state, "never")
        source.with_user(self.watchdog_a).action_scan_now()
        self.assertEqual(source.last_scan_state, "ok")


@tagged("post_install", "-at_install")
class TestHealthOtherDatabase(HttpCase):
    """``?db=`` of another database the db filter allows, with an anonymous session."""

    def test_another_database_is_never_opened(self):
        other = f"{self.env.cr.dbname}_other_{uuid.uuid4().hex[:6]}"
        odoo.service.db._create_empty_database(other)
        self.addCleanup(self._drop, other)
        self.assertNotIn(other, Registry.registries)
        token = self.env["ir.config_parameter"].get_param("auto_heal.health_token")
        self.authenticate(None, None)  # any visitor's session names a database
        self.env.flush_all()
        with patch.dict(config.options, {
                "dbfilter": f"^({self.env.cr.dbname}|{other})$", "list_db": False}):
            for query in (f"?db={other}&token=wrong", f"?db={other}&token={token}",
                          f"?db={other}"):
                with self.subTest(query=query.split("&token")[0]):
                    response = self.url_open("/auto_heal/health" + query,
                                             headers={"X-Auto-Heal-Token": ""})
                    self.assertEqual(response.status_code, 403)
                    self.assertEqual(response.json(), {"status": "forbidden"})
                    self.assertNotIn(other, Registry.registries,
                                     "the endpoint loaded another database's registry")
            good = self.url_open(f"/auto_heal/health?token={token}")
            self.assertIn(good.status_code, (200, 503), good.text)

    @staticmethod
    def _drop(name):
        Registry.delete(name)
        odoo.sql_db.close_db(name)
        with odoo.sql_db.db_connect("postgres").cursor() as cr:
            cr._cnx.autocommit = True
            cr.execute(f'DROP DATABASE IF EXISTS "{name}"')
