"""Fix runs: one execution of a fix action for an incident, and its approval workflow.

The engine decides and acts (:mod:`engine.policy`, :mod:`engine.actions.runner`);
this model keeps what a person needs to trust it: the plan read before
approving, who approved or rejected it, the output, the backup, the audit lines
of every step, the timings. Its states and the verbs that move it are the
engine's state machine (:mod:`engine.fixrun`, whose docstring is the diagram):
every state written here comes from :meth:`AutoHealFixRun._next_state`.

The model is split by what a run goes through: this file (fields, the single
open run, notifications, buttons), ``_plan`` (planning and the policy),
``_approval`` (expiry, four eyes, plan hashes), ``_execute`` (running in Odoo,
budgets, rollback), ``_watchdog`` (the host's claim and report), ``_params``
and ``_review``.

  Approvals (models/auto_heal_fix_run_approval.py, engine/approval.py): a run
  waiting for approval (pending, or stale: its plan changed since it was
  approved) expires past its deadline; four eyes and distinct approvers; the
  hash of the approved plan is compared when it runs (engine/planhash.py).

* Odoo actions run here through :func:`engine.actions.runner.execute` on ``env.cr``,
  in a savepoint. Host actions wait for ``bin/auto-heal run-approved``, which
  calls :meth:`AutoHealFixRun.watchdog_claim` and :meth:`AutoHealFixRun.watchdog_report`
  over JSON-RPC as an Auto-Heal Manager. Odoo never restarts a service and never
  touches files outside its data_dir and writable addons paths (readme/DEVELOP.md, safety rule 7).
* There is never a second open run (draft, pending, approved, running) for one
  incident and action: checked in code and by a partial unique index.
* Budget: runs of one action on one target that applied something within the
  window (Settings, default 3 within 30 minutes, with growing delays); over it a
  run fails, escalated, with a note on its incident.
* A done run resolves its incident; a pattern whose automatic runs fail N times
  in a row is demoted to "approval required" (see auto_heal.pattern).
"""

import contextvars
import functools
import hashlib
import json
import logging
import os
from datetime import datetime, timedelta, timezone

from odoo import api, fields, models
from odoo.exceptions import AccessError, UserError, ValidationError
from odoo.tools import SQL

from ..engine import fixrun
from ..engine.actions import ActionError, get_action
from ..engine.actions.params import host_params_text, validate
from ..engine.audit import MemoryAudit
from ..engine.budget import BudgetPolicy
from ..engine.fixrun import BUDGET_STATES, OPEN_STATES, TransitionError, next_state
from .auto_heal_incident import masked_body

_logger = logging.getLogger(__name__)

MANAGER_GROUP = "auto_heal.group_auto_heal_manager"
STATES = list(fixrun.STATES)
#: Host actions Odoo may run itself when their file lies in a writable addons path.
ODOO_CAPABLE_HOST_ACTIONS = ("remove_deprecated_cron_fields",)
#: Text fields masked whenever they are written (readme/SECURITY.md).
_MASKED_FIELDS = ("name", "target", "params", "plan", "diff", "preconditions", "backup_location",
                "backup_manifest", "output", "error", "audit", "reject_reason", "notes")


#: True while the model's own transitions run: only they may change a run's state,
#: plan or approvals (a Manager's raw write or create over RPC may not; see
#: AutoHealFixRunApproval.write). A context variable, not an Odoo context key: a
#: caller over RPC sets the context, never this.
_IN_TRANSITION = contextvars.ContextVar("auto_heal_fix_run_transition", default=False)
#: True while a scan plans runs on its own: nobody is their requester.
_AUTOMATIC = contextvars.ContextVar("auto_heal_fix_run_automatic", default=False)


def transition(method):
    """Mark *method* as one of the fix run's transitions (see _IN_TRANSITION)."""
    @functools.wraps(method)
    def wrapper(*args, **kwargs):
        token = _IN_TRANSITION.set(True)
        try:
            return method(*args, **kwargs)
        finally:
            _IN_TRANSITION.reset(token)
    return wrapper


def in_transition():
    return _IN_TRANSITION.get()


def planned_automatically():
    return _AUTOMATIC.get()



def _token_hash(token):
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _utc_naive(text):
    """An ISO timestamp of the engine as Odoo stores datetimes (naive UTC)."""
    if not text:
        return False
    try:
        moment = datetime.fromisoformat(text)
    except (TypeError, ValueError):
        return False
    if moment.tzinfo:
        moment = moment.astimezone(timezone.utc).replace(tzinfo=None)
    return moment.replace(microsecond=0)


class RunAudit(MemoryAudit):
    """The engine's audit log for a run inside Odoo: JSON lines kept on the run.

    Each line is also written to Odoo's log, so the server log keeps the audit
    trail too.
    """

    def written(self, line):
        _logger.info("auto_heal audit: %s", line)


class AutoHealFixRun(models.Model):
    _name = "auto_heal.fix.run"
    _description = "Auto-Heal Fix Run"
    _inherit = ["mail.thread", "auto_heal.masked.mixin"]
    _masked_fields = _MASKED_FIELDS
    _order = "id desc"

    name = fields.Char(compute="_compute_name", store=True, readonly=False, precompute=True,
                       required=True)
    incident_id = fields.Many2one(
        "auto_heal.incident", required=True, ondelete="cascade", index=True)
    incident_fingerprint = fields.Char(related="incident_id.fingerprint", string="Fingerprint")
    pattern_id = fields.Many2one(related="incident_id.pattern_id", store=True)
    severity = fields.Selection(related="incident_id.severity")
    action = fields.Char(
        compute="_compute_action", store=True, readonly=False, precompute=True, index=True,
        help="Name of the fix action to run; defaults to the pattern's fix action.")
    runs_on = fields.Selection(
        [("odoo", "Odoo"), ("host", "Host (watchdog)")], compute="_compute_runs_on",
        store=True, readonly=False, precompute=True,
        help="Odoo runs database-level actions itself; the host watchdog runs the others.")
    target = fields.Char(string="Target Key", readonly=True,
                         help="What the action changes, as its plan names it.")
    params = fields.Text(
        string="Parameters", default="{}",
        help="Parameters of the fix action, as a JSON object.")
    host_params_note = fields.Char(
        string="Set on the Host", compute="_compute_host_params_note",
        help="Parameters only the watchdog's own config may set (readme/SECURITY.md): a run "
             "from Odoo that carries one is refused on the host.")
    state = fields.Selection(STATES, required=True, default="draft", readonly=True,
                             copy=False, tracking=True, index=True)
    approval_reason = fields.Char(readonly=True, copy=False,
                                  help="Why the policy asked (or did not ask) for approval.")
    auto_approved = fields.Boolean(
        readonly=True, copy=False, help="Approved by the policy, without a person.")

    plan = fields.Text(readonly=True, copy=False, help="The plan a person reads first.")
    diff = fields.Text(readonly=True, copy=False)
    preconditions = fields.Text(readonly=True, copy=False)
    plan_data = fields.Text(readonly=True, copy=False, help="The engine's plan (JSON).")
    backup_location = fields.Char(readonly=True, copy=False)
    backup_manifest = fields.Text(readonly=True, copy=False,
                                  help="What the backup holds (JSON): rows or files.")
    output = fields.Text(readonly=True, copy=False)
    error = fields.Text(readonly=True, copy=False)
    audit = fields.Text(readonly=True, copy=False,
                        help="The runner's audit lines for this run (JSON lines).")
    engine_run_id = fields.Char(string="Engine Run ID", readonly=True, copy=False,
                                help="Run id of the engine; the host's rollback uses it.")
    applied = fields.Boolean(readonly=True, copy=False,
                             help="The apply step ran: the run counts against the budget.")

    planned_date = fields.Datetime(readonly=True, copy=False)
    approved_date = fields.Datetime(readonly=True, copy=False)
    started_date = fields.Datetime(readonly=True, copy=False)
    ended_date = fields.Datetime(readonly=True, copy=False)
    duration = fields.Float(string="Duration (s)", readonly=True, copy=False, digits=(16, 3),
                            help="Seconds spent in the steps of the run.")
    approved_by = fields.Many2one("res.users", readonly=True, copy=False)
    rejected_by = fields.Many2one("res.users", readonly=True, copy=False)
    rejected_date = fields.Datetime(readonly=True, copy=False)
    reject_reason = fields.Text(readonly=True, copy=False)
    target_host = fields.Char(
        compute="_compute_target_host", store=True, readonly=False, precompute=True,
        copy=False, index=True,
        help="The host whose watchdog runs it (a host run): its incident's host unless set "
             "here before approval. Only the watchdog of this host claims the run.")
    claimed_by = fields.Char(readonly=True, copy=False, help="The watchdog host running it.")
    claimed_uid = fields.Many2one(
        "res.users", string="Claimed By User", readonly=True, copy=False,
        help="The user (API key) whose watchdog claimed the run; only it may report it.")
    # sudo-only: the hash of the token handed to the claiming watchdog with the run. A
    # report must bring the token, so another Manager's key cannot report for this run.
    claim_token_hash = fields.Char(readonly=True, copy=False, groups="base.group_system")
    escalated = fields.Boolean(readonly=True, copy=False, tracking=True,
                               help="A person must look at it: over budget, or a failed "
                                    "rollback.")
    resolved_incident = fields.Boolean(readonly=True, copy=False,
                                       help="This run resolved its incident.")
    recovery_seconds = fields.Float(
        string="Time to Recovery (s)", readonly=True, copy=False, digits=(16, 0),
        help="From the incident's opening (or reopening) to its resolution by this run.")
    incident_round = fields.Integer(
        readonly=True, copy=False,
        help="The incident's reopen count when the run was created: a rejected or "
             "escalated run stops automatic planning until the incident is reopened.")
    regressed = fields.Boolean(
        readonly=True, copy=False,
        help="The incident came back within the regression window after this run.")
    notes = fields.Text()

    @api.depends("incident_id")
    def _compute_action(self):
        for run in self:
            if not run.action:
                run.action = run.incident_id.pattern_id.fix_script or False

    @api.depends("action")
    def _compute_host_params_note(self):
        for run in self:
            try:
                run.host_params_note = host_params_text(get_action(run.action)) or False
            except ActionError:
                run.host_params_note = False

    @api.depends("action")
    def _compute_runs_on(self):
        for run in self:
            run.runs_on = run._engine_runs_on()

    @api.depends("incident_id")
    def _compute_target_host(self):
        for run in self:
            if not run.target_host:
                run.target_host = run.incident_id.host or False

    @api.depends("incident_id", "action")
    def _compute_name(self):
        for run in self:
            action = run._engine_action()
            what = (action.label if action else run.action) or self.env._("manual fix")
            run.name = f"{what}: {run.incident_id.name}" if run.incident_id.name else what

    def init(self):
        # An index, not a constraint: PostgreSQL has no partial UNIQUE constraint, and
        # _sql_constraints cannot say "only among open runs". Made again when the open
        # states changed (an upgrade that adds one).
        self.env.cr.execute(SQL(
            "SELECT pg_get_indexdef(%s::regclass)", "auto_heal_fix_run_open_uniq")
            if self._open_index_exists() else SQL("SELECT ''"))
        definition = self.env.cr.fetchone()[0]
        if definition and not all(f"'{state}'" in definition for state in OPEN_STATES):
            self.env.cr.execute(SQL("DROP INDEX auto_heal_fix_run_open_uniq"))
        self.env.cr.execute(SQL("""
            CREATE UNIQUE INDEX IF NOT EXISTS auto_heal_fix_run_open_uniq
                ON auto_heal_fix_run (incident_id, action)
             WHERE state IN %s
        """, OPEN_STATES))

    def _open_index_exists(self):
        self.env.cr.execute(SQL("SELECT to_regclass(%s)", "auto_heal_fix_run_open_uniq"))
        return bool(self.env.cr.fetchone()[0])

    @api.constrains("params")
    def _check_params(self):
        for run in self:
            try:
                value = json.loads(run.params or "{}")
            except ValueError as exc:
                raise ValidationError(self.env._(
                    "The parameters of %(run)s are not valid JSON: %(error)s",
                    run=run.display_name, error=exc)) from None
            if not isinstance(value, dict):
                raise ValidationError(self.env._(
                    "The parameters of %(run)s must be a JSON object.", run=run.display_name))
            if run.state not in OPEN_STATES:
                continue  # a record of what a watchdog did (hand-over), not an order
            try:
                action = get_action(run.action)
            except ActionError:
                continue  # an action this Odoo does not know: the watchdog decides
            try:  # what Odoo may give is data; the host's own config gives the rest
                validate(action, value, source="odoo")
            except ActionError as exc:
                raise ValidationError(self.env._(
                    "The parameters of %(run)s are refused: %(error)s",
                    run=run.display_name, error=str(exc))) from None

    @api.model_create_multi
    def create(self, vals_list):
        vals_list = [self._clean_vals(vals) for vals in vals_list]
        keys = []
        for vals in vals_list:
            vals.setdefault("planned_date", fields.Datetime.now())
            incident = self.env["auto_heal.incident"].browse(vals.get("incident_id"))
            vals.setdefault("incident_round", incident.reopen_count if incident else 0)
            if vals.get("state", "draft") in OPEN_STATES and incident:
                action = vals.get("action") or incident.pattern_id.fix_script or False
                keys.append((incident.id, action, None))
        self._check_single_open_run(keys)
        runs = super().create(vals_list)
        runs._queue_notifications(self.browse(), {})
        return runs

    def write(self, vals):
        if "target_host" in vals:
            bound = self.filtered(lambda run: run.state not in ("draft", "pending")
                                  and run.target_host != vals["target_host"])
            if bound:
                raise UserError(self.env._(
                    "Fix run %(run)s is %(state)s: its target host can only change before "
                    "it is approved.", run=bound[0].display_name,
                    state=dict(STATES)[bound[0].state]))
        if {"state", "action", "incident_id"} & set(vals):
            keys = []
            for run in self:
                state = vals.get("state", run.state)
                if state in OPEN_STATES:
                    keys.append((vals.get("incident_id", run.incident_id.id),
                                 vals.get("action", run.action) or False, run.id))
            self._check_single_open_run(keys)
        before = {}
        if {"state", "escalated"} & set(vals):
            before = {run.id: (run.state, run.escalated) for run in self}
        result = super().write(self._clean_vals(vals))
        if before:
            self._queue_notifications(self, before)
        return result

    def _queue_notifications(self, known, before):
        """Queue the notification events of runs created (*known* empty) or changed.

        *before* maps a changed run's id to its (state, escalated) before the
        write. Events: a run waiting for approval (pending, or stale: its plan
        changed), an approval that expired, a failed fix (failed, or rolled
        back by its own verification), an escalation, and a restart by the
        host watchdog (a ``restart_service`` run it handed over).
        """
        events = {}
        for run in self:
            old_state, old_escalated = before.get(run.id, (None, False))
            if run.state != old_state:
                if run.state in ("pending", "stale"):
                    events.setdefault("approval_needed", self.browse())
                    events["approval_needed"] |= run
                elif run.state == "expired":
                    events.setdefault("approval_expired", self.browse())
                    events["approval_expired"] |= run
                elif run.state == "failed" or (run.state == "rolled_back"
                                               and old_state in (None, "running")):
                    events.setdefault("fix_failed", self.browse())
                    events["fix_failed"] |= run
            if run.escalated and not old_escalated:
                events.setdefault("escalation", self.browse())
                events["escalation"] |= run
            if not known and run.action == "restart_service":
                events.setdefault("watchdog_restart", self.browse())
                events["watchdog_restart"] |= run
        Event = self.env["auto_heal.notification.event"]
        for event, runs in events.items():
            Event._queue(event, fix_runs=runs)

    # -- chatter: masked like every other sink ---------------------------------------------

    def _message_log_batch(self, bodies, *args, **kwargs):
        return super()._message_log_batch(
            {key: masked_body(body) for key, body in bodies.items()}, *args, **kwargs)

    def message_post(self, *, body="", subject=None, **kwargs):
        return super().message_post(body=masked_body(body), subject=masked_body(subject),
                                    **kwargs)


    def _check_single_open_run(self, keys):
        """The code half of "never a second open run"; the unique index is the other.

        *keys* are ``(incident id, action, run id or None)`` of runs about to be
        open; checked before the INSERT or UPDATE reaches the index.
        """
        seen = set()
        for incident_id, action, run_id in keys:
            key = (incident_id, action)
            clash = key in seen or self.search_count([
                ("id", "not in", [run_id] if run_id else []),
                ("incident_id", "=", incident_id), ("action", "=", action),
                ("state", "in", OPEN_STATES),
            ])
            seen.add(key)
            if clash:
                raise ValidationError(self.env._(
                    "Incident %(incident)s already has an open fix run for %(action)s.",
                    incident=self.env["auto_heal.incident"].browse(incident_id).display_name,
                    action=action or "-"))

    # -- helpers -----------------------------------------------------------------------

    def _check_manager(self):
        if not self.env.user.has_group(MANAGER_GROUP):
            raise AccessError(self.env._(
                "Only Auto-Heal managers may approve, reject, run or roll back fix runs."))

    def _engine_action(self):
        """The registered engine action, or None when this Odoo does not know it."""
        self.ensure_one()
        if not self.action:
            return None
        try:
            return get_action(self.action)
        except ActionError:
            return None

    def _engine_runs_on(self):
        action = self._engine_action()
        if action is None or action.runs_on == "host":
            if action is not None and self._odoo_may_run_host_action(action):
                return "odoo"
            return "host"
        return "odoo"

    def _params_dict(self):
        self.ensure_one()
        try:
            value = json.loads(self.params or "{}")
        except ValueError:
            return {}
        return value if isinstance(value, dict) else {}

    @api.model
    def _addons_roots(self):
        import odoo.addons

        return tuple(dict.fromkeys(os.path.realpath(path) for path in odoo.addons.__path__))

    def _odoo_may_run_host_action(self, action):
        """A host action Odoo may run itself: its file is in a writable addons path.

        Only ``remove_deprecated_cron_fields``: safety rule 7 (readme/DEVELOP.md)
        lets Odoo run it when Odoo is up and the addon path is writable; every
        other host action waits for the watchdog.
        """
        if action.name not in ODOO_CAPABLE_HOST_ACTIONS:
            return False
        params = self._params_dict()
        paths = params.get("paths") or params.get("path")
        paths = [paths] if isinstance(paths, str) else paths
        if not isinstance(paths, list) or len(paths) != 1 or not isinstance(paths[0], str):
            return False
        real = os.path.realpath(paths[0])
        inside = any(real.startswith(root.rstrip(os.sep) + os.sep)
                     for root in self._addons_roots())
        return inside and os.access(real, os.W_OK) and os.access(os.path.dirname(real), os.W_OK)

    @api.model
    def _settings(self):
        return self.env["res.config.settings"]._auto_heal_settings()

    def _budget_policy(self, settings):
        return BudgetPolicy(max_runs=settings["budget_max_runs"],
                            window=settings["budget_window_minutes"] * 60.0)

    def _budget_history(self, settings):
        """Start times (epoch seconds) of earlier runs that applied to this target."""
        self.ensure_one()
        since = fields.Datetime.now() - timedelta(minutes=settings["budget_window_minutes"])
        earlier = self.search([
            ("id", "!=", self.id), ("action", "=", self.action),
            ("target", "=", self.target or False), ("state", "in", BUDGET_STATES),
            ("applied", "=", True), ("started_date", ">=", since),
        ])
        return sorted(run.started_date.replace(tzinfo=timezone.utc).timestamp()
                      for run in earlier)

    # -- buttons -----------------------------------------------------------------------

    def _next_state(self, verb):
        """The state *verb* moves these runs to (:func:`engine.fixrun.next_state`).

        Every state the model writes comes from here: a move the state machine
        does not hold is a UserError, never a write.
        """
        targets = set()
        for run in self:
            try:
                targets.add(next_state(run.state, verb))
            except TransitionError as exc:
                raise UserError(self.env._("Fix run %(run)s: %(error)s.",
                                           run=run.display_name, error=str(exc))) from None
        if len(targets) != 1:
            raise UserError(self.env._("These fix runs cannot %(verb)s together.", verb=verb))
        return targets.pop()

    def _require_state(self, allowed):
        wrong = self.filtered(lambda run: run.state not in allowed)
        if wrong:
            states = dict(STATES)
            raise UserError(self.env._(
                "Fix run %(run)s is %(state)s; this action does not apply to it.",
                run=wrong[0].display_name, state=states[wrong[0].state]))

    @transition
    def action_submit(self):
        """Plan a draft run again and hand it to the policy."""
        self._check_manager()
        self._require_state(("draft",))
        self._add_requester()  # submitted by hand: four eyes keeps them from approving
        self._submit()
        if self.filtered(lambda r: r.state == "approved" and r.runs_on == "odoo"):
            self._trigger_run_cron()
        return True

    def action_approve(self):
        """Approve the plan each run shows now (models/auto_heal_fix_run_approval.py)."""
        return self._approve()

    def action_reject(self, reason=None):
        """Reject: with a *reason* (RPC) at once, else through the wizard asking it."""
        self._check_manager()
        self._require_state(("draft", "pending", "stale", "approved"))
        if reason:
            return self._reject(reason)
        return {
            "type": "ir.actions.act_window",
            "name": self.env._("Reject Fix Run"),
            "res_model": "auto_heal.fix.run.reject",
            "view_mode": "form",
            "target": "new",
            "context": {"default_run_ids": self.ids},
        }

    @transition
    def _reject(self, reason):
        self._check_manager()
        self._require_state(("draft", "pending", "stale", "approved"))
        reason = (reason or "").strip()
        if not reason:
            raise UserError(self.env._("Say why the fix run is rejected."))
        self.write({"state": self._next_state("reject"), "rejected_by": self.env.user.id,
                    "rejected_date": fields.Datetime.now(), "reject_reason": reason})
        for run in self:
            run._message_log(body=self.env._("Rejected by %(user)s: %(reason)s",
                                             user=self.env.user.name, reason=reason))
        return True

    @transition
    def action_run(self):
        self._check_manager()
        self._require_state(("approved",))
        host = self.filtered(lambda run: run.runs_on != "odoo")
        if host:
            raise UserError(self.env._(
                "%(run)s runs on the host: the watchdog (bin/auto-heal run-approved) runs it. "
                "Odoo never restarts services nor touches files outside its data.",
                run=host[0].display_name))
        for run in self:
            run._execute()
        return True

    def action_rollback(self):
        self._check_manager()
        self._require_state(("done",))
        for run in self:
            if run.runs_on != "odoo":
                raise UserError(self.env._(
                    "%(run)s ran on the host %(host)s: roll it back there with "
                    "`bin/auto-heal rollback %(run_id)s`.", run=run.display_name,
                    host=run.claimed_by or "-", run_id=run.engine_run_id or "?"))
            run._rollback_odoo()
        return True
