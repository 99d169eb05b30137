"""Incidents: findings grouped by fingerprint.

The engine aggregates findings into :class:`engine.incidents.Incident`
objects; :meth:`AutoHealIncident._record_engine_incidents` persists a batch of
them with one search, one create and one write per incident that changed,
never one query per log record.

States::

    new --> acknowledged --> resolved --(new findings)--> regressed
      \\          \\                                         |
       `----------`--> ignored (keeps counting)            `--> acknowledged / resolved
"""

import json
import logging
import socket
from datetime import timedelta

from markupsafe import Markup
from odoo import api, fields, models
from odoo.exceptions import UserError

from ..engine.patterns import SEVERITY_RANK, UNKNOWN
from ..engine.secrets import mask_secrets
from .auto_heal_pattern import SEVERITY_SELECTION

_logger = logging.getLogger(__name__)

#: Integer columns are 32-bit in PostgreSQL.
_MAX_INT = 2**31 - 1
#: Fields holding log text: masked again whenever they are written.
_TEXT_FIELDS = ("sample", "message", "signature", "exception", "captures")
#: Where an incident's findings come from.
SOURCE_SELECTION = [
    ("log", "Log File"),
    ("database", "Database Check"),
    ("watchdog", "Host Watchdog"),
    ("other", "Other"),
]


def _seconds(moment):
    """A log timestamp as Odoo stores datetimes: naive UTC, whole seconds."""
    return moment.replace(microsecond=0) if moment else moment


def _clean_text(value):
    """Mask secrets and drop NUL characters, which PostgreSQL text refuses."""
    if not value or not isinstance(value, str):
        return value
    return mask_secrets(value).replace("\x00", "")


def masked_body(body):
    """A chatter body with its secrets masked (an error, a reason, a host's answer)."""
    if not body or not isinstance(body, str):
        return body
    if isinstance(body, Markup):
        return Markup(mask_secrets(str(body)))  # noqa: S704 - our own markup, only masked
    return mask_secrets(body)


class AutoHealIncident(models.Model):
    _name = "auto_heal.incident"
    _description = "Auto-Heal Incident"
    _inherit = ["mail.thread"]
    _order = "last_seen desc, id desc"

    OPEN_STATES = ("new", "acknowledged", "regressed")

    name = fields.Char(compute="_compute_name", store=True)
    fingerprint = fields.Char(required=True, readonly=True, index=True, copy=False)
    pattern_id = fields.Many2one(
        "auto_heal.pattern", string="Pattern", ondelete="set null", index=True,
        help="Empty for errors that matched no pattern (type 'unknown').")
    pattern_type = fields.Char(
        string="Pattern Type", required=True, index=True, default=UNKNOWN,
        help="Type code of the pattern, or 'unknown' for errors that matched none.")
    severity = fields.Selection(SEVERITY_SELECTION, required=True, default="medium",
                                tracking=True)
    state = fields.Selection(
        [("new", "New"),
         ("acknowledged", "Acknowledged"),
         ("resolved", "Resolved"),
         ("ignored", "Ignored"),
         ("regressed", "Regressed")],
        required=True, default="new", tracking=True, index=True)
    count = fields.Integer(default=1, readonly=True, help="Occurrences found so far.")
    first_seen = fields.Datetime(readonly=True)
    last_seen = fields.Datetime(readonly=True, index=True)
    database = fields.Char(readonly=True, help="Database named by the log records.")
    host = fields.Char(readonly=True, help="Host whose scanner found the incident.")
    message = fields.Text(readonly=True)
    sample = fields.Text(
        readonly=True, help="Excerpt of the first occurrence, secrets masked.")
    source_path = fields.Char(string="Source File", readonly=True)
    source_line = fields.Integer(readonly=True)
    exception = fields.Char(readonly=True, help="Innermost exception class of the traceback.")
    captures = fields.Text(readonly=True, help="Values captured by the pattern (JSON).")
    signature = fields.Text(readonly=True, help="What the fingerprint was computed from.")
    log_source_id = fields.Many2one(
        "auto_heal.log.source", string="Log Source", ondelete="set null", readonly=True)
    source = fields.Selection(
        SOURCE_SELECTION, default="other", required=True, readonly=True, index=True,
        help="What found the incident: a log scan, a database check (the \"scan database\" "
             "cron), the host watchdog, or something else.")
    regression_count = fields.Integer(
        readonly=True, help="How many times the incident came back after being resolved.")
    reopen_count = fields.Integer(
        readonly=True, copy=False,
        help="Regressions and manual reopenings: a new round of fixing starts at each.")
    opened_date = fields.Datetime(
        string="Opened On", readonly=True, copy=False,
        help="When the incident was opened, or last reopened or regressed: the start of "
             "the time to recovery.")
    fix_run_ids = fields.One2many("auto_heal.fix.run", "incident_id", string="Fix Runs")
    fix_run_count = fields.Integer(compute="_compute_fix_run_count")
    fix_script = fields.Char(related="pattern_id.fix_script", string="Fix Action")

    _sql_constraints = [
        ("fingerprint_uniq", "unique(fingerprint)",
         "An incident with this fingerprint already exists."),
    ]

    @api.depends("pattern_type", "message")
    def _compute_name(self):
        for incident in self:
            first_line = mask_secrets(incident.message or "").strip().split("\n", 1)[0]
            name = f"{incident.pattern_type or UNKNOWN}: {first_line}".strip()
            incident.name = name if len(name) <= 200 else name[:199] + "\u2026"

    @api.depends("fix_run_ids")
    def _compute_fix_run_count(self):
        for incident in self:
            incident.fix_run_count = len(incident.fix_run_ids)

    @api.model_create_multi
    def create(self, vals_list):
        incidents = super().create([self._clean_vals(vals) for vals in vals_list])
        self.env["auto_heal.notification.event"]._queue("new_incident", incidents=incidents)
        return incidents

    def write(self, vals):
        regressed = self.browse()
        if vals.get("state") == "regressed":
            regressed = self.filtered(lambda incident: incident.state != "regressed")
        result = super().write(self._clean_vals(vals))
        if regressed:
            self.env["auto_heal.notification.event"]._queue("regression", incidents=regressed)
        return result

    # -- chatter: masked like every other sink ---------------------------------------------

    def _message_log_batch(self, bodies, *args, **kwargs):
        return super()._message_log_batch(
            {key: masked_body(body) for key, body in bodies.items()}, *args, **kwargs)

    def message_post(self, *, body="", subject=None, **kwargs):
        return super().message_post(body=masked_body(body), subject=masked_body(subject),
                                    **kwargs)

    @staticmethod
    def _clean_vals(vals):
        if any(vals.get(name) for name in _TEXT_FIELDS):
            vals = dict(vals)
            for name in _TEXT_FIELDS:
                if vals.get(name):
                    vals[name] = _clean_text(vals[name])
        return vals

    # -- buttons -------------------------------------------------------------------------

    def _set_state(self, new_state, allowed):
        wrong = self.filtered(lambda incident: incident.state not in allowed)
        if wrong:
            states = dict(self._fields["state"]._description_selection(self.env))
            raise UserError(self.env._(
                "Incident %(name)s is %(state)s; this action does not apply to it.",
                name=wrong[0].display_name, state=states[wrong[0].state]))
        self.write({"state": new_state})
        return True

    def action_acknowledge(self):
        return self._set_state("acknowledged", ("new", "regressed"))

    def action_resolve(self):
        return self._set_state("resolved", ("new", "acknowledged", "regressed"))

    def action_ignore(self):
        return self._set_state("ignored", ("new", "acknowledged", "regressed"))

    def action_reopen(self):
        result = self._set_state("new", ("resolved", "ignored"))
        now = fields.Datetime.now()
        for incident in self:
            incident.write({"opened_date": now, "reopen_count": incident.reopen_count + 1})
        return result

    def action_plan_fix(self):
        """Plan a fix run with the pattern's fix action (managers), and open it."""
        self.ensure_one()
        Run = self.env["auto_heal.fix.run"]
        Run._check_manager()
        action = self.pattern_id.fix_script
        if not action:
            raise UserError(self.env._("The pattern of %(incident)s has no fix action.",
                                       incident=self.display_name))
        run = Run.search([("incident_id", "=", self.id), ("action", "=", action),
                          ("state", "in", ("draft", "pending", "approved", "running"))],
                         limit=1)
        if not run:
            run = Run.create({
                "incident_id": self.id, "action": action,
                "params": json.dumps(Run._params_from_incident(self, action), sort_keys=True),
            })
            run._submit()
            if run.state == "approved" and run.runs_on == "odoo":
                Run._trigger_run_cron()
        return {
            "type": "ir.actions.act_window",
            "res_model": "auto_heal.fix.run",
            "res_id": run.id,
            "view_mode": "form",
            "target": "current",
        }

    def action_view_fix_runs(self):
        self.ensure_one()
        action = self.env["ir.actions.act_window"]._for_xml_id(
            "auto_heal.action_auto_heal_fix_run")
        action["domain"] = [("incident_id", "=", self.id)]
        action["context"] = {"default_incident_id": self.id}
        return action

    # -- from the engine -----------------------------------------------------------------

    @api.model
    def _values_from_engine(self, incident, patterns, log_source, host, source=None):
        pattern = patterns.get(incident.pattern)
        captures = {key: mask_secrets(str(value)) for key, value in incident.captures.items()}
        return {
            "fingerprint": incident.fingerprint,
            "pattern_id": pattern.id if pattern else False,
            "pattern_type": incident.pattern or UNKNOWN,
            "severity": incident.severity,
            "count": min(incident.count, _MAX_INT),
            "first_seen": _seconds(incident.first_seen) or fields.Datetime.now(),
            "last_seen": _seconds(incident.last_seen) or fields.Datetime.now(),
            "database": incident.database or False,
            "host": host,
            "message": incident.message,
            "sample": incident.sample,
            "source_path": incident.source_path or False,
            "source_line": min(incident.source_line or 0, _MAX_INT),
            "exception": incident.exception or False,
            "captures": json.dumps(captures, sort_keys=True, ensure_ascii=False)
            if captures else False,
            "signature": incident.signature,
            "log_source_id": log_source.id if log_source else False,
            "source": source or ("log" if log_source else "other"),
            "opened_date": fields.Datetime.now(),
        }

    @api.model
    def _record_engine_incidents(self, engine_incidents, log_source=None, host=None,
                                 source=None):
        """Create or update incidents from a batch of engine incidents.

        One search finds the known fingerprints, one ``create`` adds the new
        incidents, and each known incident gets one ``write`` (count, first
        and last seen, state). A resolved incident that gets new findings
        becomes ``regressed``; an ignored one stays ignored but counts.
        *source* says what found them (``log`` when a *log_source* is given,
        ``database`` for the checks of the "scan database" cron); the
        incident of a database check takes the higher severity when its
        check turns critical. Returns the created and the updated incidents.
        """
        source = source or ("log" if log_source else "other")
        by_fingerprint = {}
        for incident in engine_incidents:
            known = by_fingerprint.get(incident.fingerprint)
            if known is None:
                by_fingerprint[incident.fingerprint] = incident
            else:  # Not expected from engine.incidents.aggregate(); fold anyway.
                known.count += incident.count
                known.first_seen = min(filter(None, (known.first_seen, incident.first_seen)),
                                       default=None)
                known.last_seen = max(filter(None, (known.last_seen, incident.last_seen)),
                                      default=None)
        if not by_fingerprint:
            return self.browse(), self.browse()
        host = host or socket.gethostname()
        existing = {
            record.fingerprint: record
            for record in self.search([("fingerprint", "in", list(by_fingerprint))])
        }
        types = {incident.pattern for incident in by_fingerprint.values()} - {UNKNOWN}
        patterns = {
            pattern.type: pattern
            for pattern in self.env["auto_heal.pattern"].with_context(active_test=False).search(
                [("type", "in", list(types))])
        } if types else {}

        to_create, updated, regressed = [], self.browse(), []
        for fingerprint, incident in by_fingerprint.items():
            record = existing.get(fingerprint)
            if record is None:
                to_create.append(self._values_from_engine(incident, patterns, log_source, host,
                                                          source))
                continue
            vals = {"count": min(record.count + incident.count, _MAX_INT)}
            first_seen, last_seen = _seconds(incident.first_seen), _seconds(incident.last_seen)
            if last_seen and (not record.last_seen or last_seen > record.last_seen):
                vals["last_seen"] = last_seen
            if first_seen and record.first_seen and first_seen < record.first_seen:
                # An older occurrence (a rotated file read late): it is the first one now.
                vals.update(first_seen=first_seen, sample=incident.sample,
                            source_path=incident.source_path or False,
                            source_line=min(incident.source_line or 0, _MAX_INT))
            if (source == "database" and incident.severity in SEVERITY_RANK
                    and SEVERITY_RANK[incident.severity] > SEVERITY_RANK.get(record.severity, 0)):
                vals["severity"] = incident.severity
            if record.state == "resolved":
                vals.update(state="regressed", regression_count=record.regression_count + 1,
                            reopen_count=record.reopen_count + 1,
                            opened_date=fields.Datetime.now())
                regressed.append((record, incident.count))
                self._mark_fix_regression(record)
            # The cron posts its own message for a regression; the tracking of the
            # other writes would only add noise to the chatter.
            record.with_context(mail_notrack=True).write(vals)
            updated |= record
        created = self.with_context(
            mail_create_nolog=True, mail_create_nosubscribe=True).create(to_create)
        for record, count in regressed:
            record._message_log(
                body=self.env._(
                    "Regressed: %(count)s new occurrence(s) since the incident was resolved "
                    "(last seen %(last_seen)s UTC, host %(host)s).",
                    count=count, last_seen=record.last_seen, host=host))
        # A scan that creates or updates an incident whose pattern has a fix action
        # plans a fix run (never a second open one).
        self.env["auto_heal.fix.run"]._plan_for_incidents(created | updated)
        return created, updated

    @api.model
    def _mark_fix_regression(self, incident):
        """The fix that resolved *incident* did not hold if it comes back this soon."""
        hours = self.env["res.config.settings"]._auto_heal_settings()["regression_window_hours"]
        run = self.env["auto_heal.fix.run"].search(
            [("incident_id", "=", incident.id), ("resolved_incident", "=", True),
             ("state", "=", "done")], order="ended_date desc, id desc", limit=1)
        if run and run.ended_date and \
                fields.Datetime.now() - run.ended_date <= timedelta(hours=hours):
            run.write({"regressed": True})
            return run
        return run.browse()
