"""Notifications against a real local HTTP server the tests start.

The server (``http.server`` in a thread) records every request: path,
headers and JSON body. Events are queued by the incident and fix run models
in the test transaction; the sender (the "send notifications" cron's code)
plans them with the throttle and delivers them over HTTP.
"""

import json
import socket
import threading
import time
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from odoo import fields
from odoo.exceptions import ValidationError
from odoo.tests import Form, TransactionCase, new_test_user, tagged

from ..engine.incidents import Incident as EngineIncident


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class RecordingServer:
    """A webhook receiver: answers 200 and keeps what it was sent."""

    def __init__(self, port=None):
        self.port = port or free_port()
        self.requests = []
        self._server = None
        self._thread = None

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}/hooks/s3cretpath"

    def start(self):
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                recorder.requests.append({
                    "path": self.path,
                    "headers": dict(self.headers.items()),
                    "body": json.loads(body.decode("utf-8")),
                })
                self.send_response(200)
                self.send_header("Content-Type", "text/plain")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args):
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self):
        if self._server:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


def engine_incident(fingerprint, count=1, severity="high", pattern="db_deadlock",
                    message="deadlock detected"):
    now = datetime.utcnow().replace(microsecond=0)
    return EngineIncident(fingerprint=fingerprint, pattern=pattern, severity=severity,
                          signature=f"{pattern} | test", message=message, count=count,
                          first_seen=now, last_seen=now, sample=message,
                          database="probe18")


@tagged("post_install", "-at_install")
class TestNotifications(TransactionCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.Incident = cls.env["auto_heal.incident"]
        cls.Channel = cls.env["auto_heal.notification.channel"]
        cls.Event = cls.env["auto_heal.notification.event"]
        cls.Outbox = cls.env["auto_heal.notification.outbox"]

    def server(self, port=None, start=True):
        server = RecordingServer(port)
        if start:
            server.start()
        self.addCleanup(server.stop)
        return server

    def channel(self, url, kind="mattermost", **vals):
        return self.Channel.create(dict({
            "name": f"test {kind}", "kind": kind, "url": url, "min_severity": "medium",
            "timeout": 3.0}, **vals))

    def record(self, fingerprint, count=1, **kwargs):
        created, updated = self.Incident._record_engine_incidents(
            [engine_incident(fingerprint, count, **kwargs)], host="erp-test")
        return (created | updated).filtered(lambda i: i.fingerprint == fingerprint)

    def send(self, now=None):
        return self.Outbox._send_notifications(now=now)

    # -- tests ----------------------------------------------------------------------------

    def test_new_incident_posts_once_to_mattermost(self):
        server = self.server()
        channel = self.channel(server.url)
        incident = self.record("ah-notify-new", count=3)

        # queued in this transaction; nothing sent before the sender runs
        event = self.Event.search([("incident_id", "=", incident.id)])
        self.assertEqual(event.event, "new_incident")
        self.assertEqual(server.requests, [])
        cron = self.env.ref("auto_heal.ir_cron_send_notifications")
        self.assertTrue(self.env["ir.cron.trigger"].search([("cron_id", "=", cron.id)]),
                        "the sender is triggered by the transaction")

        report = self.send()
        self.assertEqual(len(report.delivered), 1)
        [request] = server.requests
        self.assertEqual(request["path"], "/hooks/s3cretpath")
        self.assertEqual(request["headers"]["Content-Type"], "application/json")
        self.assertTrue(request["headers"]["X-Auto-Heal-Delivery"])
        body = request["body"]
        self.assertEqual(body["username"], "auto_heal")
        first = body["text"].split("\n")[0]
        self.assertIn("**New incident**", first)
        self.assertIn("db\\_deadlock", first)
        self.assertIn("(high)", first)
        self.assertIn("deadlock detected", body["text"])
        self.assertIn(f"/odoo/action-auto_heal.action_auto_heal_incident/{incident.id}",
                      body["text"])
        self.assertFalse(self.Event.search([]), "events are consumed")
        self.assertFalse(self.Outbox.search([]), "delivered items are removed")
        self.assertTrue(channel.last_delivery_date)

        self.send()
        self.assertEqual(len(server.requests), 1, "nothing is sent twice")

    def test_storm_of_findings_is_one_message(self):
        server = self.server()
        self.channel(server.url)
        now = time.time()
        incident = self.record("ah-notify-storm", count=50)
        for _round in range(5):  # resolved, and back again: a regression each time
            incident.action_resolve()
            self.record("ah-notify-storm", count=10)
        self.assertEqual(incident.state, "regressed")
        self.assertEqual(incident.count, 100)
        self.assertEqual(self.Event.search_count([("incident_id", "=", incident.id)]), 6)

        self.send(now)
        [request] = server.requests
        text = request["body"]["text"]
        self.assertIn("**Incident came back**", text.split("\n")[0])
        self.assertIn("6 notifications folded into this one (new\\_incident 1, regression 5)",
                      text)

        # more of the same within the window: held, not sent
        incident.action_resolve()
        self.record("ah-notify-storm")
        self.send(now + 600)
        self.assertEqual(len(server.requests), 1)

        # after the window the next one says what was held back
        incident.action_resolve()
        self.record("ah-notify-storm")
        self.send(now + 3700)
        self.assertEqual(len(server.requests), 2)
        self.assertIn("1 more held back since the last message",
                      server.requests[1]["body"]["text"])

    def test_outbox_retries_until_the_server_comes_back(self):
        server = self.server(start=False)  # its port is known, nothing listens yet
        channel = self.channel(server.url, kind="webhook")
        incident = self.record("ah-notify-down")
        now = time.time()

        report = self.send(now)
        self.assertEqual(report.delivered, [])
        [item] = self.Outbox.search([])
        self.assertEqual((item.attempts, item.state, item.channel_id), (1, "pending", channel))
        self.assertIn("connection failed", item.last_error)
        self.assertNotIn("s3cretpath", item.last_error, "a webhook's path is its secret")
        self.assertNotIn("s3cretpath", channel.last_error)
        self.assertAlmostEqual(item.next_try, now + 30, delta=1)
        uid = item.uid
        cron = self.env.ref("auto_heal.ir_cron_send_notifications")
        retry = self.env["ir.cron.trigger"].search([
            ("cron_id", "=", cron.id),
            ("call_at", ">", fields.Datetime.now() + timedelta(seconds=20))])
        self.assertEqual(len(retry), 1, "the sender is woken up for the next try")
        self.send(now)  # a second failing round does not pile up triggers
        self.assertEqual(len(self.env["ir.cron.trigger"].search([
            ("cron_id", "=", cron.id),
            ("call_at", ">", fields.Datetime.now() + timedelta(seconds=20))])), 1)

        self.send(now + 10)  # not due yet: not tried
        self.assertEqual(item.attempts, 1)

        server.start()
        report = self.send(now + 31)
        self.assertEqual(report.delivered, [uid])
        [request] = server.requests
        self.assertEqual(request["headers"]["X-Auto-Heal-Delivery"], uid)
        body = request["body"]
        self.assertEqual(body["event"], "new_incident")
        self.assertEqual(body["incident"]["id"], incident.id)
        self.assertEqual(body["incident"]["pattern"], "db_deadlock")
        self.assertFalse(self.Outbox.search([]))

        self.send(now + 100)
        self.assertEqual(len(server.requests), 1, "nothing is sent twice")

    def test_events_of_a_rolled_back_transaction_are_never_sent(self):
        server = self.server()
        self.channel(server.url)
        try:
            with self.env.cr.savepoint():
                self.record("ah-notify-rolled-back")
                raise RuntimeError("the scan failed after the incident was made")
        except RuntimeError:
            pass
        self.env.invalidate_all()
        self.send()
        self.assertEqual(server.requests, [])

    def test_no_channel_no_event(self):
        self.record("ah-notify-nobody")
        self.assertFalse(self.Event.search([]))

    def test_channel_filters_events_and_severity(self):
        server = self.server()
        self.channel(server.url, min_severity="high", on_new_incident=False)
        low = self.record("ah-notify-low", severity="medium")
        high = self.record("ah-notify-high", severity="critical")
        self.send()
        self.assertEqual(server.requests, [], "new incidents are not sent to this channel")
        high.action_resolve()
        low.action_resolve()
        self.record("ah-notify-high", severity="critical")
        self.record("ah-notify-low", severity="medium")
        self.send()
        [request] = server.requests
        self.assertIn("**Incident came back**", request["body"]["text"])
        self.assertIn("(critical)", request["body"]["text"].split("\n")[0])

    def test_fix_run_events(self):
        server = self.server()
        self.channel(server.url, kind="webhook")
        self.env["ir.module.module"].search([("name", "=", "mail")]).state = "to upgrade"
        pattern = self.env["auto_heal.pattern"].search([("type", "=", "module_state_stuck")])
        incident = self.Incident.create({
            "fingerprint": "ah-notify-run", "pattern_id": pattern.id,
            "pattern_type": pattern.type, "severity": "high",
            "message": "module mail stuck in to upgrade",
            "captures": json.dumps({"module": "mail"}),
        })
        run = self.env["auto_heal.fix.run"]._plan_for_incidents(incident)
        self.assertEqual(run.state, "pending")
        events = self.Event.search([]).mapped("event")
        self.assertEqual(sorted(events), ["approval_needed", "new_incident"])
        self.send()
        [request] = server.requests  # one message per incident: folded
        body = request["body"]
        self.assertEqual(body["event"], "approval_needed")
        self.assertEqual(body["fix_run"]["id"], run.id)
        self.assertEqual(body["events"], {"approval_needed": 1, "new_incident": 1})

        # a failed, escalated run is a new decision for a person: sent within the window
        run.write({"state": "failed", "escalated": True, "error": "over budget"})
        self.assertEqual(sorted(self.Event.search([]).mapped("event")),
                         ["escalation", "fix_failed"])
        self.send()
        self.assertEqual(len(server.requests), 2)
        self.assertEqual(server.requests[1]["body"]["event"], "escalation")
        self.assertEqual(server.requests[1]["body"]["fix_run"]["error"], "over budget")

    def test_watchdog_restart_is_told(self):
        server = self.server()
        self.channel(server.url, kind="webhook", min_severity="low")
        pattern = self.env["auto_heal.pattern"].search([("type", "=", "db_connection_failed")])
        incident = self.Incident.create({
            "fingerprint": "ah-notify-restart", "pattern_id": pattern.id,
            "pattern_type": pattern.type, "severity": "critical", "source": "watchdog",
            "message": "connection to server failed", "host": "erp1",
        })
        run = self.env["auto_heal.fix.run"].create({
            "incident_id": incident.id, "action": "restart_service", "state": "done",
            "claimed_by": "erp1", "params": json.dumps({"service": "postgresql"}),
        })
        self.assertIn("watchdog_restart", self.Event.search([]).mapped("event"))
        self.send()
        [request] = server.requests
        body = request["body"]
        self.assertEqual(body["event"], "watchdog_restart")
        self.assertEqual(body["fix_run"]["id"], run.id)
        self.assertEqual(body["host"], "erp1")

    def test_email_goes_to_the_managers(self):
        manager = new_test_user(self.env, "ah_notify_manager", email="ops@example.com",
                                groups="base.group_user,auto_heal.group_auto_heal_manager")
        self.channel(False, kind="email")
        incident = self.record("ah-notify-mail", severity="critical")
        self.send()
        mail = self.env["mail.mail"].search([("subject", "like", "[auto_heal]")])
        self.assertEqual(len(mail), 1)
        self.assertIn("[auto_heal] New incident: db_deadlock", mail.subject)
        self.assertIn(manager.partner_id, mail.recipient_ids)
        self.assertIn("deadlock detected", mail.body_html)
        self.assertIn(f"/{incident.id}", mail.body_html)

    def test_channel_form_masks_the_url(self):
        with Form(self.Channel) as form:
            form.name = "ops"
            form.kind = "mattermost"
            form.url = "https://chat.example.com/hooks/abc123secret"
        channel = form.record
        self.assertEqual(channel.url_display, "https://chat.example.com/***")
        self.assertEqual(channel._engine_channel().events, frozenset(
            ["new_incident", "regression", "escalation", "approval_needed", "fix_failed",
             "watchdog_restart", "approval_expired"]))
        with self.assertRaises(ValidationError):
            self.channel("ftp://chat.example.com/hooks/x")
        self.assertEqual(self.channel(False, kind="email").url_display, "Auto-Heal managers")

    def test_watchdog_run_handed_over_as_done_is_no_failed_fix(self):
        """The hand-over creates a run failed, then stores its final state: told as it is."""
        server = self.server()
        self.channel(server.url, kind="webhook", min_severity="low")
        incident = self.record("ah-notify-handover", severity="high")
        run = self.env["auto_heal.fix.run"].create({
            "incident_id": incident.id, "action": "restart_service", "state": "failed",
            "claimed_by": "erp2", "params": json.dumps({"service": "odoo"})})
        run.write({"state": "done"})
        self.assertEqual(sorted(self.Event.search([]).mapped("event")),
                         ["fix_failed", "new_incident", "watchdog_restart"])
        self.send()
        [request] = server.requests
        body = request["body"]
        self.assertEqual(body["event"], "watchdog_restart")
        self.assertEqual(body["events"], {"new_incident": 1, "watchdog_restart": 1})
        self.assertEqual(body["fix_run"]["state"], "done")
        self.assertEqual(body["incident"]["service"], "odoo")
