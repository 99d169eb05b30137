"""Approvals you can trust in production, on real rows: expiry, four eyes, two approvers,
a plan that changed between approval and run (a real XML file in a writable addons
path), re-plan, and the watchdog's side of a host run's approval (its claim).

The watchdog over real JSON-RPC (the real CLI refusing a plan that changed on the
host) is in test_watchdog_rpc.py.
"""

import json
import os
import shutil
import uuid
from datetime import timedelta

from odoo import fields
from odoo.exceptions import AccessError, UserError, ValidationError
from odoo.modules.module import get_module_path
from odoo.tests import new_test_user, tagged

from ..engine.incidents import Incident as EngineIncident
from ..engine.planhash import request_hash
from .test_fix_actions import LEGACY_CRON
from .test_fix_run import FixRunCase
from .test_notify import RecordingServer

#: The legacy cron file once a deployment brought a second legacy job into it.
LEGACY_CRON_TWO_JOBS = LEGACY_CRON.replace(b"</odoo>", b"""\
    <record id="ir_cron_legacy_two" model="ir.cron">
        <field name="name">Second legacy job</field>
        <field name="model_id" ref="base.model_res_partner"/>
        <field name="state">code</field>
        <field name="code">model.search([], limit=2)</field>
        <field name="numbercall">5</field>
    </record>
</odoo>""")


class ApprovalCase(FixRunCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        groups = "base.group_user,auto_heal.group_auto_heal_manager"
        cls.second = new_test_user(cls.env, "ah_fix_second", groups=groups)
        cls.Approval = cls.env["auto_heal.fix.run.approval"]
        cls.Event = cls.env["auto_heal.notification.event"]

    #: Installed modules to leave stuck, one per run of a test: one open run per action
    #: and target (issue 10), and the target of a module incident is its module.
    STUCK = ("mail", "bus", "web_tour", "base_setup", "web", "auth_signup")

    def stuck_run(self, kind, severity="high", fingerprint=None, own_module=True):
        """A pending reset_stuck_module_states run planned by a scan (no requester),
        for a module of its own, stuck for an hour (its precondition holds)."""
        used = getattr(self, "_stuck_used", 0)
        module = self.STUCK[used % len(self.STUCK)]
        self._stuck_used = used + 1
        self.stuck_module(module, "to upgrade")
        self.env.flush_all()
        self.env.cr.execute("UPDATE ir_module_module SET write_date = now() - interval '1 hour' "
                            "WHERE name = %s", [module])
        pattern = self.make_pattern(kind, "reset_stuck_module_states", severity)
        return self.Run._plan_for_incidents(self.make_incident(
            pattern, fingerprint or f"ah-{kind}",
            captures={"module": module} if own_module else None))

    def last_audit(self, run):
        return self.audit_lines(run)[-1]


@tagged("post_install", "-at_install")
class TestApprovalExpiry(ApprovalCase):
    def test_deadlines_by_environment_and_severity(self):
        run = self.stuck_run("ah_expiry_prod")
        self.assertEqual(run.state, "pending")
        self.assertEqual(run.expires_at - run.waiting_since, timedelta(hours=24))
        self.assertTrue(run.expires_in)

        self.settings(environment="staging")
        run = self.stuck_run("ah_expiry_staging")
        self.assertEqual(run.expires_at - run.waiting_since, timedelta(hours=72))

        self.settings(environment="dev", policy_high="approval")
        run = self.stuck_run("ah_expiry_dev")
        self.assertEqual(run.state, "pending")
        self.assertFalse(run.expires_at, "dev: a waiting run never expires")
        self.assertEqual(run.expires_in, "never expires")

        self.env["res.config.settings"].create({
            "auto_heal_environment": "prod", "auto_heal_expiry_prod_critical": 4,
            "auto_heal_expiry_prod_high": 0}).execute()
        critical = self.stuck_run("ah_expiry_critical", "critical")
        self.assertEqual(critical.expires_at - critical.waiting_since, timedelta(hours=4))
        high = self.stuck_run("ah_expiry_never", "high")
        self.assertFalse(high.expires_at, "0 hours: never (stored as 0, not as the default)")
        values = self.env["res.config.settings"].default_get(
            ["auto_heal_expiry_prod_high", "auto_heal_expiry_prod_low"])
        self.assertEqual((values["auto_heal_expiry_prod_high"],
                          values["auto_heal_expiry_prod_low"]), (0, 24))
        with self.assertRaises(ValidationError), self.cr.savepoint():
            self.env["res.config.settings"].create({"auto_heal_expiry_prod_low": -1})

    def test_a_run_expires_then_can_no_longer_be_approved(self):
        server = RecordingServer().start()
        self.addCleanup(server.stop)
        self.env["auto_heal.notification.channel"].create({
            "name": "ops", "kind": "webhook", "url": server.url, "min_severity": "low"})
        run = self.stuck_run("ah_expire")
        self.assertEqual(run.state, "pending")
        self.assertFalse(self.Run._cron_expire_waiting(), "not yet past its deadline")
        self.assertEqual(run.state, "pending")

        run.expires_at = fields.Datetime.now() - timedelta(minutes=1)
        self.assertEqual(run.expires_in, "overdue: expires at the next check")
        self.assertEqual(run.state, "pending", "expiry is a transition, never a reading")
        with self.assertRaisesRegex(UserError, "expired and can no longer be approved"):
            run.with_user(self.manager).action_approve()

        self.assertEqual(self.Run._cron_expire_waiting(), run)
        self.assertEqual(run.state, "expired")
        self.assertTrue(run.expired_date)
        line = self.last_audit(run)
        self.assertEqual((line["action"], line["result"], line["actor"]),
                         ("reset_stuck_module_states.expire", "expired", "odoo:cron"))
        self.assertEqual(line["details"]["approvals"], "0/1")
        self.assertIn("deadline", line["details"])
        self.assertTrue(any("Expired: no approval by" in body for body in self.bodies(run)))
        self.assertEqual(self.Event.search([("fix_run_id", "=", run.id)]).mapped("event"),
                         ["approval_needed", "approval_expired"])
        self.env["auto_heal.notification.outbox"]._send_notifications()
        events = [request["body"]["event"] for request in server.requests]
        self.assertIn("approval_expired", events)
        sent = [r["body"] for r in server.requests if r["body"]["event"] == "approval_expired"]
        self.assertEqual(sent[0]["fix_run"]["state"], "expired")

        with self.assertRaisesRegex(UserError, "Expired"):
            run.with_user(self.manager).action_approve()
        with self.assertRaises(UserError):
            run.with_user(self.manager).action_replan()
        self.assertEqual(run.state, "expired")
        self.assertFalse(run.approval_ids)

        # a new occurrence of the incident plans a fresh run
        now = fields.Datetime.now()
        self.Incident._record_engine_incidents([EngineIncident(
            fingerprint=run.incident_id.fingerprint, pattern="ah_expire", severity="high",
            signature="s", message="ah_expire 2 happened", count=1, first_seen=now,
            last_seen=now)])
        fresh = self.Run.search([("incident_id", "=", run.incident_id.id),
                                 ("id", "!=", run.id)])
        self.assertEqual((len(fresh), fresh.state), (1, "pending"))
        self.assertGreater(fresh.expires_at, now)

    def test_runs_waiting_from_before_deadlines_get_one(self):
        run = self.stuck_run("ah_expire_old")
        run.write({"waiting_since": False, "expires_at": False,
                   "planned_date": fields.Datetime.now() - timedelta(hours=30)})
        self.assertEqual(self.Run._cron_expire_waiting(), run)
        self.assertEqual(run.state, "expired")


@tagged("post_install", "-at_install")
class TestFourEyes(ApprovalCase):
    def hand_made_run(self, kind):
        """A run a manager plans and submits by hand, for a stuck module of its own."""
        used = getattr(self, "_stuck_used", 0)
        module = self.STUCK[used % len(self.STUCK)]
        self._stuck_used = used + 1
        self.stuck_module(module, "to upgrade")
        pattern = self.make_pattern(kind, "reset_stuck_module_states", "high")
        run = self.Run.with_user(self.manager).create({
            "incident_id": self.make_incident(pattern, f"ah-{kind}").id,
            "action": "reset_stuck_module_states",
            "params": json.dumps({"min_age": 0, "modules": [module]})})
        run.with_user(self.manager).action_submit()
        self.assertEqual(run.state, "pending")
        self.assertEqual(run.requester_ids, self.manager)
        return run

    def test_a_self_approval_is_refused_in_prod_and_allowed_in_dev(self):
        run = self.hand_made_run("ah_eyes_prod")
        with self.assertRaisesRegex(UserError, "prod: four eyes: you planned or submitted"):
            run.with_user(self.manager).action_approve()
        self.assertEqual((run.state, len(run.approval_ids)), ("pending", 0))
        run.with_user(self.second).action_approve()
        self.assertEqual((run.state, run.approved_by), ("approved", self.second))
        [approval] = run.approval_ids
        self.assertEqual((approval.user_id, approval.plan_hash), (self.second, run.plan_hash))
        self.assertEqual(run.approved_hash, run.plan_hash)
        self.assertTrue(run.plan_hash.startswith("sha256:"))
        line = self.last_audit(run)
        self.assertEqual((line["action"], line["result"], line["actor"]),
                         ("reset_stuck_module_states.approve", "approved", "odoo:ah_fix_second"))
        self.assertEqual(line["details"]["plan_hash"], run.plan_hash)

        # a run the scan planned has no requester: any manager may approve it
        scanned = self.stuck_run("ah_eyes_scan")
        self.assertFalse(scanned.requester_ids)
        scanned.with_user(self.manager).action_approve()
        self.assertEqual(scanned.state, "approved")

        self.settings(environment="dev", policy_high="approval")
        run = self.hand_made_run("ah_eyes_dev")
        run.with_user(self.manager).action_approve()
        self.assertEqual((run.state, run.approved_by), ("approved", self.manager))

        # configurable per environment
        self.env["ir.config_parameter"].set_param("auto_heal.four_eyes.dev", "1")
        run = self.hand_made_run("ah_eyes_dev_on")
        with self.assertRaisesRegex(UserError, "dev: four eyes"):
            run.with_user(self.manager).action_approve()

    def test_changing_the_target_host_makes_you_a_requester(self):
        pattern = self.make_pattern("ah_eyes_host", "ah_test_host_fix", "high")
        run = self.Run._plan_for_incidents(self.make_incident(pattern, "ah-eyes-host"))
        self.assertEqual((run.state, run.runs_on), ("pending", "host"))
        first_hash = run.plan_hash
        self.assertEqual(first_hash, request_hash("ah_test_host_fix", {}, "web-1"))
        run.with_user(self.second).target_host = "web-2"
        self.assertEqual(run.plan_hash, request_hash("ah_test_host_fix", {}, "web-2"))
        with self.assertRaisesRegex(UserError, "four eyes"):
            run.with_user(self.second).action_approve()
        run.with_user(self.manager).action_approve()
        self.assertEqual(run.approved_hash, run.plan_hash)

    def test_approvals_cannot_be_written_around_the_buttons(self):
        run = self.hand_made_run("ah_eyes_raw")
        as_manager = run.with_user(self.manager)
        for vals in ({"state": "approved"}, {"approved_hash": "sha256:00"},
                     {"approvals_required": 0}, {"expires_at": False},
                     {"requester_ids": [(5, 0, 0)]},
                     {"action": "clear_asset_bundles"}):
            with self.assertRaises(AccessError, msg=vals), self.cr.savepoint():
                as_manager.write(vals)
        with self.assertRaises(AccessError), self.cr.savepoint():
            self.Run.with_user(self.manager).create({
                "incident_id": run.incident_id.id, "action": "clear_asset_bundles",
                "state": "approved"})
        with self.assertRaises(AccessError), self.cr.savepoint():
            self.Approval.with_user(self.manager).create({
                "run_id": run.id, "user_id": self.second.id, "date": fields.Datetime.now()})
        run.invalidate_recordset()
        self.assertEqual((run.state, run.approval_ids), ("pending", self.Approval))
        self.assertEqual(run.requester_ids, self.manager)
        # the data parameters may change while it waits (issue 10): a new request, with
        # the one who changed it among its requesters; never once it is approved
        params = dict(json.loads(run.params), min_age=1)
        run.with_user(self.second).write({"params": json.dumps(params)})
        self.assertEqual(run.requester_ids, self.manager | self.second)
        self.assertEqual(json.loads(run.params), params)
        self.env.cr.execute("UPDATE ir_module_module SET write_date = now() - interval '1 hour' "
                            "WHERE name = ANY(%s)", [params["modules"]])
        self.settings(environment="dev")
        run.with_user(self.manager).action_approve()
        self.assertEqual(run.state, "approved")
        with self.assertRaises(AccessError), self.cr.savepoint():
            run.with_user(self.manager).write({"params": json.dumps({"min_age": 0})})


@tagged("post_install", "-at_install")
class TestTwoApprovers(ApprovalCase):
    def test_a_critical_run_needs_two_distinct_approvers(self):
        self.env["res.config.settings"].create({"auto_heal_critical_approvers": "2"}).execute()
        third = new_test_user(self.env, "ah_fix_third",
                              groups="base.group_user,auto_heal.group_auto_heal_manager")
        run = self.stuck_run("ah_two", "critical")
        self.assertEqual((run.state, run.approvals_required, run.approvals_needed),
                         ("pending", 2, 2))
        run.with_user(self.manager).action_approve()
        self.assertEqual((run.state, run.approvals_needed), ("pending", 1))
        self.assertTrue(any("1 of 2 approvals" in body for body in self.bodies(run)))
        with self.assertRaisesRegex(UserError, "already approved this plan"):
            run.with_user(self.manager).action_approve()
        self.assertEqual(self.last_audit(run)["details"]["approvals"], "1/2")
        run.with_user(third).action_approve()
        self.assertEqual((run.state, run.approvals_needed, run.approved_by),
                         ("approved", 0, third))
        self.assertEqual(run.approval_ids.user_id, self.manager | third)
        self.assertEqual(set(run.approval_ids.mapped("plan_hash")), {run.approved_hash})
        self.assertEqual([line["details"]["approvals"] for line in self.audit_lines(run)
                          if line["action"].endswith(".approve")], ["1/2", "2/2"])

        high = self.stuck_run("ah_two_high", "high")
        self.assertEqual(high.approvals_required, 1)


@tagged("post_install", "-at_install")
class TestStalePlans(ApprovalCase):
    def legacy_module(self, content=LEGACY_CRON):
        addons = os.path.dirname(get_module_path("auto_heal"))
        module = os.path.join(addons, f"ah_stale_cron_{uuid.uuid4().hex[:8]}")
        os.makedirs(os.path.join(module, "data"))
        self.addCleanup(shutil.rmtree, module, True)
        xml = os.path.join(module, "data", "cron.xml")
        with open(xml, "wb") as handle:
            handle.write(content)
        return xml

    def test_a_file_changed_between_approval_and_run_goes_stale_untouched(self):
        xml = self.legacy_module()
        incident = self.make_incident(self.pattern("cron_field_deprecated"), "ah-stale-xml",
                                      {"xml_file": xml, "xml_line": "4"})
        run = self.Run._plan_for_incidents(incident)
        self.assertEqual((run.runs_on, run.state), ("odoo", "pending"), run.plan)
        approved_hash = run.plan_hash
        approved_plan = run.plan
        run.with_user(self.manager).action_approve()
        self.assertEqual(run.approved_hash, approved_hash)

        with open(xml, "wb") as handle:  # a deployment changes the file meanwhile
            handle.write(LEGACY_CRON_TWO_JOBS)
        run.with_user(self.manager).action_run()
        self.assertEqual(run.state, "stale", run.error)
        with open(xml, "rb") as handle:
            self.assertEqual(handle.read(), LEGACY_CRON_TWO_JOBS, "the file was touched")
        self.assertFalse(run.applied)
        self.assertNotEqual(run.plan_hash, approved_hash)
        self.assertEqual(run.approved_hash, approved_hash)
        self.assertIn("the plan changed since it was approved", run.plan_change_reason)
        self.assertIn(approved_plan, run.previous_plan)
        self.assertIn("limit=2", run.diff)
        self.assertNotIn("limit=2", run.previous_plan)
        self.assertTrue(any(line.startswith("+") and "ir_cron_legacy_two" in line
                            for line in run.plan_change.splitlines()), run.plan_change)
        self.assertTrue(run.approval_ids.superseded)
        self.assertEqual(run.approvals_needed, 1)
        self.assertTrue(run.expires_at)
        stale = [line for line in self.audit_lines(run) if line["result"] == "stale"]
        self.assertEqual(stale[-1]["details"]["approved_hash"], approved_hash)
        self.assertEqual(stale[-1]["details"]["plan_hash"], run.plan_hash)
        self.assertTrue(any("the plan differs from the one approved" in body
                            for body in self.bodies(run)))
        with self.assertRaises(UserError):
            run.with_user(self.manager).action_run()  # stale is no approval

        run.with_user(self.manager).action_approve()  # the new plan, read and approved
        self.assertEqual((run.state, run.approved_hash), ("approved", run.plan_hash))
        run.with_user(self.manager).action_run()
        self.assertEqual(run.state, "done", run.error)
        with open(xml, "rb") as handle:
            fixed = handle.read()
        self.assertNotIn(b"numbercall", fixed)
        self.assertIn(b"Second legacy job", fixed)

    def test_an_unchanged_plan_runs(self):
        """Touching the file (same bytes, new mtime) changes no plan: the run goes on."""
        xml = self.legacy_module()
        incident = self.make_incident(self.pattern("cron_field_deprecated"), "ah-stale-same",
                                      {"xml_file": xml})
        run = self.Run._plan_for_incidents(incident)
        run.with_user(self.manager).action_approve()
        os.utime(xml, ns=(1, 1))
        run.with_user(self.manager).action_run()
        self.assertEqual(run.state, "done", run.error)


@tagged("post_install", "-at_install")
class TestReplan(ApprovalCase):
    def test_replan_shows_what_changed_and_clears_old_approvals(self):
        self.env["res.config.settings"].create({"auto_heal_critical_approvers": "2"}).execute()
        run = self.stuck_run("ah_replan", "critical", own_module=False)  # every stuck one
        run.with_user(self.manager).action_approve()
        self.assertEqual(run.approvals_needed, 1)
        first_hash = run.plan_hash

        run.with_user(self.second).action_replan()  # nothing changed
        self.assertEqual((run.state, run.plan_hash, run.approvals_needed),
                         ("pending", first_hash, 1))
        self.assertIn("No change", run.plan_change)
        self.assertFalse(run.approval_ids.superseded)

        other = self.Module.search([("state", "=", "uninstalled")], limit=1)
        other.write({"state": "to install"})
        self.env.flush_all()  # stuck for an hour too: the precondition still holds
        self.env.cr.execute("UPDATE ir_module_module SET write_date = now() - interval '1 hour' "
                            "WHERE id = %s", [other.id])
        other.invalidate_recordset()
        run.with_user(self.second).action_replan()
        self.assertEqual(run.state, "pending")
        self.assertNotEqual(run.plan_hash, first_hash)
        self.assertTrue(any(line.startswith("+") and f"{other.name}: to install -> uninstalled"
                            in line for line in run.plan_change.splitlines()), run.plan_change)
        self.assertIn(f"{other.name}: to install -> uninstalled", run.plan)
        self.assertNotIn(other.name + ":", run.previous_plan)
        self.assertTrue(run.approval_ids.superseded)
        self.assertEqual(run.approvals_needed, 2)
        self.assertIn("re-planned by", run.plan_change_reason)
        self.assertEqual(self.last_audit(run)["result"], "changed")
        self.assertFalse(run.requester_ids, "a re-plan chooses nothing: no requester")
        run.with_user(self.manager).action_approve()  # the old approval no longer counts
        self.assertEqual((run.state, run.approvals_needed), ("pending", 1))


@tagged("post_install", "-at_install")
class TestHostRunApproval(ApprovalCase):
    def test_a_claim_refuses_a_request_that_is_not_the_approved_one(self):
        pattern = self.make_pattern("ah_host_req", "ah_test_host_fix", "high")
        run = self.Run._plan_for_incidents(self.make_incident(pattern, "ah-host-req"))
        run.with_user(self.manager).action_approve()
        api = self.Run.with_user(self.second)
        # below the ORM's guard (a script, a bug): the parameters changed after approval
        self.env.flush_all()
        self.env.cr.execute("UPDATE auto_heal_fix_run SET params = %s WHERE id = %s",
                            [json.dumps({"service": "postgresql"}), run.id])
        run.invalidate_recordset()
        self.assertNotIn(run.id, [claim["id"] for claim in api.watchdog_claim("web-1")])
        self.assertEqual(run.state, "stale")
        self.assertIn("the request (action, parameters, target host) is not the one approved",
                      run.plan_change_reason)
        self.assertIn("postgresql", run.plan)
        self.assertTrue(run.approval_ids.superseded)
        run.with_user(self.manager).action_approve()
        [claim] = [c for c in api.watchdog_claim("web-1") if c["id"] == run.id]
        self.assertEqual(claim["plan_hash"], request_hash("ah_test_host_fix",
                                                          {"service": "postgresql"}, "web-1"))

    def test_the_host_plans_first_then_its_plan_is_approved(self):
        self.env["ir.config_parameter"].set_param("auto_heal.host_plan_approval", "1")
        pattern = self.make_pattern("ah_host_first", "ah_test_host_fix", "high")
        run = self.Run._plan_for_incidents(self.make_incident(pattern, "ah-host-first"))
        run.with_user(self.manager).action_approve()
        api = self.Run.with_user(self.second)
        [claim] = [c for c in api.watchdog_claim("web-1") if c["id"] == run.id]
        self.assertEqual((claim["plan_only"], claim["host_plan_hash"]), (True, None))
        done = {"run_id": "r1", "action": run.action, "target": "odoo", "actor": "w",
                "state": "done", "plan": {}, "plan_hash": "sha256:aa"}
        with self.assertRaisesRegex(UserError, "must be its plan"):
            api.watchdog_report(run.id, done, claim_token=claim["claim_token"], host="web-1")
        planned = dict(done, state="planned", plan={
            "action": run.action, "target": "odoo.service", "summary": "restart odoo",
            "steps": ["run: systemctl restart odoo.service"], "diff": "", "preconditions": [],
            "changes": True, "reversible": False, "details": {}}, plan_hash="sha256:bb")
        api.watchdog_report(run.id, planned, claim_token=claim["claim_token"], host="web-1")
        self.assertEqual((run.state, run.host_plan_hash), ("pending", "sha256:bb"))
        self.assertIn("systemctl restart odoo.service", run.plan)
        self.assertTrue(run.approval_ids.superseded)
        self.assertIn("approve the host's own plan", run.plan_change_reason)
        run.with_user(self.manager).action_approve()
        self.assertEqual(run.approved_host_hash, "sha256:bb")
        [claim] = [c for c in api.watchdog_claim("web-1") if c["id"] == run.id]
        self.assertEqual((claim["plan_only"], claim["host_plan_hash"]), (False, "sha256:bb"))
