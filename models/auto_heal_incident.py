"""Incidents: findings grouped by fingerprint.

The engine aggregates findings into :class:`engine.incidents.Incident`
objects; :meth:`AutoHealIncident._record_engine_incidents` persists a batch of
them with one search, one create and one write per incident that changed,
never one query per log record.

States::

    new --> acknowledged --> resolved --(new findings)--> regressed
      \\          \\                                         |
       `----------`--> ignored (keeps counting)            `--> acknowledged / resolved

Why one module of ~630 lines: one model; its naming, grouping and masking belong
to the record they build.
"""

import json
import logging
import re
import socket
from datetime import timedelta

from markupsafe import Markup
from odoo import api, fields, models
from odoo.exceptions import UserError

from ..engine.fingerprint import innermost_exception
from ..engine.patterns import SEVERITY_RANK, UNKNOWN
from ..engine.records import parse_record
from ..engine.secrets import mask_secrets
from .auto_heal_pattern import SEVERITY_SELECTION

_logger = logging.getLogger(__name__)

#: Integer columns are 32-bit in PostgreSQL.
_MAX_INT = 2**31 - 1
#: Fields holding log text: masked again whenever they are written.
_MASKED_FIELDS = ("sample", "message", "signature", "exception", "captures")
#: Where an incident's findings come from.
SOURCE_SELECTION = [
    ("log", "Log File"),
    ("database", "Database Check"),
    ("watchdog", "Host Watchdog"),
    ("other", "Other"),
]


#: Loggers of auto_heal itself: what it logs (audit lines, its own warnings) is no incident.
OWN_LOGGER_PREFIX = "odoo.addons.auto_heal"
#: Odoo logs a UserError or an AccessError of a request on this logger, at WARNING:
#: when the message quotes an incident, it is auto_heal's own answer echoed back.
ECHO_LOGGERS = ("odoo.http",)
#: The length a name must have to count as quoted (short ones match by chance).
_ECHO_MIN_NAME = 12
#: Record messages that say nothing of the cause (the wrapper of a traceback).
_WRAPPER_MESSAGES = re.compile(
    r"^(?:Exception during request handling|Failed to initialize database|Failed to load "
    r"registry|Exception in cron|Call from cron .* failed|bad query)\b", re.I)
_SQL_START = re.compile(r"^(?:b['\"])?\s*(?:SELECT|INSERT|UPDATE|DELETE|WITH|ALTER|CREATE)\b",
                        re.I)
#: PostgreSQL's own error line in the sample of a "bad query" record.
_PG_ERROR_LINE = re.compile(r"^(?:ERROR|FATAL):\s+(.+)$", re.M)
_NAME_KEY_CHARS = 120
#: Labels of the values patterns and checks capture (the rest: the key in words).
CAPTURE_LABELS = {
    "xml_file": "XML file", "xml_line": "Line in the XML file", "cron": "Scheduled action",
    "cron_id": "Scheduled action id", "cron_name": "Scheduled action",
    "action_id": "Server action id", "module": "Module", "modules": "Modules",
    "dependency": "Missing dependency", "model": "Model", "field": "Field",
    "element": "XML element", "view": "View", "xpath": "XPath", "attribute": "Attribute",
    "database": "Database", "package": "Python package", "package_nl": "Python package",
    "uid": "User id", "operation": "Operation", "relation": "Table", "column": "Column",
    "path": "Path", "login": "Login", "ip": "IP address", "db_user": "Database user",
    "server": "Server", "host": "Host", "port": "Port", "pid": "Process id",
    "reason": "Reason", "count": "Count", "seconds": "Seconds", "memory": "Memory",
    "mail_id": "Mail id", "bundle": "Asset bundle", "asset": "Asset file",
    "command": "Command", "version": "Version", "unmet": "Unmet requirement",
    "check": "Check", "subject": "Subject", "status": "Status", "value": "Measured value",
    "threshold": "Threshold", "failure_count": "Failures in a row",
    "lastcall": "Last run", "nextcall": "Next run", "write_date": "Last written",
    "off_seconds": "Switched off for (s)", "state": "State",
}


def _first_sentence(text):
    """The first line of *text*, cut after its first sentence when it goes on."""
    line = (text or "").strip().split("\n", 1)[0].strip()
    cut = re.search(r"[.!?](\s|$)", line)
    if cut and cut.end() < len(line):
        line = line[:cut.start()]
    return line.rstrip(" .")


def _shorten(text, limit=_NAME_KEY_CHARS):
    """*text* cut at a word boundary within *limit* characters, with an ellipsis."""
    text = " ".join((text or "").split())
    if len(text) <= limit:
        return text
    cut = text.rfind(" ", 0, limit)
    return text[:cut if cut > limit // 2 else limit].rstrip(" ,;:") + "\u2026"


def incident_key(source, message, sample, exception, exception_message, captures,
                 key_fields=()):
    """What tells this incident apart, for people: the part of the name after the pattern's.

    Checks speak for themselves (their message); then the innermost exception,
    PostgreSQL's error line of a "bad query", the record's first sentence when
    it is neither a wrapper nor SQL, the key captures, the message.

    >>> incident_key("log", "bad query: b'SELECT 1'", "x\\nERROR: column res_partner.x does not "
    ...              "exist\\nLINE 1", "", "", {})
    'column res_partner.x does not exist'
    >>> incident_key("log", "Exception during request handling.", "", "KeyError", "", {})
    'KeyError'
    >>> incident_key("log", "Cron job 'Sync' (4) has been deactivated after failing 5 times. "
    ...              "More information...", "", "", "", {"cron_id": "4"})
    "Cron job 'Sync' (4) has been deactivated after failing 5 times"
    >>> incident_key("log", "bad query: UPDATE x", "", "", "", {"relation": "res_partner"},
    ...              ("relation",))
    'Table res_partner'
    """
    if source == "database" and message:
        return _shorten(_first_sentence(message) or message)
    if exception_message:
        return _shorten(exception_message)
    first = (message or "").strip().split("\n", 1)[0]
    if first.lower().startswith("bad query"):
        found = _PG_ERROR_LINE.search(sample or "")
        if found:
            return _shorten(found.group(1))
    if first and not _WRAPPER_MESSAGES.match(first) and not _SQL_START.match(first):
        return _shorten(_first_sentence(first) or first)
    if exception:
        return exception
    shown = [name for name in key_fields if captures.get(name)] or \
        [name for name in captures if captures.get(name)][:2]
    if shown:
        return _shorten(", ".join(
            f"{CAPTURE_LABELS.get(name, name.replace('_', ' ').capitalize())} "
            f"{captures[name]}" for name in shown))
    return _shorten(first)


def _seconds(moment):
    """A log timestamp as Odoo stores datetimes: naive UTC, whole seconds."""
    return moment.replace(microsecond=0) if moment else moment



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
    _inherit = ["mail.thread", "auto_heal.masked.mixin"]
    _masked_fields = _MASKED_FIELDS
    _order = "severity_rank desc, last_seen desc, id desc"

    OPEN_STATES = ("new", "acknowledged", "regressed")

    name = fields.Char(compute="_compute_name", store=True)
    severity_rank = fields.Integer(
        compute="_compute_severity_rank", store=True, index=True,
        help="4 critical, 3 high, 2 medium, 1 low: incidents sort by it, then by last seen.")
    exception_message = fields.Char(
        readonly=True,
        help="Message of the innermost exception of the first occurrence's traceback.")
    fingerprint = fields.Char(required=True, readonly=True, index=True, copy=False)
    pattern_id = fields.Many2one(
        "auto_heal.pattern", ondelete="set null", index=True,
        help="Empty for errors that matched no pattern (type 'unknown').")
    pattern_type = fields.Char(
        required=True, index=True, default=UNKNOWN,
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
        "auto_heal.log.source", ondelete="set null", readonly=True)
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
    covering_run_ids = fields.Many2many(
        "auto_heal.fix.run", "auto_heal_fix_run_covered_incident_rel", "incident_id", "run_id",
        string="Covered by Fix Runs", readonly=True,
        help="Fix runs of another incident that change the same target: one run per action "
             "and target, and its outcome counts for this incident too.")
    fix_run_count = fields.Integer(compute="_compute_fix_run_count")
    fix_script = fields.Char(related="pattern_id.fix_script", string="Fix Action Code")
    fix_label = fields.Char(string="Fix Action", compute="_compute_fix_label",
                            help="The fix action of the pattern, in words.")
    fix_waiting = fields.Boolean(
        string="Fix Waits", compute="_compute_fix_waiting", store=True, index=True,
        help="A fix run for this incident waits: for a plan, an approval, or to run.")
    waiting_run_id = fields.Many2one(
        "auto_heal.fix.run", string="Planned Fix", compute="_compute_waiting_run",
        help="The open fix run of this incident (or the one that also covers it).")
    what_to_do_html = fields.Html(
        string="What to Do", compute="_compute_what_to_do", sanitize=False,
        help="The pattern's description and runbook: symptoms, cause, the steps by hand.")
    captures_html = fields.Html(string="Captured Values", compute="_compute_captures_html",
                                sanitize=False)

    _sql_constraints = [
        ("fingerprint_uniq", "unique(fingerprint)",
         "An incident with this fingerprint already exists."),
    ]

    @api.depends("pattern_id.name", "pattern_id.fingerprint_fields", "pattern_type", "message",
                 "exception", "exception_message", "captures", "source")
    def _compute_name(self):
        for incident in self:
            pattern = incident.pattern_id
            kind = incident.pattern_type or UNKNOWN
            title = pattern.name or (self.env._("Unknown error") if kind == UNKNOWN else
                                     self.env["auto_heal.pattern"]._runbook_title(kind) or kind)
            key = incident_key(
                incident.source, mask_secrets(incident.message or ""),
                incident.sample or "", incident.exception or "",
                mask_secrets(incident.exception_message or ""), incident._captures_dict(),
                [name.strip() for name in (pattern.fingerprint_fields or "").split(",")
                 if name.strip()])
            name = f"{title} \u2014 {key}" if key and key != title else title
            incident.name = name if len(name) <= 200 else name[:199] + "\u2026"

    @api.depends("pattern_id.fix_script")
    def _compute_fix_label(self):
        from ..engine.actions import ActionError, get_action

        for incident in self:
            code = incident.pattern_id.fix_script
            try:
                incident.fix_label = get_action(code).label if code else False
            except ActionError:
                incident.fix_label = code

    @api.depends("severity")
    def _compute_severity_rank(self):
        for incident in self:
            incident.severity_rank = SEVERITY_RANK.get(incident.severity, 0)

    def _captures_dict(self):
        self.ensure_one()
        try:
            value = json.loads(self.captures or "{}")
        except ValueError:
            return {}
        return {str(k): str(v) for k, v in value.items()} if isinstance(value, dict) else {}

    @api.model
    def _recompute_names(self):
        """On install and upgrade: names and sort ranks of the incidents kept from before."""
        # every incident, once per install or upgrade: that is the point of it
        incidents = self.with_context(active_test=False).search([])  # pylint: disable=no-search-all
        self.env.add_to_compute(self._fields["name"], incidents)
        self.env.add_to_compute(self._fields["severity_rank"], incidents)
        self.env.add_to_compute(self._fields["fix_waiting"], incidents)
        incidents.flush_recordset()
        return True

    @api.depends("fix_run_ids")
    def _compute_fix_run_count(self):
        for incident in self:
            incident.fix_run_count = len(incident.fix_run_ids)

    def _open_fix_runs(self):
        from .auto_heal_fix_run import OPEN_STATES as RUN_OPEN_STATES

        self.ensure_one()
        return (self.fix_run_ids | self.covering_run_ids).filtered(
            lambda run: run.state in RUN_OPEN_STATES).sorted("id", reverse=True)

    @api.depends("fix_run_ids.state", "covering_run_ids.state")
    def _compute_fix_waiting(self):
        for incident in self:
            incident.fix_waiting = bool(incident._open_fix_runs())

    @api.depends("fix_run_ids.state", "covering_run_ids.state")
    def _compute_waiting_run(self):
        for incident in self:
            incident.waiting_run_id = incident._open_fix_runs()[:1]

    @api.depends("pattern_id.description", "pattern_id.runbook_symptoms",
                 "pattern_id.runbook_cause", "pattern_id.runbook_steps", "pattern_type")
    def _compute_what_to_do(self):
        Pattern = self.env["auto_heal.pattern"]
        for incident in self:
            pattern = incident.pattern_id
            if pattern:
                book = {"description": pattern.description or "",
                        "symptoms": pattern.runbook_symptoms or "",
                        "cause": pattern.runbook_cause or "",
                        "steps": pattern.runbook_steps or ""}
            else:  # unknown errors and the watchdog's own incidents: from the file
                book = Pattern._runbook_for_type(incident.pattern_type or UNKNOWN)
                if not any(book.values()):
                    book = dict(Pattern._runbook_for_type(UNKNOWN), description=self.env._(
                        "An error no pattern knows: read the sample and the traceback."))
            incident.what_to_do_html = Pattern._runbook_html(book)

    @api.depends("captures")
    def _compute_captures_html(self):
        for incident in self:
            captures = incident._captures_dict()
            if not captures:
                incident.captures_html = False
                continue
            rows = Markup("").join(
                Markup("<tr><th class='text-nowrap pe-3 fw-normal text-muted'>%s</th>"
                       "<td class='text-break font-monospace'>%s</td></tr>") % (
                    CAPTURE_LABELS.get(key, key.replace("_", " ").capitalize()),
                    mask_secrets(value))
                for key, value in captures.items())
            incident.captures_html = Markup(
                "<table class='table table-sm o_auto_heal_captures mb-0'><tbody>%s"
                "</tbody></table>") % rows

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
        from .auto_heal_fix_run import OPEN_STATES

        self.ensure_one()
        Run = self.env["auto_heal.fix.run"]
        Run._check_manager()
        action = self.pattern_id.fix_script
        if not action:
            raise UserError(self.env._("The pattern of %(incident)s has no fix action.",
                                       incident=self.display_name))
        refused = Run._incident_may_plan(self, action)
        if refused:
            raise UserError(self.env._("No fix is planned for %(incident)s: %(why)s.",
                                       incident=self.display_name, why=refused))
        run = Run.search([("incident_id", "=", self.id), ("action", "=", action),
                          ("state", "in", OPEN_STATES)],
                         limit=1) or Run._open_covering_run(self, action)
        if not run:
            # planning context: a plan that is not queued leaves no note behind
            run = Run.with_context(auto_heal_planning=True).create({
                "incident_id": self.id, "action": action,
                "params": json.dumps(Run._params_from_incident(self, action), sort_keys=True),
            })
            run._submit()
            run = run.with_env(self.env)
            if run.state == "cancelled":
                twin = run._open_twin() if run.target else Run.browse()
                if not twin:  # nothing to change: say so, keep nothing in the queue
                    reason = run.cancel_reason
                    run.unlink()
                    return {"type": "ir.actions.client", "tag": "display_notification",
                            "params": {"title": self.env._("No fix needed"),
                                       "message": reason, "type": "info"}}
                run.unlink()
                run = twin
            elif run.state == "approved" and run.runs_on == "odoo":
                Run._trigger_run_cron()
        return run.action_review()

    def action_review_fix(self):
        """Open the fix run waiting for this incident, its plan checked again first."""
        self.ensure_one()
        run = self.waiting_run_id
        if not run:
            raise UserError(self.env._("No fix waits for incident %(name)s.",
                                       name=self.display_name))
        return run.action_review()

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
        innermost = innermost_exception(incident.sample or "") if incident.exception else None
        return {
            "exception_message": mask_secrets(innermost[1])[:1000] if innermost and innermost[1]
            else False,
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
        engine_incidents = self._drop_own_echoes(engine_incidents)
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
    def _drop_own_echoes(self, engine_incidents):
        """*engine_incidents* without auto_heal's own records and their echoes.

        What auto_heal logs itself (its audit lines, its warnings) and a request
        error that quotes one of its incidents (a UserError of a button, which
        Odoo logs on ``odoo.http``) must never become incidents, nor plan fixes:
        each would breed the next. Known by the logger of the first occurrence.
        """
        kept = []
        for incident in engine_incidents:
            head = (incident.sample or "").split("\n", 1)[0]
            record = parse_record(head.encode("utf-8", "replace")) if head else None
            logger = (record.logger or "") if record else ""
            if logger.startswith(OWN_LOGGER_PREFIX):
                _logger.debug("auto_heal: own record not made an incident: %s", head[:200])
                continue
            if logger in ECHO_LOGGERS and record.level in ("WARNING", "INFO"):
                if self._quotes_an_incident(incident.message or head):
                    _logger.info("auto_heal: a request error quoting an incident is not made "
                                 "an incident: %s", head[:200])
                    continue
            kept.append(incident)
        return kept

    @api.model
    def _quotes_an_incident(self, text):
        """Whether *text* holds the name (or fingerprint) of a known incident."""
        text = mask_secrets(text or "")
        if len(text) < _ECHO_MIN_NAME:
            return False
        self.env["auto_heal.incident"].flush_model(["name", "fingerprint"])
        self.env.cr.execute(
            "SELECT 1 FROM auto_heal_incident WHERE (length(name) >= %s AND "
            "strpos(%s, name) > 0) OR (length(fingerprint) >= %s AND strpos(%s, fingerprint) > 0)"
            " LIMIT 1", (_ECHO_MIN_NAME, text, _ECHO_MIN_NAME, text))
        return bool(self.env.cr.fetchone())

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
