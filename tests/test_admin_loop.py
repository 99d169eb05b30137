"""The loop from incident to fix, as an admin lives it (issue 10), on real records.

Each test names the behaviour it proves: no echo of auto_heal's own messages, a
switched-off cron that can be reactivated, an approval that runs at once, a
queue without noise, names and labels for people, the incident's guide. The
browser half is in test_tours.py.
"""

import json
import os
import tempfile
from datetime import timedelta

from odoo import fields
from odoo.exceptions import UserError
from odoo.tests import Form, TransactionCase, new_test_user, tagged

from ..engine.incidents import aggregate
from ..engine.scanner import Scanner

HEAD = "2026-11-29 16:15:02,544 10814"


class AdminLoopCase(TransactionCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.Run = cls.env["auto_heal.fix.run"]
        cls.Incident = cls.env["auto_heal.incident"]
        cls.Pattern = cls.env["auto_heal.pattern"].with_context(active_test=False)
        cls.Module = cls.env["ir.module.module"]
        cls.manager = new_test_user(cls.env, "ah_loop_manager",
                                    groups="base.group_user,auto_heal.group_auto_heal_manager")
        # four eyes in prod: who changes a waiting run never approves it
        cls.approver = new_test_user(cls.env, "ah_loop_approver",
                                     groups="base.group_user,auto_heal.group_auto_heal_manager")
        cls.env["ir.config_parameter"].set_param("auto_heal.environment", "prod")
        cls.db = cls.env.cr.dbname

    def scan_text(self, text, log_source=None):
        """*text* through the engine's scanner and into incidents, as a log scan does."""
        patterns = self.env["auto_heal.pattern"]._get_scan_patterns()
        findings = Scanner(patterns).scan_bytes(text.encode())
        return self.Incident._record_engine_incidents(aggregate(findings),
                                                       log_source=log_source, source="log")

    def pattern(self, kind):
        return self.Pattern.search([("type", "=", kind)])

    def stuck(self, name="mail", age_minutes=120):
        module = self.Module.search([("name", "=", name)])
        module.write({"state": "to upgrade"})
        self.env.flush_all()  # the ORM's write_date first, then the older one
        self.env.cr.execute(
            "UPDATE ir_module_module SET write_date = (now() AT TIME ZONE 'UTC') - "
            "%s * interval '1 minute' WHERE id = %s", [age_minutes, module.id])
        module.invalidate_recordset()
        return module

    def switched_off_cron(self, name="Auto-Heal loop: nightly sync"):
        return self.env["ir.cron"].create({
            "name": name, "model_id": self.env.ref("base.model_res_partner").id,
            "state": "code", "code": "model.browse()", "interval_number": 1,
            "interval_type": "days", "active": False})

    def deactivation_record(self, cron):
        return (f"{HEAD} WARNING {self.db} odoo.addons.base.models.ir_cron: Cron job "
                f"'{cron.name}' ({cron.id}) has been deactivated after failing 5 times. More "
                "information can be found in the server logs around 2026-11-29 16:15:02. \n")

    @staticmethod
    def audit(run):
        return [json.loads(line) for line in (run.audit or "").splitlines() if line]


@tagged("post_install", "-at_install")
class TestOwnRecordsAreNoIncidents(AdminLoopCase):
    """Item 2: auto_heal's own records and echoes never become incidents."""

    def test_a_user_error_quoting_an_incident_is_no_new_incident(self):
        self.stuck("mail")
        created, _ = self.scan_text(
            f"{HEAD} ERROR {self.db} odoo.sql_db: bad query: b'SELECT x_tier FROM res_partner'\n"
            "ERROR: column res_partner.x_tier does not exist\nLINE 1: SELECT x_tier\n")
        self.assertEqual(created.pattern_type, "schema_out_of_date")
        # a button refused with a UserError quoting the incident; Odoo logs it on odoo.http
        message = (f"Incident {created.display_name} is Resolved; this action does not "
                   "apply to it.")
        folder = tempfile.mkdtemp(prefix="auto_heal-echo-")
        path = os.path.join(folder, "odoo.log")
        with open(path, "w") as handle:
            handle.write(f"{HEAD} WARNING {self.db} odoo.http: {message}\n")
            handle.write(f"{HEAD} INFO {self.db} odoo.addons.auto_heal.models.auto_heal_fix_run:"
                         ' auto_heal audit: {"action": "x.plan", "error": "column '
                         'res_partner.x_tier does not exist", "result": "blocked"}\n')
            handle.write(f"{HEAD} WARNING {self.db} odoo.addons.auto_heal.models.auto_heal_"
                         "fix_run: auto_heal: fix run 3 could not run: "
                         "psycopg2.errors.DeadlockDetected: deadlock detected\n")
            handle.write(f"{HEAD} INFO {self.db} odoo.addons.base.models.ir_model: Access "
                         "Denied by ACLs for operation: read, uid: 6, model: "
                         "ir.config_parameter\n")
            handle.write(f"{HEAD} INFO {self.db} odoo.modules.loading: done\n")
        self.env["ir.config_parameter"].set_param("auto_heal.log_folders", folder)
        self.env["ir.config_parameter"].set_param("auto_heal.scan_settle_seconds", "0")
        source = self.env["auto_heal.log.source"].create({"name": "echoes", "path": path})
        before = self.Incident.search_count([])
        runs_before = self.Run.search_count([])
        self.assertEqual(source._scan_sources()[source.id], "ok", source.last_scan_message)
        new = self.Incident.search([], order="id desc", limit=self.Incident.search_count([])
                                   - before)
        # only the real ACL denial: no echo of the UserError, none of the audit lines
        self.assertEqual(new.mapped("pattern_type"), ["access_denied"])
        self.assertEqual(created.count, 1)
        self.assertEqual(self.Run.search_count([]), runs_before)


@tagged("post_install", "-at_install")
class TestReactivateCron(AdminLoopCase):
    """Item 3: a cron Odoo switched off is reactivated with the switch-off as its cause."""

    def test_the_deactivation_record_is_the_cause(self):
        cron = self.switched_off_cron()
        created, _ = self.scan_text(self.deactivation_record(cron))
        self.assertEqual(created.pattern_type, "cron_job_deactivated")
        run = created.waiting_run_id
        self.assertEqual((run.action, run.state), ("reactivate_cron", "pending"))
        self.assertEqual(run.param_cron_id, cron.id)
        self.assertTrue(run.precondition_failed)
        self.assertIn("not dealt with yet", run.precondition_banner)
        self.assertIn("What to do: read the traceback of the cause", run.precondition_banner)
        with self.assertRaises(UserError):
            run.with_user(self.manager).action_approve()

        created.with_user(self.manager).action_acknowledge()
        run.with_user(self.manager).action_review()  # the plan is checked again
        self.assertFalse(run.precondition_failed, run.preconditions)
        action = run.with_user(self.manager).action_approve()
        self.assertEqual(action["tag"], "auto_heal_run_after_approval")
        run.with_user(self.manager).action_run_approved_now()
        self.assertEqual(run.state, "done", run.error)
        self.assertTrue(cron.active)
        self.assertEqual(created.state, "resolved")
        self.assertEqual(run.target_label, f"Scheduled action '{cron.name}' (#{cron.id})")

    def test_the_check_finding_is_the_cause_and_one_run_covers_both(self):
        cron = self.switched_off_cron()
        # the check of the database scan sees it: inactive, lastcall after its last write
        self.env.flush_all()
        self.env.cr.execute("UPDATE ir_cron SET lastcall = (now() AT TIME ZONE 'UTC'), "
                            "write_date = (now() AT TIME ZONE 'UTC') - interval '1 day' "
                            "WHERE id = %s", [cron.id])
        cron.invalidate_recordset()
        self.env["auto_heal.db.scan"]._scan_database()
        check = self.Incident.search([("pattern_type", "=", "cron_switched_off")]).filtered(
            lambda i: json.loads(i.captures).get("cron_id") == str(cron.id))
        self.assertEqual(len(check), 1)
        run = check.waiting_run_id
        self.assertEqual(run.action, "reactivate_cron")
        # the log's deactivation record plans the same action on the same target: one run
        logged, _ = self.scan_text(self.deactivation_record(cron))
        self.assertFalse(logged.fix_run_ids)
        self.assertIn(logged, run.covered_incident_ids)
        self.assertEqual(logged.waiting_run_id, run)
        self.assertEqual(self.Run.search_count([("action", "=", "reactivate_cron"),
                                                ("state", "in", ("pending", "approved"))]), 1)

        check.with_user(self.manager).action_acknowledge()
        run.with_user(self.manager).action_approve()
        run.with_user(self.manager).action_run_approved_now()
        self.assertEqual(run.state, "done", run.error)
        self.assertEqual((check.state, logged.state), ("resolved", "resolved"))

    def test_the_cause_is_a_field_editable_while_the_run_waits(self):
        cron = self.switched_off_cron()
        created, _ = self.scan_text(self.deactivation_record(cron))
        cause = self.Incident.create({
            "fingerprint": "ah-loop-cause", "pattern_type": "unknown", "severity": "high",
            "state": "resolved", "message": "ZeroDivisionError in the nightly sync"})
        run = created.waiting_run_id
        with Form(run.with_user(self.manager)) as form:
            form.param_cause.add(cause)
        self.assertEqual(json.loads(run.params), {"cause": ["ah-loop-cause"],
                                                  "cron_id": cron.id})
        self.assertFalse(run.precondition_failed, run.preconditions)  # planned again
        self.assertIn("Parameters changed by", "".join(run.message_ids.mapped("body")))
        self.assertIn(self.manager, run.requester_ids)  # a new request: four eyes
        run.with_user(self.approver).action_approve()
        self.assertEqual(run.state, "approved")
        with self.assertRaises(AssertionError):  # no longer editable once approved
            with Form(run.with_user(self.manager)) as form:
                form.param_cause.clear()

    def test_parameter_fields_come_from_the_data_declarations(self):
        fields_ = self.Run._fields
        for name in ("param_cron_id", "param_cause", "param_modules", "param_min_age",
                     "param_bundle", "param_paths", "param_version", "param_service"):
            self.assertIn(name, fields_)
        for host_only in ("param_pg_ctl", "param_command", "param_owner", "param_roots",
                          "param_dsn", "param_timeout"):
            self.assertNotIn(host_only, fields_, "a host parameter never gets a field")
        self.assertEqual(fields_["param_cause"].comodel_name, "auto_heal.incident")
        arch = self.Run.get_view(view_type="form")["arch"]
        self.assertIn('name="param_cause"', arch)
        self.assertIn("action not in ('reactivate_cron',)", arch)


@tagged("post_install", "-at_install")
class TestApprovalRuns(AdminLoopCase):
    """Item 4: an approved Odoo run runs right after the approval; its form says when."""

    def test_approve_then_the_browser_runs_it(self):
        module = self.stuck("mail")
        self.env["auto_heal.db.scan"]._scan_database()
        incident = self.Incident.search([("pattern_type", "=", "module_operation_stuck")])
        run = incident.waiting_run_id
        action = run.with_user(self.manager).action_approve()
        self.assertEqual(action, {"type": "ir.actions.client",
                                  "tag": "auto_heal_run_after_approval",
                                  "params": {"run_ids": [run.id]}})
        self.assertEqual(run.state, "approved")
        # until then the form says when it runs, and why the cron would not
        self.assertIn("Press Run Now: Odoo runs no scheduled action while modules wait",
                      run.schedule_note)
        self.assertIn("mail: to upgrade", run.schedule_note)
        result = run.with_user(self.manager).action_run_approved_now()
        self.assertEqual(run.state, "done", run.error)
        self.assertEqual(module.state, "installed")
        self.assertEqual(result["params"]["type"], "success")
        self.assertEqual(result["params"]["next"], {"type": "ir.actions.act_window_close"})
        run.invalidate_recordset()
        self.assertFalse(run.schedule_note)

    def test_the_schedule_of_an_approved_run_names_the_cron(self):
        module = self.stuck("mail")
        self.env["auto_heal.db.scan"]._scan_database()
        run = self.Incident.search([("pattern_type", "=", "module_operation_stuck")]
                                   ).waiting_run_id
        run.with_user(self.manager).action_approve()
        module.write({"state": "installed"})
        run.invalidate_recordset(["schedule_note"])
        self.assertIn("Runs with the \"Auto-Heal: run approved fixes\" job, next due",
                      run.schedule_note)

    def test_a_failed_precondition_blocks_the_approval(self):
        self.stuck("mail", age_minutes=0)  # an upgrade may be writing it right now
        pattern = self.pattern("module_state_stuck")
        incident = self.Incident.create({
            "fingerprint": "ah-loop-young", "pattern_id": pattern.id,
            "pattern_type": pattern.type, "severity": "high", "message": "stuck"})
        run = self.Run.browse(incident.with_user(self.manager).action_plan_fix()["res_id"])
        self.assertEqual(run.state, "pending")
        self.assertTrue(run.precondition_failed)
        self.assertIn("the rows were last changed at least 120 s ago", run.precondition_banner)
        self.assertIn("wait until they are 120 s old", run.precondition_banner)
        with self.assertRaises(UserError):
            run.with_user(self.manager).action_approve()
        arch = self.Run.get_view(view_type="form")["arch"]
        self.assertIn("state != 'pending' or precondition_failed", arch)


@tagged("post_install", "-at_install")
class TestQuietQueue(AdminLoopCase):
    """Item 5: the approval queue holds only what a person must decide."""

    def test_a_plan_that_changes_nothing_is_never_queued(self):
        pattern = self.pattern("module_state_stuck")
        incident = self.Incident.create({
            "fingerprint": "ah-loop-noop", "pattern_id": pattern.id,
            "pattern_type": pattern.type, "severity": "high", "message": "stuck"})
        self.assertFalse(self.Run._plan_for_incidents(incident))
        self.assertFalse(self.Run.search([("incident_id", "=", incident.id)]))
        action = incident.with_user(self.manager).action_plan_fix()
        self.assertEqual(action["tag"], "display_notification")
        self.assertIn("nothing to change", action["params"]["message"])
        self.assertFalse(self.Run.search([("incident_id", "=", incident.id)]))
        self.assertFalse(incident.fix_waiting)

    def test_one_open_run_per_action_and_target(self):
        self.stuck("mail")
        pattern = self.pattern("module_state_stuck")
        incidents = self.Incident.create([{
            "fingerprint": f"ah-loop-twin-{n}", "pattern_id": pattern.id,
            "pattern_type": pattern.type, "severity": "high", "message": f"stuck {n}"}
            for n in range(3)])
        runs = self.Run._plan_for_incidents(incidents)
        self.assertEqual(len(runs), 1)
        self.assertEqual(runs.covered_incident_ids, incidents - runs.incident_id)
        self.assertTrue(all(incidents.mapped("fix_waiting")))
        self.assertEqual(set(incidents.mapped("waiting_run_id")), {runs})
        runs.write({"params": json.dumps({"min_age": 0})})
        runs.with_user(self.manager).action_approve()
        runs.with_user(self.manager).action_run_approved_now()
        self.assertEqual(runs.state, "done", runs.error)
        self.assertEqual(set(incidents.mapped("state")), {"resolved"})

    def test_no_database_level_run_for_another_database(self):
        self.stuck("mail")
        created, _ = self.scan_text(
            f"{HEAD} WARNING other_db odoo.addons.base.models.ir_cron: Skipping database "
            "other_db because of modules to install/upgrade/remove.\n")
        self.assertEqual(created.database, "other_db")
        self.assertEqual(created.pattern_id.fix_script, "reset_stuck_module_states")
        self.assertFalse(created.fix_run_ids)
        with self.assertRaises(UserError):
            created.with_user(self.manager).action_plan_fix()

    def test_a_run_whose_target_is_healthy_again_is_cancelled_with_an_audit_line(self):
        module = self.stuck("mail")
        self.env["auto_heal.db.scan"]._scan_database()
        incident = self.Incident.search([("pattern_type", "=", "module_operation_stuck")])
        run = incident.waiting_run_id
        self.assertEqual(run.state, "pending")
        module.write({"state": "installed"})  # someone finished the upgrade meanwhile
        waiting = self.Run.with_user(self.manager).action_open_waiting()
        self.assertEqual(waiting["res_model"], "auto_heal.fix.run")
        self.assertEqual(run.state, "cancelled")
        self.assertIn("the target is healthy again", run.cancel_reason)
        line = self.audit(run)[-1]
        self.assertEqual((line["action"], line["result"]),
                         ("reset_stuck_module_states.cancel", "cancelled"))
        self.assertIn("Fix run", "".join(incident.message_ids.mapped("body")))


@tagged("post_install", "-at_install")
class TestNamesAndLabels(AdminLoopCase):
    """Items 6 and 8: names and labels a person understands; lists sorted for them."""

    def test_incidents_are_named_by_pattern_and_cause(self):
        bad_query, _ = self.scan_text(
            f"{HEAD} ERROR {self.db} odoo.sql_db: bad query: b'SELECT \"res_partner\".\"id\", "
            "\"res_partner\".\"x_tier\" FROM \"res_partner\"'\nERROR: column res_partner.x_tier "
            "does not exist\nLINE 1: SELECT\n")
        self.assertEqual(bad_query.name, "Database schema older than the code \u2014 column "
                                         "res_partner.x_tier does not exist")
        requests = [
            self.scan_text(f"{HEAD} ERROR {self.db} odoo.http: Exception during request "
                           f"handling.\nTraceback (most recent call last):\n  File \"x.py\", "
                           f"line 1, in f\n{error}\n")[0]
            for error in ("psycopg2.errors.DeadlockDetected: deadlock detected",
                          "KeyError: 'partner_shipping_id'",
                          "ZeroDivisionError: division by zero")]
        names = [incident.name for incident in requests]
        self.assertEqual(len(set(names)), 3, names)
        self.assertEqual(names[0], "Database deadlock \u2014 deadlock detected")
        self.assertEqual(names[2], "Unknown error \u2014 division by zero")
        self.assertFalse(any("Exception during request handling" in name for name in names))
        down = self.Incident.create({"fingerprint": "ah-loop-down-name", "source": "watchdog",
                                     "pattern_type": "odoo_down", "severity": "high",
                                     "message": "the Odoo process is a zombie"})
        self.assertEqual(down.name, "Odoo went down \u2014 the Odoo process is a zombie")
        cron = self.switched_off_cron("Nightly sync")
        deactivated, _ = self.scan_text(self.deactivation_record(cron))
        self.assertEqual(deactivated.name, "Scheduled action deactivated after repeated "
                                           f"failures \u2014 Cron job 'Nightly sync' "
                                           f"({cron.id}) has been deactivated after failing 5 "
                                           "times")

    def test_lists_sort_by_severity_then_last_seen_and_say_whether_a_fix_waits(self):
        now = fields.Datetime.now()
        rows = self.Incident.create([
            {"fingerprint": f"ah-loop-sort-{sev}-{age}", "pattern_type": "unknown",
             "severity": sev, "message": f"{sev} {age}", "last_seen": now - timedelta(hours=age)}
            for sev, age in (("low", 0), ("critical", 5), ("high", 1), ("critical", 1))])
        ordered = self.Incident.search([("id", "in", rows.ids)])
        self.assertEqual([(r.severity, r.message) for r in ordered],
                         [("critical", "critical 1"), ("critical", "critical 5"),
                          ("high", "high 1"), ("low", "low 0")])
        arch = self.Incident.get_view(view_type="list")["arch"]
        self.assertIn('name="fix_waiting"', arch)
        self.assertIn('create="0"', arch)
        self.assertIn('widget="auto_heal_severity"', arch)
        self.assertIn('widget="auto_heal_state"', arch)

    def test_actions_and_targets_have_labels_and_durations_units(self):
        self.stuck("mail")
        scan = self.env["auto_heal.db.scan"]._scan_database()
        line = scan.check_ids.filtered(lambda ln: ln.check == "module_operation_stuck")
        self.assertEqual(line.check_label, "Module install, upgrade or removal stuck")
        run = self.Incident.search([("pattern_type", "=", "module_operation_stuck")]
                                   ).waiting_run_id
        self.assertEqual(run.action_label, "Reset stuck module states")
        self.assertEqual(run.target_label, "Module states of mail")
        self.assertTrue(run.name.startswith("Reset stuck module states: Module install"))
        self.assertEqual(self.Run._fields["duration"].string, "Duration (s)")
        self.assertEqual(self.Run._fields["recovery_seconds"].string, "Time to Recovery (s)")
        settings = self.env["res.config.settings"]
        for name in ("auto_heal_dbcheck_module_stuck_minutes",
                     "auto_heal_dbcheck_cron_stuck_minutes",
                     "auto_heal_dbcheck_long_query_warn_minutes"):
            self.assertEqual(settings._fields[name].type, "integer", name)
        self.env["ir.config_parameter"].set_param("auto_heal.dbcheck.module_stuck_minutes",
                                                  "45.0")
        settings._auto_heal_whole_minutes()
        self.assertEqual(settings.create({}).auto_heal_dbcheck_module_stuck_minutes, 45)


@tagged("post_install", "-at_install")
class TestIncidentGuide(AdminLoopCase):
    """Item 7: the incident form says what to do."""

    def test_what_to_do_captures_and_the_review_button(self):
        self.stuck("mail")
        self.env["auto_heal.db.scan"]._scan_database()
        incident = self.Incident.search([("pattern_type", "=", "module_operation_stuck")])
        html = str(incident.what_to_do_html)
        self.assertIn("Modules have stayed", html)  # the pattern's description
        self.assertIn("<strong>Symptoms:</strong>", html)
        self.assertIn("<ol", html)
        self.assertIn("Make sure no upgrade runs now", html)
        self.assertIn("<th class='text-nowrap pe-3 fw-normal text-muted'>Module</th>",
                      str(incident.captures_html))
        self.assertTrue(incident.fix_waiting)
        action = incident.with_user(self.manager).action_review_fix()
        self.assertEqual((action["res_model"], action["res_id"]),
                         ("auto_heal.fix.run", incident.waiting_run_id.id))

    def test_every_pattern_has_a_runbook(self):
        patterns = self.Pattern.search([])
        missing = patterns.filtered(lambda p: not (p.runbook_steps and p.runbook_cause))
        self.assertFalse(missing.mapped("type"))
        unknown = self.Incident.create({"fingerprint": "ah-loop-unknown",
                                        "pattern_type": "unknown", "message": "x"})
        self.assertIn("innermost exception", str(unknown.what_to_do_html))
        watchdog = self.Incident.create({"fingerprint": "ah-loop-down",
                                         "pattern_type": "odoo_down", "message": "x"})
        self.assertIn("the watchdog restarted it", str(watchdog.what_to_do_html))

    def test_an_edited_runbook_is_kept_on_upgrade(self):
        pattern = self.pattern("db_deadlock")
        pattern.runbook_steps = "Call the DBA."
        self.env["auto_heal.pattern"]._load_runbooks()
        self.assertEqual(pattern.runbook_steps, "Call the DBA.")
        other = self.pattern("db_lock_not_available")
        other.write({"runbook_steps": False, "runbook_hash": False})
        self.env["auto_heal.pattern"]._load_runbooks()
        self.assertIn("Find the holder", other.runbook_steps)

    def test_internals_are_for_debug_mode_and_pattern_fields_read_only(self):
        from lxml import etree

        def arch(xmlid):
            return etree.fromstring(self.env.ref(xmlid).arch)

        form = arch("auto_heal.auto_heal_incident_view_form")
        self.assertEqual(form.get("create"), "false")
        for name in ("fingerprint", "signature", "captures", "severity_rank"):
            [node] = form.xpath(f"//field[@name='{name}']")
            self.assertTrue(node.xpath("ancestor::*[@groups='base.group_no_one']"), name)
        self.assertEqual(form.xpath("//field[@name='pattern_id']")[0].get("readonly"), "1")
        source = arch("auto_heal.auto_heal_log_source_view_form")
        for node in source.xpath("//field[starts-with(@name, 'cursor_')]"):
            self.assertTrue(node.xpath("ancestor-or-self::*[@groups='base.group_no_one']"),
                            node.get("name"))
        for xmlid in ("auto_heal.auto_heal_db_scan_view_form",
                      "auto_heal.auto_heal_db_scan_view_list"):
            for node in arch(xmlid).xpath("//field[@name='statements' or @name='queries']"):
                self.assertTrue(node.xpath("ancestor-or-self::*[@groups='base.group_no_one']"),
                                xmlid)
