"""Notifications: channels, the events waiting to be told, and the outbox.

:mod:`engine.notify` decides and formats; these models keep what it needs
between runs and deliver after commit::

    incident / fix run create or write (any transaction)
       |  auto_heal.notification.event rows: event + ids, in the same transaction
       |  + one ir.cron trigger of "Auto-Heal: send notifications"
       v  (rolled back with the transaction: nothing is told about what did not happen)
    COMMIT
       v
    cron "send notifications" (its own transaction, one at a time)
       |  1. plan: per channel, engine.notify.plan(notes, [channel], throttle state)
       |     -> Mattermost / webhook payloads into the outbox (engine.outbox.queue),
       |        e-mails to the Auto-Heal managers through mail.mail
       |     -> events deleted, throttle state saved on the channel; COMMIT
       |  2. deliver: engine.outbox.flush(outbox) over HTTP with timeouts;
       |     a delivered item is removed (COMMIT), a failed one kept with a later try
       v  3. trigger itself at the next try of what is left

Delivery is at least once: a worker killed between a POST and the COMMIT of
its removal sends that item again, with the same ``X-Auto-Heal-Delivery`` id.

Why one module of ~700 lines: the channel, the event queue and the outbox are the
three models of one delivery path, and their transactions (the commit after
each delivery) are easiest to check side by side.
"""

import json
import logging
import threading
import time
from datetime import datetime, timezone

import psycopg2
from odoo import api, fields, models
from odoo.exceptions import UserError, ValidationError
from odoo.tools import SQL

from ..engine.notify import (
    EVENT_TITLES,
    EVENTS,
    Channel,
    Notification,
    ThrottlePolicy,
    deliver,
    digest_payload,
    email_message,
    payload_for,
    plan,
)
from ..engine.notify import _where as url_where
from ..engine.outbox import OutboxItem, RetryPolicy, flush, new_item, queue
from ..engine.secrets import mask_secrets
from .auto_heal_pattern import SEVERITY_SELECTION

_logger = logging.getLogger(__name__)

EVENT_SELECTION = [(event, EVENT_TITLES[event]) for event in EVENTS]
#: channel field -> engine event
EVENT_FIELDS = {f"on_{event}": event for event in EVENTS}
CRON_XMLID = "auto_heal.ir_cron_send_notifications"
#: pg_try_advisory_lock key of the sender: one sender at a time (cron, button, tests).
_LOCK_KEY = 0x4155544F4E4F54  # "AUTONOT"
_PRECOMMIT_FLAG = "auto_heal.notification.triggered"
NOTIFY_DEFAULTS = {"window_minutes": 60, "reminder_hours": 6, "cap_per_hour": 20}
#: Events planned per run of the sender; more are planned by the next run, at once.
EVENT_BATCH = 500


def _auto_commit():
    return not getattr(threading.current_thread(), "testing", False)


def _iso(moment):
    return fields.Datetime.to_string(moment) if moment else None


class AutoHealNotificationChannel(models.Model):
    _name = "auto_heal.notification.channel"
    _description = "Auto-Heal Notification Channel"
    _order = "sequence, id"

    name = fields.Char(required=True)
    sequence = fields.Integer(default=10)
    active = fields.Boolean(default=True)
    kind = fields.Selection(
        [("mattermost", "Mattermost (incoming webhook)"),
         ("webhook", "Webhook (N8N or generic JSON)"),
         ("email", "E-mail to the Auto-Heal managers")],
        required=True, default="mattermost")
    url = fields.Char(
        string="Webhook URL", groups="auto_heal.group_auto_heal_manager", copy=False,
        help="A secret: whoever knows it can post. Shown masked; never written to logs.")
    url_display = fields.Char(string="Destination", compute="_compute_url_display")
    auth_header_name = fields.Char(
        string="Header Name", groups="auto_heal.group_auto_heal_manager",
        help="An optional header sent with each request, such as an N8N header auth "
             "(Authorization).")
    auth_header_value = fields.Char(
        string="Header Value", groups="auto_heal.group_auto_heal_manager", copy=False)
    timeout = fields.Float(
        string="Timeout (s)", default=10.0,
        help="A delivery that gets no answer within this time is tried again later.")
    min_severity = fields.Selection(
        SEVERITY_SELECTION, string="Minimum Severity", required=True, default="medium",
        help="Incidents below this severity are not sent to this channel.")
    on_new_incident = fields.Boolean(string="New Incident", default=True)
    on_regression = fields.Boolean(string="Regression", default=True)
    on_escalation = fields.Boolean(string="Escalation", default=True)
    on_approval_needed = fields.Boolean(string="Fix Waiting for Approval", default=True)
    on_approval_expired = fields.Boolean(
        string="Fix Approval Expired", default=True,
        help="A fix run waited for approval past its deadline and expired.")
    on_fix_failed = fields.Boolean(string="Failed Fix", default=True)
    on_watchdog_restart = fields.Boolean(string="Watchdog Restart", default=True)
    throttle_state = fields.Text(
        readonly=True, copy=False,
        help="What the throttle remembers: the last message per incident, the messages "
             "of the last hour (JSON).")
    last_delivery_date = fields.Datetime(readonly=True, copy=False)
    last_error = fields.Char(readonly=True, copy=False)
    outbox_count = fields.Integer(string="Waiting", compute="_compute_outbox_count")

    @api.depends("kind")
    def _compute_url_display(self):
        # sudo: the masked form (scheme and host only) is shown to every reader; the
        # URL itself is readable by Auto-Heal managers only.
        for channel in self:
            if channel.kind == "email":
                channel.url_display = self.env._("Auto-Heal managers")
            else:
                url = channel.sudo().url
                channel.url_display = (url_where(url) + "/***") if url else False

    def _compute_outbox_count(self):
        counts = dict.fromkeys(self.ids, 0)
        if self.ids:
            for channel, count in self.env["auto_heal.notification.outbox"]._read_group(
                    [("channel_id", "in", self.ids)], ["channel_id"], ["__count"]):
                counts[channel.id] = count
        for channel in self:
            channel.outbox_count = counts.get(channel.id, 0)

    @api.constrains("kind", "url")
    def _check_url(self):
        for channel in self.sudo():
            if channel.kind == "email":
                continue
            url = (channel.url or "").strip()
            if not url.lower().startswith(("http://", "https://")):
                raise ValidationError(self.env._(
                    "Channel %(name)s needs an http:// or https:// webhook URL.",
                    name=channel.name))

    @api.constrains("timeout")
    def _check_timeout(self):
        for channel in self:
            if not 0 < channel.timeout <= 120:
                raise ValidationError(self.env._(
                    "The timeout of channel %(name)s must be between 0 and 120 seconds.",
                    name=channel.name))

    # -- the engine's view ---------------------------------------------------------------

    def _engine_channel(self):
        """The :class:`engine.notify.Channel` of this record; its name is the record id."""
        self.ensure_one()
        # sudo: the cron and the sender need the URL and header of every channel; they
        # are only handed to engine.notify.deliver, never shown.
        channel = self.sudo()
        headers = ()
        if channel.auth_header_name and channel.auth_header_value:
            headers = ((channel.auth_header_name.strip(), channel.auth_header_value),)
        return Channel(
            name=str(channel.id), kind=channel.kind, url=(channel.url or "").strip(),
            events=frozenset(event for name, event in EVENT_FIELDS.items() if channel[name]),
            min_severity=channel.min_severity, headers=headers,
            timeout=channel.timeout or 10.0)

    def _throttle_state_dict(self):
        self.ensure_one()
        try:
            state = json.loads(self.throttle_state or "{}")
        except ValueError:
            state = {}
        return state if isinstance(state, dict) else {}

    # -- buttons -------------------------------------------------------------------------

    def action_send_test(self):
        """Deliver a test message now (not through the outbox) and say how it went."""
        self.ensure_one()
        note = Notification("new_incident", {
            "pattern": "auto_heal_test", "severity": "critical",
            "message": self.env._("Test message from Auto-Heal: this channel works."),
        }, database=self.env.cr.dbname, url=self.get_base_url())
        if self.kind == "email":
            mails = self.env["auto_heal.notification.outbox"]._send_email(
                email_message(note))
            if not mails:
                raise UserError(self.env._("No Auto-Heal manager has an e-mail address."))
            message = self.env._("Test e-mail queued for %(count)s manager(s).",
                                 count=len(mails.recipient_ids))
        else:
            channel = self._engine_channel()
            result = deliver(channel, payload_for(channel, note))
            if not result.ok:
                raise UserError(self.env._("The test message failed: %(reason)s",
                                           reason=result.reason))
            message = self.env._("Test message delivered (%(status)s).", status=result.reason)
        return {
            "type": "ir.actions.client",
            "tag": "display_notification",
            "params": {"type": "success", "message": message, "sticky": False},
        }

    def action_view_outbox(self):
        self.ensure_one()
        action = self.env["ir.actions.act_window"]._for_xml_id(
            "auto_heal.action_auto_heal_notification_outbox")
        action["domain"] = [("channel_id", "=", self.id)]
        return action

    def action_send_now(self):
        self.env["auto_heal.notification.outbox"]._send_notifications()
        return True


class AutoHealNotificationEvent(models.Model):
    """An event waiting for the sender: written in the transaction that caused it."""

    _name = "auto_heal.notification.event"
    _description = "Auto-Heal Notification Event"
    _order = "id"

    event = fields.Selection(EVENT_SELECTION, required=True, readonly=True)
    incident_id = fields.Many2one("auto_heal.incident", ondelete="cascade", readonly=True,
                                  index=True)
    fix_run_id = fields.Many2one("auto_heal.fix.run", ondelete="cascade", readonly=True,
                                 index=True)
    host = fields.Char(readonly=True)
    data = fields.Text(readonly=True, help="Extra values of the event (JSON).")

    @api.model
    def _channels_active(self):
        # sudo: any user whose action causes an event (approving, a watchdog report)
        # queues it; channel rows are readable by managers only.
        return bool(self.env["auto_heal.notification.channel"].sudo().search_count(
            [("active", "=", True)], limit=1))

    @api.model
    def _queue(self, event, incidents=None, fix_runs=None, host=None, data=None):
        """Queue *event* for each of *incidents* / *fix_runs*; nothing when no channel.

        Public hook for other code (the watchdog hand-over, for instance)::

            env["auto_heal.notification.event"]._queue("watchdog_restart",
                                                       fix_runs=run, host="erp1")
        """
        if event not in EVENTS:
            raise ValueError(f"unknown notification event {event!r}")
        if not self._channels_active():
            return self.browse()
        vals = []
        for incident in incidents or ():
            vals.append({"event": event, "incident_id": incident.id,
                         "host": host or incident.host or False,
                         "data": json.dumps(data) if data else False})
        for run in fix_runs or ():
            vals.append({"event": event, "incident_id": run.incident_id.id,
                         "fix_run_id": run.id,
                         "host": host or run.claimed_by or run.incident_id.host or False,
                         "data": json.dumps(data) if data else False})
        if not vals and data is not None:
            vals.append({"event": event, "host": host or False, "data": json.dumps(data)})
        if not vals:
            return self.browse()
        # sudo: see _channels_active; the rows hold ids and the event name only.
        events = self.sudo().create(vals)
        self._trigger_sender()
        return events

    @api.model
    def _trigger_sender(self):
        """Ask the sender cron to run once this transaction commits (once per transaction).

        The trigger row is written in this transaction: when it rolls back, the
        cron is not woken up and the events are gone with it.
        """
        data = self.env.cr.precommit.data
        if data.get(_PRECOMMIT_FLAG):
            return
        data[_PRECOMMIT_FLAG] = True
        cron = self.env.ref(CRON_XMLID, raise_if_not_found=False)
        if cron:
            # sudo: ir.cron is readable by Settings admins only; this only asks the
            # sender to run soon.
            cron.sudo()._trigger()

    def _still_true(self):
        """Whether the event still holds now that its transaction committed.

        A run created failed and then given its real final state (the watchdog
        hand-over does so), a run approved before the sender ran, an
        escalation already cleared: told as they are now, or not at all.
        """
        self.ensure_one()
        run = self.fix_run_id
        if self.event == "fix_failed":
            return run.state in ("failed", "rolled_back")
        if self.event == "approval_needed":
            return run.state in ("pending", "stale")
        if self.event == "approval_expired":
            return run.state == "expired"
        if self.event == "escalation":
            return bool(run.escalated)
        return True

    def _to_note(self, base_url):
        """The engine :class:`Notification` of this event, with the records' data now."""
        self.ensure_one()
        incident = self.incident_id
        run = self.fix_run_id
        try:
            extra = json.loads(self.data or "{}")
        except ValueError:
            extra = {}
        extra = extra if isinstance(extra, dict) else {}
        incident_data = {}
        if incident:
            incident_data = {
                "id": incident.id,
                "fingerprint": incident.fingerprint,
                "pattern": incident.pattern_type,
                "severity": incident.severity,
                "message": incident.message or incident.name or "",
                "count": incident.count,
                "first_seen": _iso(incident.first_seen),
                "last_seen": _iso(incident.last_seen),
                "state": incident.state,
                "source": incident.source,
                "sample": incident.sample or "",
                "url": f"{base_url}/odoo/action-auto_heal.action_auto_heal_incident/"
                       f"{incident.id}",
            }
        elif extra:
            incident_data = {key: extra[key] for key in ("service", "severity", "message")
                             if key in extra}
        fix_run = None
        if run:
            fix_run = {"id": run.id, "action": run.action, "state": run.state,
                       "error": (run.error or "").split("\n")[0][:300],
                       "escalated": run.escalated,
                       "url": f"{base_url}/odoo/action-auto_heal.action_auto_heal_fix_run/"
                              f"{run.id}"}
            if self.event == "watchdog_restart":
                params = run._params_dict()
                incident_data.setdefault("service", params.get("service") or run.target)
        return Notification(self.event, incident_data, fix_run=fix_run,
                            database=self.env.cr.dbname, host=self.host or "",
                            url=(fix_run or {}).get("url") or incident_data.get("url") or "")


class ModelOutbox:
    """:class:`engine.outbox.Outbox` on the ``auto_heal.notification.outbox`` model.

    With *auto_commit*, each change is committed at once (the sender cron): a
    delivered item is forgotten for good before the next POST.
    """

    def __init__(self, model, auto_commit=False):
        self.model = model
        self.auto_commit = auto_commit

    def _commit(self):
        if self.auto_commit:
            self.model.env.cr.commit()

    def _record(self, item):
        return self.model.search([("uid", "=", item.id)], limit=1)

    def add(self, channel, payload, now, key=""):
        if key:
            known = self.model.search([("key", "=", key)], limit=1)
            if known:
                return known._to_item()
        last = self.model.search([], order="seq desc", limit=1)
        item = new_item(channel, payload, now, key, (last.seq or 0) + 1)
        record = self.model.create(self.model._vals_from_item(item))
        return record._to_item()

    def due(self, now, limit=None):
        records = self.model.search([("next_try", "<=", now)], order="created, seq, id",
                                    limit=limit)
        return [record._to_item() for record in records]

    def update(self, item):
        record = self._record(item)
        if record:
            record.write(self.model._vals_from_item(item))
            self._commit()

    def remove(self, item):
        record = self._record(item)
        if record:
            channel = record.channel_id
            record.unlink()
            if channel:
                channel.write({"last_delivery_date": fields.Datetime.now(),
                               "last_error": False})
            self._commit()

    def items(self):
        return [record._to_item() for record in self.model.search(
            [], order="created, seq, id")]


class AutoHealNotificationOutbox(models.Model):
    """A message waiting for its channel; kept until delivered, never dropped."""

    _name = "auto_heal.notification.outbox"
    _description = "Auto-Heal Notification Outbox"
    _order = "created, seq, id"
    _rec_name = "summary"

    uid = fields.Char(string="Delivery ID", required=True, readonly=True, index=True,
                      copy=False)
    channel = fields.Char(string="Channel Key", required=True, readonly=True,
                          help="The engine's name of the channel: its record id.")
    channel_id = fields.Many2one("auto_heal.notification.channel", ondelete="set null",
                                 readonly=True, index=True)
    payload = fields.Text(readonly=True, help="The body sent, secrets masked (JSON).")
    summary = fields.Char(compute="_compute_summary")
    created = fields.Float(string="Queued (epoch)", readonly=True, digits=(16, 3),
                           help="Epoch seconds.")
    next_try = fields.Float(string="Next Try (epoch)", readonly=True, digits=(16, 3),
                            index=True, help="Epoch seconds.")
    created_date = fields.Datetime(string="Queued On", compute="_compute_dates")
    next_try_date = fields.Datetime(string="Next Try", compute="_compute_dates")
    attempts = fields.Integer(readonly=True)
    last_error = fields.Char(readonly=True)
    state = fields.Selection([("pending", "Pending"), ("failing", "Failing")],
                             required=True, default="pending", readonly=True)
    key = fields.Char(readonly=True, index=True)
    seq = fields.Integer(readonly=True)

    _sql_constraints = [
        ("uid_uniq", "unique(uid)", "An outbox item with this delivery id already exists."),
    ]

    @api.depends("payload")
    def _compute_summary(self):
        for item in self:
            try:
                payload = json.loads(item.payload or "{}")
            except ValueError:
                payload = {}
            text = payload.get("summary") or payload.get("text") or payload.get("event") or ""
            item.summary = str(text).split("\n")[0][:200] or item.uid

    @api.depends("created", "next_try")
    def _compute_dates(self):
        def moment(epoch):
            if not epoch:
                return False
            return datetime.fromtimestamp(epoch, timezone.utc).replace(tzinfo=None,
                                                                       microsecond=0)
        for item in self:
            item.created_date = moment(item.created)
            item.next_try_date = moment(item.next_try)

    @api.model
    def _vals_from_item(self, item):
        channel_id = int(item.channel) if str(item.channel).isdigit() else False
        if channel_id and not self.env["auto_heal.notification.channel"].with_context(
                active_test=False).browse(channel_id).exists():
            channel_id = False
        return {
            "uid": item.id, "channel": item.channel, "channel_id": channel_id,
            "payload": json.dumps(item.payload, sort_keys=True, default=str),
            "created": item.created, "next_try": item.next_try, "attempts": item.attempts,
            "last_error": mask_secrets(item.last_error or "")[:500] or False,
            "state": item.state, "key": item.key or False, "seq": item.seq,
        }

    def _to_item(self):
        self.ensure_one()
        try:
            payload = json.loads(self.payload or "{}")
        except ValueError:
            payload = {}
        return OutboxItem(id=self.uid, channel=self.channel, payload=payload,
                          created=self.created, next_try=self.next_try,
                          attempts=self.attempts, last_error=self.last_error or "",
                          state=self.state, key=self.key or "", seq=self.seq)

    def action_retry_now(self):
        """Try these items at the next run of the sender (now)."""
        self.write({"next_try": time.time()})
        self.env["auto_heal.notification.event"].sudo()._trigger_sender()
        return True

    # -- the sender ----------------------------------------------------------------------

    @api.model
    def _throttle_policy(self):
        # sudo: ir.config_parameter is readable by Settings admins only; these tuning
        # values are no secret and the sender runs for anyone pressing "Send now".
        params = self.env["ir.config_parameter"].sudo()

        def number(key):
            raw = params.get_param(f"auto_heal.notify_{key}", NOTIFY_DEFAULTS[key])
            try:
                value = int(float(raw))
            except (TypeError, ValueError):
                _logger.warning("auto_heal.notify_%s is not a number (%r); using %s", key,
                                raw, NOTIFY_DEFAULTS[key])
                return NOTIFY_DEFAULTS[key]
            return value if value >= 1 else NOTIFY_DEFAULTS[key]

        return ThrottlePolicy(window=number("window_minutes") * 60.0,
                              reminder=number("reminder_hours") * 3600.0,
                              cap_per_hour=number("cap_per_hour"))

    @api.model
    def _cron_send_notifications(self):
        """The "send notifications" cron: plan, then deliver. Never raises."""
        try:
            return self._send_notifications()
        except Exception:  # noqa: BLE001 - a cron that raises is switched off by Odoo
            _logger.exception("auto_heal: sending notifications failed")
            self.env.cr.rollback()
            return False

    @api.model
    def _send_notifications(self, now=None):
        """Plan the waiting events and flush the outbox; returns the flush report.

        One sender at a time (a session advisory lock: it survives the commits
        made between steps); a second one returns None at once.
        """
        now = time.time() if now is None else now
        # sudo: the sender works for the cron (root) and for a manager's "Send now"
        # alike; it reads channels, events and the outbox, all technical rows.
        sender = self.sudo()
        cr = self.env.cr
        cr.execute(SQL("SELECT pg_try_advisory_lock(%s)", _LOCK_KEY))
        if not cr.fetchone()[0]:
            _logger.info("auto_heal: another worker is sending notifications; skipped")
            return None
        try:
            sender._plan_events(now)
            # The plan is committed before any HTTP delivery (a crash mid-send must not
            # plan the events again), and each delivery outcome after it: a message
            # sent is never forgotten by a rollback. Never in tests (_auto_commit).
            if _auto_commit():
                cr.commit()  # pylint: disable=invalid-commit
            report = sender._deliver_outbox(now)
            sender._schedule_next()
            if _auto_commit():
                cr.commit()  # pylint: disable=invalid-commit
            return report
        finally:
            # A session lock outlives a rollback: release it even from a failed
            # transaction, or this pooled connection would keep it.
            try:
                with cr.savepoint(flush=False):
                    cr.execute(SQL("SELECT pg_advisory_unlock(%s)", _LOCK_KEY))
            except psycopg2.Error:
                cr.rollback()
                cr.execute(SQL("SELECT pg_advisory_unlock(%s)", _LOCK_KEY))

    @api.model
    def _plan_events(self, now):
        """Events -> per channel throttle -> outbox items and e-mails; events deleted."""
        Channel = self.env["auto_heal.notification.channel"]
        channels = Channel.search([])  # pylint: disable=no-search-all
        # a bounded batch per run: the rest waits for the next one (triggered below)
        events = self.env["auto_heal.notification.event"].search([], order="id",
                                                                  limit=EVENT_BATCH)
        if not channels:
            events.unlink()  # no channel: nobody to tell (they were queued before removal)
            return
        base_url = self.get_base_url()
        notes = [event._to_note(base_url) for event in events if event._still_true()]
        policy = self._throttle_policy()
        outbox = ModelOutbox(self)
        for channel in channels:
            engine_channel = channel._engine_channel()
            state = channel._throttle_state_dict()
            result = plan(notes, [engine_channel], state, now, policy=policy,
                          open_incidents=self._open_incidents(state, base_url))
            queue(outbox, result, now, [engine_channel])
            if channel.kind == "email":
                for _channel, note in result.messages:
                    self._send_email(email_message(note))
                for notes_over in result.digests.values():
                    self._send_email(digest_payload(engine_channel, notes_over))
            new_state = json.dumps(result.state, sort_keys=True)
            if new_state != (channel.throttle_state or ""):
                channel.write({"throttle_state": new_state})
            if result.messages or result.digests or result.held:
                _logger.info("auto_heal: channel %s: %d message(s), %d digest(s), %d held "
                             "by the throttle", channel.name, len(result.messages),
                             len(result.digests), result.held)
        events.unlink()

    @api.model
    def _open_incidents(self, state, base_url):
        """{key: incident dict} of the open incidents the throttle state knows (reminders)."""
        ids = set()
        for full_key in (state.get("keys") or {}):
            key = full_key.rsplit("|", 1)[0]
            if key.startswith("incident:") and key[9:].isdigit():
                ids.add(int(key[9:]))
        if not ids:
            return {}
        Incident = self.env["auto_heal.incident"]
        incidents = Incident.browse(sorted(ids)).exists().filtered(
            lambda i: i.state in Incident.OPEN_STATES)
        result = {}
        for incident in incidents:
            result[f"incident:{incident.id}"] = {
                "id": incident.id, "fingerprint": incident.fingerprint,
                "pattern": incident.pattern_type, "severity": incident.severity,
                "message": incident.message or "", "count": incident.count,
                "first_seen": _iso(incident.first_seen), "last_seen": _iso(incident.last_seen),
                "state": incident.state,
                "url": f"{base_url}/odoo/action-auto_heal.action_auto_heal_incident/"
                       f"{incident.id}",
            }
        return result

    @api.model
    def _manager_partners(self):
        group = self.env.ref("auto_heal.group_auto_heal_manager", raise_if_not_found=False)
        if not group:
            return self.env["res.partner"]
        users = group.users.filtered(lambda u: u.active and not u.share)
        return users.partner_id.filtered("email")

    @api.model
    def _send_email(self, mail):
        """Queue *mail* (``engine.notify.email_message``) to the Auto-Heal managers."""
        partners = self._manager_partners()
        if not partners:
            _logger.warning("auto_heal: an e-mail notification has no recipient: no "
                            "Auto-Heal manager has an e-mail address")
            return self.env["mail.mail"]
        email_from = (self.env.company.email_formatted
                      or self.env["ir.mail_server"]._get_default_from_address())
        # mail.mail has its own queue and retries; Odoo's mail cron sends it.
        return self.env["mail.mail"].create({
            "subject": mail["subject"],
            "body_html": mail["body_html"],
            "email_from": email_from,
            "recipient_ids": [(6, 0, partners.ids)],
            "auto_delete": True,
        })

    @api.model
    def _deliver_outbox(self, now):
        channels = self.env["auto_heal.notification.channel"].search(
            [("kind", "!=", "email")])
        engine_channels = [channel._engine_channel() for channel in channels]
        report = flush(ModelOutbox(self, auto_commit=_auto_commit()), engine_channels, now,
                       policy=RetryPolicy())
        if report.failed:
            by_name = {str(channel.id): channel for channel in channels}
            for item_id, reason in report.failed:
                record = self.search([("uid", "=", item_id)], limit=1)
                channel = by_name.get(record.channel)
                if channel:
                    channel.write({"last_error": mask_secrets(reason)[:250]})
                _logger.warning("auto_heal: notification %s not delivered (attempt %s): %s",
                                item_id, record.attempts, reason)
        if report.delivered:
            _logger.info("auto_heal: %d notification(s) delivered", len(report.delivered))
        return report

    @api.model
    def _schedule_next(self):
        """Trigger the sender at the next try of what is left (once: no trigger piles up).

        The cron's own ``nextcall`` is no guide here: while it runs because it
        was due, it is still in the past.
        """
        cron = self.env.ref(CRON_XMLID, raise_if_not_found=False)
        if cron and self.env["auto_heal.notification.event"].search_count([], limit=1):
            cron._trigger()  # events past this run's batch: plan them now
            return
        first = self.search([], order="next_try", limit=1)
        if not first or not cron:
            return
        at = max(datetime.fromtimestamp(first.next_try, timezone.utc).replace(tzinfo=None),
                 fields.Datetime.now())
        pending = self.env["ir.cron.trigger"].search_count([
            ("cron_id", "=", cron.id), ("call_at", "<=", at),
            ("call_at", ">", fields.Datetime.now())], limit=1)
        if not pending:
            cron._trigger(at=at)

