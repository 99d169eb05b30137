"""Each form of secret (tools/secret_forms.py) through each sink of the addon, on real rows.

A real log file holds one record per form; a catch-all pattern (as a careless
Manager would write one) turns each into an incident through the real scan.
Then, form by form, the text goes on to the other sinks: a watchdog's report
of a host run (its error, its target: chatter, the run's audit lines), the
hand-over (its stored payload), and notifications over real HTTP (Mattermost
and JSON webhooks) and e-mail. For every (sink, form): the form's marker is
there (the text reached the sink) and none of its secret fragments is.
"""

import json
import os
import shutil
import tempfile
import uuid

from odoo.tests import TransactionCase, new_test_user, tagged

from ..engine.actions import FixAttempt
from ..tools.secret_forms import CATCH_ALL, FORM_NAMES, FORMS, leaks, log_text
from .test_notify import RecordingServer

HOST = "ah-sinks-host"


@tagged("post_install", "-at_install")
class TestSecretSinks(TransactionCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.root = tempfile.mkdtemp(prefix="auto_heal-sinks-")
        cls.addClassCleanup(shutil.rmtree, cls.root, True)
        params = cls.env["ir.config_parameter"]
        params.set_param("auto_heal.log_folders", cls.root)
        params.set_param("auto_heal.scan_settle_seconds", "0")
        params.set_param("auto_heal.environment", "prod")
        cls.manager = new_test_user(
            cls.env, "ah_sinks_manager", email="ah-sinks@example.com",
            groups="base.group_user,auto_heal.group_auto_heal_manager")
        # four eyes in prod: a run the manager submits is approved by another one
        cls.approver = new_test_user(
            cls.env, "ah_sinks_approver",
            groups="base.group_user,auto_heal.group_auto_heal_manager")
        cls.pattern = cls.env["auto_heal.pattern"].create(dict(
            CATCH_ALL, name="catch all", fix_script="ah_test_host_fix"))
        path = os.path.join(cls.root, "odoo.log")
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(log_text())
        cls.source = cls.env["auto_heal.log.source"].create({"name": "sinks", "path": path})

    def scan(self):
        self.assertEqual(self.source._scan_sources()[self.source.id], "ok",
                         self.source.last_scan_message)
        incidents = self.env["auto_heal.incident"].search([
            ("log_source_id", "=", self.source.id)])
        by_form = {json.loads(i.captures)["form"]: i for i in incidents}
        self.assertEqual(set(by_form), set(FORM_NAMES))
        return by_form

    def assert_masked(self, sink, texts):
        text = "\n".join(str(t or "") for t in texts)
        for name in FORM_NAMES:
            form = FORMS[name]
            with self.subTest(sink=sink, form=name):
                self.assertIn(form.marker, text, f"{name} never reached {sink}")
                self.assertEqual(leaks(text, form), [], f"{name} leaked into {sink}")

    def test_incident_samples_names_and_fields(self):
        incidents = self.scan()
        for name, incident in incidents.items():
            form = FORMS[name]
            fields = [incident.sample, incident.message, incident.name, incident.signature,
                      incident.captures, incident.exception, incident.display_name]
            with self.subTest(sink="incident", form=name):
                self.assertIn(form.marker, incident.sample)
                self.assertIn(form.marker, incident.name)
                self.assertEqual(leaks("\n".join(str(f or "") for f in fields), form), [])
        self.assert_masked("incident", [i.sample for i in incidents.values()])

    def report_host_runs(self, incidents):
        """A watchdog claims each run and reports it with the form's text as its outcome."""
        api = self.env["auto_heal.fix.run"].with_user(self.manager)
        runs = self.env["auto_heal.fix.run"]
        for incident in incidents.values():
            incident.host = HOST
            run = incident.fix_run_ids.filtered(lambda r: r.state in ("draft", "pending"))
            run.target_host = HOST
            if run.state == "draft":
                run.with_user(self.manager).action_submit()
            run.with_user(self.approver).action_approve()
            runs |= run
        claims = {c["id"]: c["claim_token"] for c in api.watchdog_claim(HOST)}
        self.assertEqual(set(claims), set(runs.ids))
        for name, incident in incidents.items():
            run = incident.fix_run_ids & runs
            text = FORMS[name].record()
            not_yet = FixAttempt(run_id=uuid.uuid4().hex[:12], action=run.action,
                                target=text, actor="watchdog", state="refused",
                                error=text).to_dict()
            api.watchdog_report(run.id, not_yet, claim_token=claims[run.id], host=HOST)
            self.assertEqual(run.state, "approved")  # waits for the growing delay
        claims = {c["id"]: c["claim_token"] for c in api.watchdog_claim(HOST)}
        for name, incident in incidents.items():
            run = incident.fix_run_ids & runs
            text = FORMS[name].record()
            failed = FixAttempt(run_id=uuid.uuid4().hex[:12], action=run.action, target=text,
                               actor="watchdog", state="failed", escalate=True, error=text,
                               output=text).to_dict()
            api.watchdog_report(run.id, failed, claim_token=claims[run.id], host=HOST)
            self.assertEqual((run.state, run.escalated), ("failed", True))
        return runs

    def test_chatter_and_audit_lines(self):
        incidents = self.scan()
        runs = self.report_host_runs(incidents)
        for incident in incidents.values():
            incident.with_user(self.manager).message_post(
                body=FORMS[json.loads(incident.captures)["form"]].record())
        bodies = [str(body) for body in (runs.message_ids | self.env["mail.message"].search([
            ("model", "=", "auto_heal.incident"), ("res_id", "in",
                                                   [i.id for i in incidents.values()])
        ])).mapped("body")]
        self.assert_masked("chatter", bodies)
        self.assert_masked("fix run fields", runs.mapped("error") + runs.mapped("output")
                           + runs.mapped("target"))
        self.assert_masked("audit lines", runs.mapped("audit"))

    def test_hand_over_payload(self):
        entries = [{"id": uuid.uuid4().hex, "kind": "alert", "host": HOST,
                    "message": form.record(), "detail": {"text": form.record()}}
                   for form in FORMS.values()]
        answer = self.env["auto_heal.handover"].with_user(self.manager).watchdog_handover(
            entries)
        self.assertEqual(len(answer["stored"]), len(entries))
        rows = self.env["auto_heal.handover"].search([("entry_id", "in", answer["stored"])])
        self.assert_masked("hand-over payload", rows.mapped("payload"))

    def test_notifications_over_http_and_email(self):
        server = RecordingServer().start()
        self.addCleanup(server.stop)
        Channel = self.env["auto_heal.notification.channel"]
        for kind in ("mattermost", "webhook"):
            Channel.create({"name": f"sinks {kind}", "kind": kind, "url": server.url,
                            "min_severity": "low", "timeout": 5.0})
        Channel.create({"name": "sinks mail", "kind": "email", "min_severity": "low"})
        self.env["ir.config_parameter"].set_param("auto_heal.notify_cap_per_hour", "100")
        mails_before = self.env["mail.mail"].search([])
        self.scan()
        self.env["auto_heal.notification.outbox"]._send_notifications()
        bodies = [json.dumps(request["body"]) for request in server.requests]
        self.assertTrue(bodies)
        self.assert_masked("mattermost and webhook", bodies)
        self.assert_masked("webhook (decoded)", [
            json.dumps(request["body"], ensure_ascii=False) for request in server.requests])
        mails = self.env["mail.mail"].search([]) - mails_before
        self.assertTrue(mails)
        self.assert_masked("e-mail", mails.mapped("body_html") + mails.mapped("subject"))
