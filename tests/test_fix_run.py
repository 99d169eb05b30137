"""The fix run workflow: policy, approval, rejection, budget, demotion, the watchdog API.

Odoo-level runs act on real rows of this database (ir_module_module, ir_cron):
the test transaction is rolled back afterwards.
"""

import json
from datetime import datetime, timedelta, timezone

import psycopg2.errors
from odoo import fields
from odoo.exceptions import AccessError, UserError, ValidationError
from odoo.tests import TransactionCase, new_test_user, tagged
from odoo.tools import mute_logger

from ..engine.actions import FixAttempt, Plan, Precondition
from ..engine.incidents import Incident as EngineIncident
from ..engine.planhash import request_hash


class FixRunCase(TransactionCase):
    """Users, settings and incidents of real or test patterns."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.Run = cls.env["auto_heal.fix.run"]
        cls.Incident = cls.env["auto_heal.incident"]
        cls.Pattern = cls.env["auto_heal.pattern"].with_context(active_test=False)
        cls.Module = cls.env["ir.module.module"]
        cls.manager = new_test_user(
            cls.env, "ah_fix_manager",
            groups="base.group_user,auto_heal.group_auto_heal_manager")
        # submits runs by hand; in prod four eyes keeps them from approving what they submit
        cls.submitter = new_test_user(
            cls.env, "ah_fix_submitter",
            groups="base.group_user,auto_heal.group_auto_heal_manager")
        cls.user = new_test_user(
            cls.env, "ah_fix_user", groups="base.group_user,auto_heal.group_auto_heal_user")
        cls.settings(environment="prod")

    @classmethod
    def settings(cls, **values):
        params = cls.env["ir.config_parameter"]
        for key, value in values.items():
            params.set_param(f"auto_heal.{key}", str(value))

    @classmethod
    def pattern(cls, kind):
        pattern = cls.Pattern.search([("type", "=", kind)])
        assert pattern, kind
        return pattern

    @classmethod
    def make_pattern(cls, kind, fix_script, severity="high", auto_fix=True):
        return cls.Pattern.create({
            "type": kind, "name": kind, "regex": rf"{kind} \d+ happened",
            "severity": severity, "auto_fix": auto_fix, "fix_script": fix_script,
        })

    @classmethod
    def make_incident(cls, pattern, fingerprint, captures=None, state="new", host="web-1"):
        return cls.Incident.create({
            "fingerprint": fingerprint, "pattern_id": pattern.id, "pattern_type": pattern.type,
            "severity": pattern.severity, "state": state, "host": host,
            "message": f"{pattern.type} test incident {fingerprint}",
            "captures": json.dumps(captures) if captures else False,
        })

    def make_run(self, incident, params=None, action=None):
        """A run with *params*, planned and handed to the policy by a manager (the
        submitter: another manager approves it)."""
        run = self.Run.create({
            "incident_id": incident.id,
            "action": action or incident.pattern_id.fix_script,
            "params": json.dumps(params or {}),
        })
        run.with_user(self.submitter).action_submit()
        return run

    def make_cron(self, **vals):
        cron = self.env["ir.cron"].create(dict({
            "name": "Auto-Heal test job", "model_id": self.env.ref("base.model_res_partner").id,
            "state": "code", "code": "model.browse()", "interval_number": 1,
            "interval_type": "days", "active": False}, **vals))
        cron.write({"failure_count": 5,
                    "first_failure_date": fields.Datetime.now() - timedelta(days=8)})
        return cron

    def stuck_module(self, name="mail", state="to upgrade"):
        module = self.Module.search([("name", "=", name)])
        module.write({"state": state})
        return module

    @staticmethod
    def audit_lines(run):
        return [json.loads(line) for line in (run.audit or "").splitlines() if line]

    @staticmethod
    def bodies(record):
        return [str(body) for body in record.message_ids.mapped("body")]


@tagged("post_install", "-at_install")
class TestFixRunWorkflow(FixRunCase):
    def test_policy_decides_whether_a_run_needs_approval(self):
        # a module to reset, so that each plan changes something; each run is rejected
        # before the next is planned, as there is one open run per action and target
        self.stuck_module("mail", "to upgrade")
        high = self.make_pattern("ah_policy_high", "reset_stuck_module_states", "high")
        run = self.Run._plan_for_incidents(self.make_incident(high, "ah-policy-1"))
        self.assertEqual((run.state, run.runs_on, run.auto_approved), ("pending", "odoo", False))
        self.assertEqual(run.approval_reason,
                         "prod: high severity needs approval (default for prod)")
        self.assertIn(f"reset_stuck_module_states on ir_module_module@{self.env.cr.dbname}",
                      run.plan)
        self.assertEqual(run.target, f"ir_module_module@{self.env.cr.dbname}")
        run._reject("next policy")

        self.settings(environment="dev")
        low = self.make_pattern("ah_policy_low", "reset_stuck_module_states", "low")
        run = self.Run._plan_for_incidents(self.make_incident(low, "ah-policy-2"))
        self.assertEqual((run.state, run.auto_approved), ("approved", True))
        self.assertTrue(run.approved_date)
        self.assertFalse(run.approved_by)
        run._reject("next policy")

        off = self.make_pattern("ah_policy_off", "reset_stuck_module_states", "low",
                                auto_fix=False)
        run = self.Run._plan_for_incidents(self.make_incident(off, "ah-policy-3"))
        self.assertEqual(run.state, "pending")
        self.assertEqual(run.approval_reason,
                         "the pattern does not allow automatic fixes (auto_fix is off)")
        run._reject("next policy")

        self.settings(environment="prod", policy_high="auto")
        run = self.Run._plan_for_incidents(self.make_incident(high, "ah-policy-4"))
        self.assertEqual(run.state, "approved")
        self.assertEqual(run.approval_reason,
                         "prod: high severity may be fixed automatically (set in Settings)")

    def test_approve_and_reject_by_managers_only(self):
        self.stuck_module("mail", "to upgrade")
        other = self.Module.search([("state", "=", "uninstalled")], limit=1)
        other.write({"state": "to install"})
        pattern = self.make_pattern("ah_flow", "reset_stuck_module_states")
        first = self.make_run(self.make_incident(pattern, "ah-flow-1"),
                              {"modules": ["mail"], "min_age": 0})
        second = self.make_run(self.make_incident(pattern, "ah-flow-2"),
                               {"modules": [other.name], "min_age": 0})
        self.assertEqual((first.state, second.state), ("pending", "pending"))
        for method in ("action_approve", "action_reject", "action_run", "action_rollback",
                       "action_submit"):
            with self.assertRaises(AccessError, msg=method):
                getattr(first.with_user(self.user), method)()
        with self.assertRaises(AccessError):
            first.with_user(self.user)._reject("no")
        with self.assertRaises(AccessError):
            self.Run.with_user(self.user).watchdog_claim("web-1")
        with self.assertRaises(AccessError):
            self.Run.with_user(self.user).watchdog_report(first.id, {"state": "done"})
        self.assertEqual(first.state, "pending")
        self.assertFalse(first.approved_by)

        first.with_user(self.manager).action_approve()
        self.assertEqual((first.state, first.approved_by), ("approved", self.manager))
        self.assertTrue(first.approved_date)
        self.assertTrue(any("Approved by" in body for body in self.bodies(first)))
        with self.assertRaises(UserError):
            first.with_user(self.manager).action_approve()

        action = second.with_user(self.manager).action_reject()
        self.assertEqual(action["res_model"], "auto_heal.fix.run.reject")
        self.assertEqual(second.state, "pending")
        wizard = self.env["auto_heal.fix.run.reject"].with_user(self.manager).with_context(
            action["context"]).create({"reason": "the upgrade is still running on node 2"})
        wizard.action_confirm()
        self.assertEqual(second.state, "rejected")
        self.assertEqual(second.reject_reason, "the upgrade is still running on node 2")
        self.assertEqual(second.rejected_by, self.manager)
        self.assertTrue(second.rejected_date)
        with self.assertRaises(UserError):
            second.with_user(self.manager).action_approve()

    def test_run_records_output_timings_audit_and_rollback_restores_the_rows(self):
        mail = self.stuck_module("mail", "to upgrade")
        other = self.Module.search([("state", "=", "uninstalled")], limit=1)
        other.write({"state": "to install"})
        incident = self.make_incident(self.pattern("module_state_stuck"), "ah-stuck-1")
        run = self.make_run(incident, {"min_age": 0})
        self.assertEqual(run.state, "pending")  # the default pattern has auto_fix off
        self.assertIn("mail: to upgrade -> installed", run.plan)
        self.assertIn(f"{other.name}: to install -> uninstalled", run.plan)
        self.assertIn("[ok] no other database session writes ir_module_module",
                      run.preconditions)
        self.assertIn("[ok] the Odoo registry is loaded", run.preconditions)

        run.with_user(self.manager).action_approve()
        run.with_user(self.manager).action_run()
        self.assertEqual(run.state, "done", run.error)
        self.assertEqual((mail.state, other.state), ("installed", "uninstalled"))
        self.assertIn("mail: to upgrade -> installed", run.output)
        self.assertIn("verified: no module left in a transient state", run.output)
        self.assertTrue(run.applied)
        self.assertTrue(run.started_date and run.ended_date)
        self.assertLessEqual(run.started_date, run.ended_date)
        self.assertGreater(run.duration, 0)
        backup = json.loads(run.backup_manifest)
        self.assertIn({"id": mail.id, "name": "mail", "state": "to upgrade"},
                      [{k: row[k] for k in ("id", "name", "state")} for row in backup["rows"]])
        self.assertIn("table ir_module_module", run.backup_location)
        lines = self.audit_lines(run)
        self.assertEqual([line["action"].split(".")[1] for line in lines],
                         ["plan", "approve", "plan", "apply", "verify"])
        self.assertEqual(lines[-1]["result"], "ok")
        self.assertEqual({line["actor"] for line in lines[1:]}, {"odoo:ah_fix_manager"})
        self.assertEqual({line["details"]["incident"] for line in lines}, {"ah-stuck-1"})
        self.assertEqual(incident.state, "resolved")
        self.assertTrue(run.resolved_incident)
        self.assertGreaterEqual(run.recovery_seconds, 0)
        self.assertTrue(any("Resolved by fix run" in body for body in self.bodies(incident)))

        with self.assertRaises(AccessError):
            run.with_user(self.user).action_rollback()
        run.with_user(self.manager).action_rollback()
        self.assertEqual(run.state, "rolled_back")
        self.assertEqual((mail.state, other.state), ("to upgrade", "to install"))
        self.assertEqual(self.audit_lines(run)[-1]["result"], "rolled_back")
        self.assertEqual(incident.state, "acknowledged")

    def test_a_module_incident_resets_only_its_module(self):
        mail = self.stuck_module("mail", "to upgrade")
        other = self.Module.search([("state", "=", "uninstalled")], limit=1)
        other.write({"state": "to install"})
        pattern = self.make_pattern("ah_module_check", "reset_stuck_module_states", "low")
        incident = self.make_incident(pattern, "ah-module-1",
                                      {"check": "module_operation_stuck", "module": "mail"})
        run = self.Run._plan_for_incidents(incident)
        self.assertEqual(json.loads(run.params), {"modules": ["mail"]})
        self.assertEqual(run.target, f"ir_module_module@{self.env.cr.dbname}:mail")
        run.write({"params": json.dumps({"modules": ["mail"], "min_age": 0})})
        self.Run._cron_run_approved()
        self.assertEqual(run.state, "done", run.error)
        self.assertEqual((mail.state, other.state), ("installed", "to install"))

    def test_reactivate_cron_once_the_failure_behind_it_is_resolved(self):
        cron = self.make_cron()
        cause = self.make_incident(self.pattern("cron_job_failed"), "ah-cron-cause",
                                   {"action_id": str(cron.ir_actions_server_id.id)})
        switched_off = self.make_incident(
            self.pattern("cron_job_deactivated"), "ah-cron-off",
            {"cron": "'Auto-Heal test job'", "cron_id": str(cron.id), "count": "5"})
        run = self.Run._plan_for_incidents(switched_off)
        self.assertEqual(json.loads(run.params), {"cron_id": cron.id})
        self.assertEqual(run.state, "pending")
        self.assertIn("[FAILED] the cause of the job's failures is dealt with: not dealt "
                      "with yet: Scheduled action failed", run.preconditions)
        self.assertTrue(run.precondition_failed)
        with self.assertRaises(UserError):  # no approval while a precondition fails
            run.with_user(self.manager).action_approve()
        run._reject("the cause is not fixed yet")

        cause.action_resolve()
        again = self.Run._plan_for_incidents(switched_off)
        self.assertFalse(again, "a rejected run stops automatic planning for this round")
        again = self.Run.browse(
            switched_off.with_user(self.submitter).action_plan_fix()["res_id"])
        self.assertEqual(again.state, "pending")
        self.assertIn("[ok] the cause of the job's failures is dealt with",
                      again.preconditions)
        again.with_user(self.manager).action_approve()
        again.with_user(self.manager).action_run()
        self.assertEqual(again.state, "done", again.error)
        self.assertEqual((cron.active, cron.failure_count, cron.first_failure_date),
                         (True, 0, False))
        self.assertEqual(switched_off.state, "resolved")
        backup = json.loads(again.backup_manifest)
        self.assertEqual((backup["active"], backup["failure_count"]), (False, 5))

    def test_budget_refusal_escalates_the_fourth_run(self):
        self.settings(budget_max_runs=3, budget_window_minutes=30)
        mail = self.stuck_module("mail", "to upgrade")
        pattern = self.make_pattern("ah_budget", "reset_stuck_module_states", "low")
        incident = self.make_incident(pattern, "ah-budget-1")
        target = f"ir_module_module@{self.env.cr.dbname}"
        now = fields.Datetime.now()
        for minutes in (25, 15, 5):
            self.Run.create({
                "incident_id": incident.id, "action": "reset_stuck_module_states",
                "target": target, "state": "done", "applied": True,
                "started_date": now - timedelta(minutes=minutes),
                "ended_date": now - timedelta(minutes=minutes - 1)})
        run = self.make_run(incident, {"min_age": 0})
        self.assertEqual(run.state, "approved")  # prod: low severity is fixed on its own
        self.Run._cron_run_approved()
        self.assertEqual(run.state, "failed")
        self.assertTrue(run.escalated)
        self.assertIn("budget used up: 3 runs within 30 min (the limit is 3)", run.error)
        self.assertFalse(run.applied)
        self.assertEqual(mail.state, "to upgrade")
        self.assertEqual(self.audit_lines(run)[-1]["result"], "refused")
        self.assertTrue(any("Escalated" in body and "budget used up" in body
                            for body in self.bodies(incident)))
        # Escalated: no automatic new run until a person reopens the incident.
        self.assertFalse(self.Run._plan_for_incidents(incident))

    def test_repeated_automatic_failures_demote_the_pattern(self):
        self.settings(demotion_threshold=3)
        cron = self.make_cron()
        self.make_incident(self.pattern("cron_job_failed"), "ah-demote-cause",
                           {"action_id": str(cron.ir_actions_server_id.id)})
        pattern = self.make_pattern("ah_demote", "reactivate_cron", "low")
        incident = self.make_incident(pattern, "ah-demote-1", {"cron_id": str(cron.id)})
        for attempt in range(3):
            run = self.Run._plan_for_incidents(incident)
            self.assertEqual((run.state, run.auto_approved), ("approved", True), attempt)
            self.assertIn(run, self.Run._cron_run_approved())
            self.assertEqual(run.state, "failed", attempt)
            self.assertIn("precondition failed", run.error)
            self.assertEqual(pattern.fix_demoted, attempt == 2, attempt)
        self.assertTrue(pattern.fix_demoted_date)
        self.assertEqual((pattern.fix_consecutive_failures, pattern.fix_failure_count,
                          pattern.fix_success_count), (3, 3, 0))
        self.assertTrue(any("Automatic fixes demoted" in body and "3 times in a row" in body
                            for body in self.bodies(pattern)))
        run = self.Run._plan_for_incidents(incident)
        self.assertEqual(run.state, "pending")
        self.assertEqual(run.approval_reason,
                         "the pattern was demoted after repeated failed automatic fixes")

        with self.assertRaises(AccessError):
            pattern.with_user(self.user).action_restore_auto_fix()
        pattern.with_user(self.manager).action_restore_auto_fix()
        self.assertFalse(pattern.fix_demoted)
        self.assertEqual(pattern.fix_consecutive_failures, 0)

    def test_never_a_second_open_run_for_one_incident_and_action(self):
        self.stuck_module("mail", "to upgrade")
        pattern = self.make_pattern("ah_unique", "reset_stuck_module_states")
        incident = self.make_incident(pattern, "ah-unique-1")
        first = self.Run._plan_for_incidents(incident)
        self.assertEqual(len(first), 1)
        self.assertFalse(self.Run._plan_for_incidents(incident))
        self.assertEqual(self.Run.search_count([("incident_id", "=", incident.id)]), 1)
        with self.assertRaises(ValidationError):
            self.Run.create({"incident_id": incident.id})
        # Below the ORM, the partial unique index refuses it too.
        with mute_logger("odoo.sql_db"), self.assertRaises(psycopg2.errors.UniqueViolation), \
                self.env.cr.savepoint():
            self.env.cr.execute(
                "INSERT INTO auto_heal_fix_run (name, incident_id, action, state, params) "
                "VALUES ('twin', %s, 'reset_stuck_module_states', 'approved', '{}')",
                [incident.id])
        # Another action on the same incident is another run.
        other = self.Run.create({"incident_id": incident.id, "action": "clear_asset_bundles"})
        self.assertEqual(other.state, "draft")

        first.with_user(self.manager)._reject("not during the sale")
        self.assertFalse(self.Run._plan_for_incidents(incident),
                         "a rejected run stops automatic planning for this round")
        incident.action_resolve()
        incident.action_reopen()
        again = self.Run._plan_for_incidents(incident)
        self.assertEqual((len(again), again.state), (1, "pending"))

    def test_scan_plans_a_run_and_a_regression_counts_against_the_fix(self):
        self.settings(regression_window_hours=24)
        mail = self.stuck_module("mail", "to upgrade")
        pattern = self.make_pattern("ah_regress", "reset_stuck_module_states", "low")

        def occurrence(count):
            now = datetime.now(timezone.utc).replace(tzinfo=None)
            return EngineIncident(fingerprint="ah-regress-1", pattern="ah_regress",
                                  severity="low", signature="s", message="ah_regress 1 happened",
                                  count=count, first_seen=now, last_seen=now)

        created, _updated = self.Incident._record_engine_incidents([occurrence(1)])
        run = self.Run.search([("incident_id", "=", created.id)])
        self.assertEqual(run.state, "approved")
        self.assertEqual(json.loads(run.params), {})
        run.write({"params": json.dumps({"min_age": 0})})
        self.Run._cron_run_approved()
        self.assertEqual((run.state, created.state, mail.state),
                         ("done", "resolved", "installed"), run.error)
        self.assertEqual((pattern.fix_success_count, pattern.fix_regression_count), (1, 0))

        self.Incident._record_engine_incidents([occurrence(2)])
        self.assertEqual(created.state, "regressed")
        self.assertTrue(run.regressed)
        self.assertEqual(pattern.fix_regression_count, 1)
        self.assertGreaterEqual(pattern.fix_mttr_minutes, 0)
        # the module is still fine: a plan that changes nothing is never queued
        self.assertEqual(self.Run.search_count([("incident_id", "=", created.id)]), 1)
        mail.write({"state": "to upgrade"})
        self.Incident._record_engine_incidents([occurrence(1)])
        self.assertEqual(self.Run.search_count([("incident_id", "=", created.id),
                                                ("state", "=", "approved")]), 1)


@tagged("post_install", "-at_install")
class TestSettings(FixRunCase):
    def test_settings_store_the_policy_and_fall_back_safely(self):
        self.env["res.config.settings"].create({
            "auto_heal_environment": "staging", "auto_heal_policy_high": "auto",
            "auto_heal_policy_low": "approval", "auto_heal_budget_max_runs": 5,
            "auto_heal_budget_window_minutes": 60, "auto_heal_demotion_threshold": 2,
        }).execute()
        settings = self.env["res.config.settings"]._auto_heal_settings()
        self.assertEqual(settings, {
            "environment": "staging", "rules": {"low": "approval", "high": "auto"},
            "budget_max_runs": 5, "budget_window_minutes": 60, "demotion_threshold": 2,
            "regression_window_hours": 24})
        self.settings(environment="production", budget_max_runs="many", policy_medium="x")
        settings = self.env["res.config.settings"]._auto_heal_settings()
        self.assertEqual((settings["environment"], settings["budget_max_runs"]), ("prod", 3))
        self.assertNotIn("medium", settings["rules"])
        arch = self.env["res.config.settings"].get_views([(False, "form")])["views"]["form"]
        self.assertIn('name="auto_heal_environment"', arch["arch"])


@tagged("post_install", "-at_install")
class TestWatchdogApi(FixRunCase):
    def host_record(self, run, state, **values):
        now = datetime.now(timezone.utc)
        plan = Plan("ah_test_host_fix", "odoo.service", "restart odoo",
                    steps=["systemctl restart odoo"],
                    preconditions=[Precondition("systemctl exists", True)])
        return FixAttempt(
            run_id="a1b2c3d4e5f6", action=run.action, target="odoo.service",
            actor="watchdog:ah_fix_manager@db", incident=run.incident_id.fingerprint,
            params=json.loads(run.params), state=state, plan=plan.to_dict(),
            started=(now - timedelta(seconds=3)).isoformat(timespec="seconds"),
            ended=now.isoformat(timespec="seconds"), **values).to_dict()

    def test_claim_and_report_round_trip(self):
        pattern = self.make_pattern("ah_host", "ah_test_host_fix", "low")
        incident = self.make_incident(pattern, "ah-host-1")
        run = self.make_run(incident, {"service": "odoo"})
        self.assertEqual((run.state, run.runs_on), ("approved", "host"))
        self.assertIn("runs on the host", run.plan)
        with self.assertRaises(UserError):
            run.with_user(self.manager).action_run()

        api = self.Run.with_user(self.manager)
        self.assertEqual(run.target_host, "web-1")  # the incident's host
        claims = [claim for claim in api.watchdog_claim("web-1") if claim["id"] == run.id]
        token = claims[0].pop("claim_token")
        self.assertGreaterEqual(len(token), 32)
        self.assertEqual(claims, [{"id": run.id, "action": "ah_test_host_fix",
                                   "params": {"service": "odoo"}, "incident": "ah-host-1",
                                   "target_host": "web-1", "plan_hash": run.approved_hash,
                                   "host_plan_hash": None, "plan_only": False}])
        self.assertEqual(run.approved_hash, request_hash("ah_test_host_fix", {"service": "odoo"},
                                                         "web-1"))
        self.assertEqual((run.state, run.claimed_by, run.claimed_uid),
                         ("running", "web-1", self.manager))
        self.assertTrue(run.started_date)
        self.assertNotIn(run.id, [claim["id"] for claim in api.watchdog_claim("web-2")])

        record = self.host_record(
            run, "done", output="restarted odoo.service\nverified: HTTP 200 in 1.2 s",
            backup={"unit": "odoo.service", "was_active": False},
            durations={"plan": 0.01, "backup": 0.02, "apply": 1.5, "verify": 1.2})
        result = api.watchdog_report(run.id, record, claim_token=token, host="web-1")
        self.assertEqual(result, {"id": run.id, "state": "done", "escalated": False})
        self.assertEqual(run.output, "restarted odoo.service\nverified: HTTP 200 in 1.2 s")
        self.assertEqual((run.target, run.engine_run_id), ("odoo.service", "a1b2c3d4e5f6"))
        self.assertAlmostEqual(run.duration, 2.73)
        self.assertTrue(run.applied)
        self.assertIn("restart odoo", run.plan)
        self.assertEqual(json.loads(run.backup_manifest)["unit"], "odoo.service")
        self.assertEqual(incident.state, "resolved")
        self.assertEqual(self.audit_lines(run)[-1]["action"], "ah_test_host_fix.report")
        with self.assertRaises(UserError):
            api.watchdog_report(run.id, record, claim_token=token, host="web-1")  # done now
        with self.assertRaises(UserError):
            run.with_user(self.manager).action_rollback()  # a host run rolls back on the host

    def test_a_claim_never_reported_fails_escalated_after_the_timeout(self):
        pattern = self.make_pattern("ah_host_lost", "ah_test_host_fix", "low")
        incident = self.make_incident(pattern, "ah-host-lost", host="web-9")
        run = self.make_run(incident, {"service": "odoo"})
        api = self.Run.with_user(self.manager)
        self.assertIn(run.id, [claim["id"] for claim in api.watchdog_claim("web-9")])
        self.settings(watchdog_report_timeout_minutes=30)
        run.started_date = fields.Datetime.now() - timedelta(minutes=20)
        self.assertFalse(self.Run._fail_stale_claims())  # still within the timeout
        self.assertEqual(run.state, "running")
        run.started_date = fields.Datetime.now() - timedelta(minutes=31)
        self.Run._cron_run_approved()
        self.assertEqual((run.state, run.escalated), ("failed", True))
        self.assertIn("the watchdog on web-9 did not report back within 30 min", run.error)
        self.assertNotIn(run.id, [claim["id"] for claim in api.watchdog_claim("web-9")])

    def test_reports_of_refused_and_failed_host_runs(self):
        pattern = self.make_pattern("ah_host_bad", "ah_test_host_fix", "low")
        api = self.Run.with_user(self.manager)
        refused = self.make_run(self.make_incident(pattern, "ah-host-2"))
        failed = self.make_run(self.make_incident(pattern, "ah-host-3"))
        claimed = {claim["id"]: claim["claim_token"] for claim in api.watchdog_claim("web-1")}
        self.assertLessEqual({refused.id, failed.id}, set(claimed))
        api.watchdog_report(refused.id, self.host_record(
            refused, "refused", escalate=True,
            error="budget used up: 3 runs within 30 min (the limit is 3); a person must look"),
            claim_token=claimed[refused.id], host="web-1")
        self.assertEqual((refused.state, refused.escalated), ("failed", True))
        self.assertIn("budget used up", refused.error)
        self.assertTrue(any("Escalated" in body for body in self.bodies(refused.incident_id)))
        api.watchdog_report(failed.id, self.host_record(
            failed, "rolled_back", error="verification failed: HTTP 502",
            durations={"apply": 0.5, "verify": 60.0, "rollback": 0.4}),
            claim_token=claimed[failed.id], host="web-1")
        self.assertEqual((failed.state, failed.escalated), ("rolled_back", False))
        self.assertEqual(failed.incident_id.state, "new")
