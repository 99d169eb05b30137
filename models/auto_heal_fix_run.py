"""Fix runs: one execution of a fix action for an incident, and its approval workflow.

The engine decides and acts (:mod:`engine.policy`, :mod:`engine.actions.runner`);
this model keeps what a person needs to trust it: the plan read before
approving, who approved or rejected it, the output, the backup, the audit lines
of every step, the timings. States::

                          policy: approval needed
    scan / "Plan a fix" ──> draft ──(plan)──> pending ──approve──> approved
                              │                  │                   │
                              │ policy: auto     └──reject──> rejected│
                              └──────────────────────────────────────>┤
                                                                      │ odoo action: the
                                                                      │ "run fixes" cron or
                                                                      │ the Run button;
                                                                      │ host action: the
                                                                      │ watchdog claims it
                                                                      v
                                      done  <──verified── running ──> failed | rolled_back
                                       │                               (refused, blocked,
                                       └──Roll back──> rolled_back      over budget)

  Approvals (models/auto_heal_fix_run_approval.py, engine/approval.py): a run
  waiting for approval (pending, or stale: its plan changed since it was
  approved) expires past its deadline; four eyes and distinct approvers; the
  hash of the approved plan is compared when it runs (engine/planhash.py).

* Odoo actions run here through :func:`engine.actions.runner.execute` on ``env.cr``,
  in a savepoint. Host actions wait for ``bin/auto-heal run-approved``, which
  calls :meth:`AutoHealFixRun.watchdog_claim` and :meth:`AutoHealFixRun.watchdog_report`
  over JSON-RPC as an Auto-Heal Manager. Odoo never restarts a service and never
  touches files outside its data_dir and writable addons paths (DESIGN rule 7).
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
import hmac
import json
import logging
import os
import secrets
import time
from datetime import datetime, timedelta, timezone

from odoo import api, fields, models
from odoo.exceptions import AccessError, UserError, ValidationError
from odoo.tools import SQL, config

from ..engine.actions import ActionError, Context, Plan, RunRecord, get_action
from ..engine.actions.params import capture_map, host_params_text, validate
from ..engine.actions.runner import execute, rollback_run
from ..engine.budget import BudgetPolicy, decide
from ..engine.planhash import request_hash
from ..engine.policy import needs_approval
from ..engine.secrets import mask_secrets, mask_values
from .auto_heal_incident import masked_body

_logger = logging.getLogger(__name__)

MANAGER_GROUP = "auto_heal.group_auto_heal_manager"
STATES = [
    ("draft", "Draft"),
    ("pending", "Waiting Approval"),
    ("stale", "Plan Changed"),
    ("approved", "Approved"),
    ("running", "Running"),
    ("done", "Done"),
    ("failed", "Failed"),
    ("rolled_back", "Rolled Back"),
    ("rejected", "Rejected"),
    ("cancelled", "Cancelled"),
    ("expired", "Expired"),
]
OPEN_STATES = ("draft", "pending", "stale", "approved", "running")
#: Runs that changed (or tried to change) their target: they count against its budget.
BUDGET_STATES = ("done", "failed", "rolled_back")
#: Host actions Odoo may run itself when their file lies in a writable addons path.
ODOO_CAPABLE_HOST_ACTIONS = ("remove_deprecated_cron_fields",)
#: Text fields masked whenever they are written (DESIGN rule 8).
_TEXT_FIELDS = ("name", "target", "params", "plan", "diff", "preconditions", "backup_location",
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


def _clean(value):
    if not value or not isinstance(value, str):
        return value
    return mask_secrets(value).replace("\x00", "")


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


class RunAudit:
    """The engine's audit log for a run inside Odoo: JSON lines kept on the run.

    Has the ``record()`` of :class:`engine.audit.AuditLog`; each line is also
    written to Odoo's log, so the server log keeps the audit trail too.
    """

    def __init__(self):
        self.lines = []

    def record(self, action, target, result, duration, actor=None, **details):
        entry = {
            "time": datetime.now(timezone.utc).isoformat(timespec="milliseconds"),
            "actor": actor or "odoo",
            "action": action,
            "target": mask_secrets(str(target)),
            "result": result,
            "duration": round(float(duration), 6),
            "pid": os.getpid(),
        }
        if details:
            entry["details"] = mask_values(json.loads(json.dumps(details, default=str)))
        line = json.dumps(entry, default=str, ensure_ascii=False)
        self.lines.append(line)
        _logger.info("auto_heal audit: %s", line)
        return entry

    def text(self):
        return "\n".join(self.lines)


class AutoHealFixRun(models.Model):
    _name = "auto_heal.fix.run"
    _description = "Auto-Heal Fix Run"
    _inherit = ["mail.thread"]
    _order = "id desc"

    name = fields.Char(compute="_compute_name", store=True, readonly=False, precompute=True,
                       required=True)
    incident_id = fields.Many2one(
        "auto_heal.incident", string="Incident", required=True, ondelete="cascade", index=True)
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

    @staticmethod
    def _clean_vals(vals):
        if any(vals.get(name) for name in _TEXT_FIELDS):
            vals = dict(vals)
            for name in _TEXT_FIELDS:
                if vals.get(name):
                    vals[name] = _clean(vals[name])
        return vals

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

        Only ``remove_deprecated_cron_fields``: DESIGN.md lets Odoo run it when
        Odoo is up and the addon path is writable; every other host action waits
        for the watchdog.
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

    def _engine_hooks(self):
        return {
            "registry_ready": self._hook_registry_ready,
            "assets_deleted": self._hook_assets_deleted,
            "regenerate_assets": self._hook_regenerate_assets,
        }

    def _hook_registry_ready(self):
        """Measured: this registry finished loading and no thread is building one."""
        from odoo.modules.registry import Registry

        registry = self.env.registry
        ready, loaded = bool(registry.ready), bool(registry.loaded)
        lock = getattr(Registry, "_lock", None)
        free = True
        if lock is not None:
            try:
                free = lock.acquire(blocking=False)
            except TypeError:  # Odoo's HttpCase swaps in a DummyRLock: no registry is built
                free = True
            else:
                if free:
                    lock.release()
        ok = ready and loaded and free
        detail = (f"registry {registry.db_name}: loaded={loaded}, ready={ready}, "
                  f"{'no registry is being built' if free else 'a registry is being built'}")
        return ok, detail

    def _hook_assets_deleted(self, store_fnames):
        # sudo: the bundles are system data; _file_delete only queues the files for
        # the filestore's garbage collector, which keeps files still referenced.
        attachments = self.env["ir.attachment"].sudo()
        for fname in store_fnames:
            attachments._file_delete(fname)
        self.env.registry.clear_cache("assets")
        return (f"{len(store_fnames)} filestore file(s) queued for garbage collection; "
                "asset cache cleared")

    def _hook_regenerate_assets(self, bundle_name):
        # sudo: Odoo builds bundles as the superuser for any visitor
        # (AssetsBundle.save_attachment creates them with SUPERUSER_ID).
        qweb = self.env["ir.qweb"].sudo()
        bundle = qweb._get_asset_bundle(bundle_name, css=True, js=True)
        js = bundle.js()
        css = bundle.css()
        if bundle.css_errors:
            return False, "CSS errors: " + " | ".join(bundle.css_errors)[:1000]
        names = sorted(set(js.mapped("name")) | set(css.mapped("name")))
        ok = bool(js) and bool(css)
        return ok, (f"built {', '.join(names)}" if ok else
                    f"{bundle_name} produced no {'JS' if not js else 'CSS'} attachment")

    def _engine_context(self, audit):
        data_dir = config.get("data_dir") or ""
        return Context(
            actor=f"odoo:{self.env.user.login}",
            audit=audit,
            cursor=self.env.cr,
            hooks=self._engine_hooks(),
            roots=self._addons_roots(),
            backup_dir=os.path.join(data_dir, "auto_heal", "backups", self.env.cr.dbname),
        )

    # -- planning ----------------------------------------------------------------------

    @api.model
    def _params_from_incident(self, incident, action_name):
        """The data parameters of *action_name* that the incident's captures fill.

        Which capture fills which parameter is declared once, on the action
        (engine/actions/params.py); a captured value that is not a valid value of
        its parameter is left out. Host parameters never come from here.
        """
        try:
            captures = json.loads(incident.captures or "{}")
            action = get_action(action_name)
        except (ValueError, ActionError):
            return {}
        if not isinstance(captures, dict):
            return {}
        by_name = {param.name: param for param in action.params}
        params = {}
        for capture, name in capture_map(action).items():
            value = captures.get(capture)
            if value in (None, ""):
                continue
            try:
                params[name] = by_name[name].check(value)
            except ActionError:
                continue
        return params

    @api.model
    @transition
    def _plan_for_incidents(self, incidents):
        """Plan a fix run for each open incident whose pattern has a fix action.

        Never a second open run for one incident and action; no new run either
        when, since the incident was (re)opened, a person rejected one or one was
        escalated: a person decides first. Returns the new runs.
        """
        incidents = incidents.filtered(
            lambda i: i.state in i.OPEN_STATES and i.pattern_id.fix_script)
        if not incidents:
            return self.browse()
        earlier = self.search([("incident_id", "in", incidents.ids)])
        created = self.browse()
        planning = self.with_context(auto_heal_planning=True)
        for incident in incidents:
            action = incident.pattern_id.fix_script
            runs = earlier.filtered(lambda r, i=incident, a=action:
                                    r.incident_id == i and r.action == a)
            if runs.filtered(lambda r: r.state in OPEN_STATES):
                continue
            if runs.filtered(lambda r, n=incident.reopen_count:
                             (r.state == "rejected" or r.escalated) and r.incident_round == n):
                continue
            if self._incident_may_plan(incident, action) or \
                    self._open_covering_run(incident, action):
                continue  # another database's incident, or an open run covers it
            automatic = _AUTOMATIC.set(True)  # a scan planned it: nobody requested it
            try:
                run = planning.create({
                    "incident_id": incident.id, "action": action,
                    "params": json.dumps(self._params_from_incident(incident, action),
                                         sort_keys=True),
                })
            finally:
                _AUTOMATIC.reset(automatic)
            run._submit()
            if run.state == "cancelled":  # never queue a plan that changes nothing
                run.unlink()
                continue
            created |= run.with_env(self.env)
        if created.filtered(lambda r: r.state == "approved" and r.runs_on == "odoo"):
            self._trigger_run_cron()
        return created

    @api.model
    def _trigger_run_cron(self):
        cron = self.env.ref("auto_heal.ir_cron_run_fixes", raise_if_not_found=False)
        if cron:
            # sudo: ir.cron is readable by Settings admins only; the trigger only asks
            # the "run fixes" job to run soon.
            cron.sudo()._trigger()

    @transition
    def _make_plan(self):
        """Plan the run now: a dry run of the engine for Odoo actions, a text for host ones.

        Returns the planning error (text) or False.
        """
        self.ensure_one()
        action = self._engine_action()
        params = self._params_dict()
        vals = {"runs_on": self._engine_runs_on(), "error": False, "plan_hash": False}
        if action is None or vals["runs_on"] == "host":  # the watchdog plans it for real
            vals.update(diff=False, preconditions=False, plan_data=False)
        if action is None:
            vals["plan_hash"] = request_hash(self.action, params, self.target_host)
            vals.update(plan=self.env._(
                "%(action)s runs on the host: this Odoo does not know the action; the "
                "watchdog plans it for real when it runs it.\nParameters: %(params)s",
                action=self.action or "-", params=json.dumps(params, sort_keys=True)),
                target=False)
            if not self.target_host:
                vals["error"] = self.env._(
                    "%(action)s runs on a host, and the incident names none: set the "
                    "target host (the watchdog's [watchdog] host)", action=self.action or "-")
            self.write(vals)
            return vals["error"]
        if vals["runs_on"] == "host":
            paths = params.get("paths") or params.get("path")
            paths = [paths] if isinstance(paths, str) else paths or []
            vals.update(plan=self._host_plan_text(action, params),
                        target=", ".join(str(p) for p in paths) or str(
                            params.get("service") or "") or False,
                        plan_hash=request_hash(action.name, params, self.target_host))
            try:  # data only: the host adds its own parameters, and refuses Odoo's
                validate(action, params, source="odoo")
            except ActionError as exc:
                vals["error"] = str(exc)
            if not vals["error"] and not self.target_host:
                vals["error"] = self.env._(
                    "%(action)s runs on a host, and the incident names none: set the "
                    "target host (the watchdog's [watchdog] host)", action=action.name)
            self.write(vals)
            return vals["error"]
        audit = RunAudit()
        self.env.flush_all()
        try:
            with self.env.cr.savepoint(flush=False):
                record = execute(self.action, self._engine_context(audit), params,
                                 incident=self.incident_id.fingerprint, dry_run=True)
        except ActionError as exc:
            record, error = None, str(exc)
        finally:
            self.env.invalidate_all()
        if record is None:
            vals["error"] = error
        else:
            vals.update(self._plan_vals(record))
            if not record.plan:
                vals["error"] = record.error
        vals["audit"] = self._audit_join(audit)
        self.write(vals)
        return vals["error"]

    @staticmethod
    def _host_plan_text(action, params):
        lines = [f"{action.name} (runs on the host watchdog, which plans it for real, with "
                 "the diff, when it runs it)", action.description or ""]
        if params:
            lines.append("Parameters:")
            lines += [f"  {key}: {value}" for key, value in sorted(params.items())]
        lines.append(host_params_text(action))
        return "\n".join(line for line in lines if line)

    def _plan_vals(self, record, source="odoo"):
        """The plan fields of an engine record; its hash is Odoo's plan hash, or the
        host's plan hash for a watchdog's report (Odoo's is the request's)."""
        if not record.plan:
            return {"target": record.target or False}
        hashed = {"host_plan_hash" if source == "watchdog" else "plan_hash":
                  str(getattr(record, "plan_hash", "") or "")[:80] or False}
        try:
            plan = Plan.from_dict(record.plan)
        except (TypeError, ValueError, AttributeError):  # a report from another version
            return {"target": record.target or False, **hashed,
                    "plan": json.dumps(record.plan, indent=1, sort_keys=True, default=str),
                    "plan_data": json.dumps(record.plan, sort_keys=True, default=str)}
        return {
            **hashed,
            "target": record.target or plan.target,
            "target_label": plan.label(),
            "plan": plan.text(),
            "diff": plan.diff or False,
            "preconditions": "\n".join(
                f"[{'ok' if p.ok else 'FAILED'}] {p.description}"
                + (f": {p.detail}" if p.detail else "") for p in plan.preconditions) or False,
            "plan_data": json.dumps(record.plan, sort_keys=True, default=str),
        }

    def _audit_join(self, audit):
        lines = [line for line in (self.audit or "").split("\n") if line]
        return "\n".join(lines + audit.lines) or False

    @transition
    def _submit(self):
        """Plan, then let the policy decide: pending, or approved without a person."""
        settings = self._settings()
        for run in self:
            error = run._make_plan()
            if error:
                run._message_log(body=self.env._(
                    "The fix could not be planned: %(error)s. Complete the parameters and "
                    "submit it again.", error=error))
                continue
            if run._screen_plan():  # nothing to change, or another run does it: not queued
                continue
            pattern = run.pattern_id
            approval, reason = needs_approval(
                settings["environment"], run.severity or "high",
                bool(pattern.auto_fix), settings["rules"], demoted=bool(pattern.fix_demoted))
            vals = {"approval_reason": reason}
            if approval:
                vals["state"] = "pending"
                vals.update(run._waiting_vals())
            else:
                vals.update(state="approved", auto_approved=True,
                            approved_date=fields.Datetime.now(), approved_hash=run.plan_hash)
            run.write(vals)
            run._message_log(body=self.env._(
                "Planned. %(decision)s: %(reason)s.",
                decision=self.env._("Waiting for approval") if approval
                else self.env._("Approved by the policy"), reason=reason))

    # -- buttons -----------------------------------------------------------------------

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
        self.write({"state": "rejected", "rejected_by": self.env.user.id,
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

    # -- running Odoo actions ----------------------------------------------------------

    @api.model
    @transition
    def _cron_run_approved(self, limit=20):
        """The "run fixes" cron: approved Odoo runs, one savepoint each, lock-skipping."""
        self._fail_stale_claims()
        self._recheck_waiting()  # the queue stays today's: healthy targets drop out
        runs = self.search([("state", "=", "approved"), ("runs_on", "=", "odoo")],
                           order="id", limit=limit)
        done = self.browse()
        for run in runs:
            if not run._try_lock():
                continue
            run._execute()
            done |= run
        return done

    @api.model
    @transition
    def _fail_stale_claims(self):
        """Host runs a watchdog claimed but never reported: failed, escalated.

        A watchdog that died with a run in hand must not leave it "running"
        for ever, nor let the same run be claimed again behind a person's back.
        """
        # sudo: a system parameter, read by the cron and by managers alike
        minutes = self.env["ir.config_parameter"].sudo().get_param(
            "auto_heal.watchdog_report_timeout_minutes", "60")
        try:
            minutes = max(1, int(minutes))
        except ValueError:
            minutes = 60
        since = fields.Datetime.now() - timedelta(minutes=minutes)
        stale = self.search([("state", "=", "running"), ("runs_on", "=", "host"),
                             ("claimed_by", "!=", False), ("started_date", "<", since)])
        for run in stale:
            run._store_record(RunRecord(
                run_id="", action=run.action, target=run.target or "", state="failed",
                actor="odoo:cron", escalate=True,
                error=f"the watchdog on {run.claimed_by} did not report back within "
                      f"{minutes} min; check that host, then run or reject it again"))
        return stale

    def _try_lock(self):
        """Lock this run's row like ir.cron locks a job; False if another worker has it."""
        self.ensure_one()
        self.env.flush_all()
        self.env.cr.execute(SQL(
            "SELECT id FROM auto_heal_fix_run WHERE id = %s AND state = 'approved' "
            "FOR NO KEY UPDATE SKIP LOCKED", self.id))
        locked = bool(self.env.cr.fetchone())
        self.invalidate_recordset()
        return locked

    @transition
    def _execute(self):
        """Run an approved Odoo-level run through the engine's runner, in a savepoint."""
        self.ensure_one()
        settings = self._settings()
        history = self._budget_history(settings)
        self.write({"state": "running", "started_date": fields.Datetime.now(),
                    "error": False})
        audit = RunAudit()
        params = self._params_dict()
        started = time.monotonic()
        self.env.flush_all()
        try:
            validate(get_action(self.action), params, source="odoo")  # data, never power
            with self.env.cr.savepoint(flush=False):
                record = execute(
                    self.action, self._engine_context(audit), params,
                    incident=self.incident_id.fingerprint or "",
                    budget=self._budget_policy(settings), history=history, now=time.time(),
                    approved_hash=self._hash_to_enforce())
        except Exception as exc:  # noqa: BLE001 - a bad action or parameter is an outcome
            _logger.warning("auto_heal: fix run %s could not run: %s", self.id, exc)
            record = RunRecord(run_id="", action=self.action or "", target=self.target or "",
                               actor=f"odoo:{self.env.user.login}", params=params,
                               state="blocked", error=f"{type(exc).__name__}: {exc}")
        finally:
            self.env.invalidate_all()
        if not record.durations:
            record.durations = {"total": round(time.monotonic() - started, 6)}
        self._store_record(record, audit)
        return record

    @transition
    def _store_record(self, record, audit=None, source="odoo"):
        """Write an engine RunRecord onto the run: state, plan, output, timings, effects."""
        self.ensure_one()
        if record.state == "stale":  # the plan changed since it was approved: ask again
            return self._become_stale(record, audit, source)
        if source == "watchdog" and self.plan_only_claim and record.state == "planned":
            return self._receive_host_plan(record, audit)
        state, escalated = record.state, bool(record.escalate)
        output, error = record.output or "", record.error or ""
        if state == "noop":
            state = "done"
        elif state in ("blocked", "planned"):
            state = "failed"
            error = error or self.env._("the run only planned")
        elif state == "refused":
            if not escalated:  # too soon: wait for the growing delay, then try again
                self.write({"state": "approved", "started_date": False, "error": error,
                            "audit": self._audit_join(audit) if audit else self.audit})
                self._message_log(body=self.env._("Not run yet: %(reason)s", reason=error))
                return
            state = "failed"
        if state not in ("done", "failed", "rolled_back"):
            state, error = "failed", error or f"unexpected engine state {record.state!r}"
        now = fields.Datetime.now()
        vals = dict(
            self._plan_vals(record) if record.plan else {"target": record.target or self.target},
            state=state, escalated=escalated or self.escalated, output=output or False,
            error=error or False, engine_run_id=record.run_id or self.engine_run_id,
            applied="apply" in (record.durations or {}),
            ended_date=_utc_naive(record.ended) or now,
            duration=round(sum((record.durations or {}).values()), 3),
        )
        if source == "watchdog":
            vals["started_date"] = _utc_naive(record.started) or self.started_date or now
        if record.backup:
            vals["backup_manifest"] = json.dumps(record.backup, sort_keys=True, default=str)
            vals["backup_location"] = self._backup_location(record.backup, source)
        if audit is not None:
            vals["audit"] = self._audit_join(audit)
        self.write(vals)
        self._after_finish(record)

    def _backup_location(self, backup, source):
        files = [item.get("backup_path") for item in backup.get("files") or []
                 if isinstance(item, dict) and item.get("backup_path")]
        if files:
            where = self.env._("on the host %(host)s: ", host=self.claimed_by) \
                if source == "watchdog" else ""
            return where + ", ".join(files)
        for key in ("backup_path", "sidecar", "path", "backup", "location", "folder"):
            if isinstance(backup.get(key), str):
                return backup[key]
        if "table" in backup:
            return self.env._("database %(db)s, table %(table)s: the rows are in this run's "
                              "backup manifest", db=self.env.cr.dbname, table=backup["table"])
        return self.env._("the %(where)s's backup manifest",
                          where="watchdog" if source == "watchdog" else "run")

    def _after_finish(self, record):
        """Resolve the incident of a done run, note escalations, check demotion."""
        incident = self.incident_id
        states = dict(STATES)
        if self.state == "done":
            if incident.state in incident.OPEN_STATES:
                opened = incident.opened_date or incident.create_date
                self.write({
                    "resolved_incident": True,
                    "recovery_seconds": max(0.0, (self.ended_date - opened).total_seconds())
                    if opened and self.ended_date else 0.0,
                })
                incident.with_context(mail_notrack=True).write({"state": "resolved"})
                incident._message_log(body=self.env._(
                    "Resolved by fix run %(run)s (%(action)s on %(target)s), verified.",
                    run=self.display_name, action=self.action, target=self.target or "-"))
            self._resolve_covered_incidents()
        else:
            self._message_log(body=self.env._("%(state)s: %(error)s",
                                              state=states[self.state], error=self.error or ""))
        if self.escalated:
            incident._message_log(body=self.env._(
                "Escalated: fix run %(run)s was %(state)s: %(error)s. A person must look "
                "at it.", run=self.display_name, state=states[self.state],
                error=self.error or "-"))
        if self.auto_approved and self.pattern_id:
            self.pattern_id._check_demotion()

    def _run_record(self):
        """The engine's RunRecord of a done run, for a rollback."""
        self.ensure_one()
        try:
            plan = json.loads(self.plan_data or "{}")
            backup = json.loads(self.backup_manifest or "{}")
        except ValueError:
            plan, backup = {}, {}
        if not plan:
            raise UserError(self.env._("Fix run %(run)s has no stored plan to roll back from.",
                                       run=self.display_name))
        return RunRecord(run_id=self.engine_run_id or str(self.id), action=self.action,
                         target=self.target or "", actor=f"odoo:{self.env.user.login}",
                         incident=self.incident_id.fingerprint or "",
                         params=self._params_dict(), state="done", plan=plan, backup=backup)

    @transition
    def _rollback_odoo(self):
        self.ensure_one()
        record = self._run_record()
        audit = RunAudit()
        self.env.flush_all()
        try:
            with self.env.cr.savepoint(flush=False):
                rollback_run(record, self._engine_context(audit))
        except ActionError as exc:
            self.write({"audit": self._audit_join(audit)})
            raise UserError(str(exc)) from None
        finally:
            self.env.invalidate_all()
        self.write({
            "state": "rolled_back",
            "output": "\n".join(filter(None, [self.output, record.output.split("\n")[-1]
                                              if record.output else ""])) or False,
            "audit": self._audit_join(audit),
        })
        self._message_log(body=self.env._("Rolled back by %(user)s.", user=self.env.user.name))
        incident = self.incident_id
        if self.resolved_incident and incident.state == "resolved":
            incident.write({"state": "acknowledged"})
            incident._message_log(body=self.env._(
                "Fix run %(run)s was rolled back: the incident is open again.",
                run=self.display_name))

    # -- the watchdog's API (JSON-RPC, as an Auto-Heal Manager) ------------------------

    @staticmethod
    def _watchdog_host(host):
        return " ".join(str(host or "").split())[:128]

    @api.model
    @transition
    def watchdog_claim(self, host):
        """Hand the approved host runs bound to *host* to its watchdog; they become running.

        Returns ``[{"id", "action", "params", "incident", "claim_token",
        "target_host", "plan_hash", "host_plan_hash", "plan_only"}]`` (incident:
        its fingerprint; plan_hash: the approved request's hash; host_plan_hash:
        the host plan a person approved, if any; plan_only: plan on the host and
        report the plan for approval, change nothing; see
        models/auto_heal_fix_run_approval.py). Only the runs whose target host is *host*
        are handed out: a watchdog never gets another host's run. Each claim
        carries a fresh token; :meth:`watchdog_report` takes a report only with
        it, from the same user and host. Rows are taken with ``FOR NO KEY
        UPDATE SKIP LOCKED``, like ir_cron.py, so two watchdogs never get the
        same run. A run over its budget fails here, escalated; one that must
        wait stays approved.
        """
        self._check_manager()
        host = self._watchdog_host(host)
        if not host:
            raise UserError(self.env._(
                "The watchdog must say which host it is: it claims that host's runs only."))
        self.env.flush_all()
        self.env.cr.execute(SQL(
            "SELECT id FROM auto_heal_fix_run WHERE state = 'approved' AND runs_on = 'host' "
            "AND lower(target_host) = lower(%s) ORDER BY id FOR NO KEY UPDATE SKIP LOCKED",
            host))
        runs = self.browse([row[0] for row in self.env.cr.fetchall()])
        settings = self._settings()
        claimed = []
        for run in runs:
            if run._request_changed():  # not what was approved: approve it again first
                run._request_stale()
                continue
            plan_only = run._claims_plan_only()
            decision = decide(run._budget_policy(settings), run._budget_history(settings),
                              time.time())
            if not decision.allowed and not plan_only:
                if decision.escalate:
                    run.write({"state": "running", "started_date": fields.Datetime.now()})
                    run._store_record(RunRecord(
                        run_id="", action=run.action, target=run.target or "",
                        actor=f"odoo:{self.env.user.login}", state="refused",
                        escalate=True, error=decision.reason))
                continue
            token = secrets.token_urlsafe(32)
            run.write({"state": "running", "claimed_by": host, "claimed_uid": self.env.uid,
                       "started_date": fields.Datetime.now(), "error": False})
            # sudo: the token's hash is kept out of the Managers' reach (group_system)
            run.sudo().claim_token_hash = _token_hash(token)
            run._message_log(body=self.env._("Claimed by the watchdog on %(host)s.",
                                             host=host))
            claimed.append({"id": run.id, "action": run.action, "params": run._params_dict(),
                            "incident": run.incident_id.fingerprint, "claim_token": token,
                            **run._claim_approval(plan_only)})
        return claimed

    def _check_claim(self, host, claim_token):
        """The report comes from the watchdog that claimed this run, or UserError."""
        self.ensure_one()
        # sudo: compare with the hash only Settings admins may read
        expected = self.sudo().claim_token_hash or ""
        given = _token_hash(claim_token) if isinstance(claim_token, str) and claim_token \
            else ""
        same_token = bool(expected) and hmac.compare_digest(expected, given)
        same_user = self.claimed_uid.id == self.env.uid
        same_host = bool(self.claimed_by) and \
            self._watchdog_host(host).lower() == self.claimed_by.lower()
        if not (same_token and same_user and same_host):
            _logger.warning(
                "auto_heal: report for fix run %s refused: claimed by %s (user %s), reported "
                "by %s (user %s)%s", self.id, self.claimed_by, self.claimed_uid.login,
                self._watchdog_host(host) or "-", self.env.user.login,
                "" if same_token else ", without its claim token")
            raise UserError(self.env._(
                "Fix run %(run)s was claimed by the watchdog on %(host)s: only that watchdog "
                "(the same user, host and claim token) may report it.",
                run=self.display_name, host=self.claimed_by or "-"))

    @api.model
    @transition
    def watchdog_report(self, run_id, record, claim_token=None, host=None):
        """Store the outcome of a host run: *record* is ``RunRecord.to_dict()``.

        *claim_token* and *host* are what :meth:`watchdog_claim` gave and was
        given: a report from any other key, host or claim is refused.
        """
        self._check_manager()
        try:
            run = self.browse(int(run_id)).exists()
        except (TypeError, ValueError):
            run = self.browse()
        if not run:
            raise UserError(self.env._("No fix run %(id)s.", id=run_id))
        if run.state != "running" or run.runs_on != "host":
            raise UserError(self.env._(
                "Fix run %(run)s is not a running host run; the report is refused.",
                run=run.display_name))
        run._check_claim(host, claim_token)
        if not isinstance(record, dict) or not record.get("state"):
            raise UserError(self.env._("The report must be a run record with a state."))
        run._check_plan_only_report(record)
        engine_record = RunRecord.from_dict(record)
        if not isinstance(engine_record.durations, dict):
            engine_record.durations = {}
        audit = RunAudit()
        audit.record(f"{run.action}.report", engine_record.target or run.target or "",
                     engine_record.state, 0.0, actor=f"odoo:{self.env.user.login}",
                     host=run.claimed_by, run_id=engine_record.run_id,
                     incident=run.incident_id.fingerprint)
        run._store_record(engine_record, audit, source="watchdog")
        # sudo: the claim is used up; the hash is a Settings-admin-only field
        run.sudo().claim_token_hash = False
        return {"id": run.id, "state": run.state, "escalated": run.escalated}
