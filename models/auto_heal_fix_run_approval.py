"""Approvals you can trust in production: expiry, four eyes, what was approved is what runs.

The rules are the engine's (:mod:`engine.approval`, :mod:`engine.planhash`);
this file keeps them on the fix run, apart from its other workflow:

* **Expiry.** A run that waits for approval (``pending``, or ``stale``) gets a
  deadline from its environment and severity (Settings; defaults prod 24 h,
  staging 72 h, dev never). The "expire waiting fix runs" cron moves a run
  past it to ``expired``, with an audit line, a chatter note and an
  ``approval_expired`` notification. An expired run is closed: it is never
  approved, and the next occurrence of its incident plans a fresh one.
* **Four eyes.** Where Settings turn it on (prod by default), whoever planned
  a run by hand, submitted it or changed its request (its target host) cannot
  approve it; a critical run can need two distinct approvers. Each approval is
  a row (who, when, the plan hash) and an audit line.
* **What was approved is what runs.** Odoo runs: the plan's hash is stored when
  it is planned and with each approval; the runner plans again when it runs,
  and a different hash stops the run as ``stale``, nothing touched, both plans
  shown side by side, asking for approval again. Host runs: Odoo cannot plan
  on the host, so the approval covers the *request* (action, data parameters,
  target host; ``engine.planhash.request_hash``), checked again when a watchdog
  claims the run and by the watchdog itself; when a host plan was reported
  (a stale report, or "approve the host's plan" in Settings: the first claim
  only plans), the approval covers that plan too and the watchdog refuses to
  run a plan that hashes otherwise (host/approved.py).
* **Only transitions change approvals.** State, plans, hashes and approvals are
  written by the model's transitions only: a Manager's raw ``write`` or
  ``create`` over RPC cannot approve a run, skip four eyes or change the
  parameters of a run that is no longer a draft.
"""

import difflib
import json
import logging

from odoo import Command, api, fields, models
from odoo.exceptions import AccessError, UserError
from odoo.tools import SQL

from ..engine.approval import (
    ApprovalError,
    approvals_required,
    deadline,
    expiry_hours,
    refusal,
    time_left,
)
from ..engine.fixrun import WAITING_STATES
from ..engine.planhash import content_diff, request_hash, short
from ..engine.policy import needs_approval
from .auto_heal_fix_run import RunAudit, in_transition, planned_automatically, transition

_logger = logging.getLogger(__name__)

#: Written by the fix run's transitions only (a Manager's raw write or create is refused).
PROTECTED_FIELDS = frozenset({
    "state", "plan", "diff", "preconditions", "plan_data", "plan_hash", "host_plan_hash",
    "approved_hash", "approved_host_hash", "approvals_required", "requester_ids",
    "approval_ids", "waiting_since", "expires_at", "expired_date", "previous_plan",
    "plan_change", "plan_change_reason", "plan_changed_date", "approved_by", "approved_date",
    "auto_approved", "plan_only_claim", "claimed_by", "claimed_uid", "claim_token_hash",
})
#: What was planned and approved: frozen once a run is no longer a draft.
FROZEN_AFTER_DRAFT = frozenset({"action", "incident_id", "runs_on"})
#: The data parameters may still change while a run waits (issue 10: the cause of a
#: reactivation): that is a new request, planned and approved afresh.
FROZEN_UNLESS_WAITING = frozenset({"params"})


def _with_newline(text):
    text = text or ""
    return text if not text or text.endswith("\n") else text + "\n"


def plan_with_diff(plan, diff):
    """The text a person compares: the plan, then its diff."""
    text = _with_newline(plan)
    if diff:
        text += "Diff:\n" + _with_newline(diff)
    return text


def plan_change(before, after, before_data=None, after_data=None):
    """A unified diff of two plan texts, then of what their hashes cover when both
    plans are known (a file's bytes may change outside the diff's context lines);
    "" when nothing differs."""
    text = "" if before == after else "".join(difflib.unified_diff(
        _with_newline(before).splitlines(True), _with_newline(after).splitlines(True),
        "plan before", "plan now", n=3))
    hashed = content_diff(before_data, after_data) if before_data and after_data else ""
    if hashed:
        text += ("\n" if text else "") + "What the plan hash covers, changed:\n" + hashed
    return text


def _plan_data(text):
    try:
        data = json.loads(text or "{}")
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


class AutoHealFixRunApproval(models.Model):
    """One person's approval of one plan of a fix run."""

    _name = "auto_heal.fix.run.approval"
    _description = "Auto-Heal Fix Run Approval"
    _order = "date, id"
    _rec_name = "user_id"

    run_id = fields.Many2one("auto_heal.fix.run", string="Fix Run", required=True,
                             ondelete="cascade", index=True, readonly=True)
    user_id = fields.Many2one("res.users", string="Approved By", required=True, readonly=True,
                              ondelete="restrict")
    date = fields.Datetime(required=True, readonly=True)
    plan_hash = fields.Char(readonly=True, help="The hash of the plan approved (Odoo's plan, "
                                                "or a host run's request).")
    host_plan_hash = fields.Char(readonly=True,
                                 help="The hash of the host's own plan approved, if the host "
                                      "had reported one.")
    superseded = fields.Boolean(
        readonly=True, help="The plan changed after this approval: it no longer counts.")
    superseded_date = fields.Datetime(readonly=True)
    superseded_reason = fields.Char(readonly=True)


class AutoHealFixRun(models.Model):
    _inherit = "auto_heal.fix.run"

    requester_ids = fields.Many2many(
        "res.users", "auto_heal_fix_run_requester_rel", "run_id", "user_id",
        string="Requested By", readonly=True, copy=False,
        help="Who planned the run by hand, submitted it or changed its request. Where four "
             "eyes is on (Settings), none of them may approve it.")
    approval_ids = fields.One2many("auto_heal.fix.run.approval", "run_id", string="Approvals",
                                   readonly=True, copy=False)
    approvals_required = fields.Integer(
        readonly=True, copy=False, default=1,
        help="How many distinct people must approve the current plan.")
    approvals_needed = fields.Integer(
        compute="_compute_approvals_needed", store=True,
        help="Approvals of the current plan still missing.")
    plan_hash = fields.Char(
        readonly=True, copy=False,
        help="The hash of the plan (Odoo runs) or of the request (host runs: action, "
             "parameters, target host) a person approves.")
    host_plan_hash = fields.Char(readonly=True, copy=False,
                                 help="The hash of the plan the host's watchdog reported.")
    approved_hash = fields.Char(readonly=True, copy=False,
                                help="The plan hash that was approved; the run must match it.")
    approved_host_hash = fields.Char(
        readonly=True, copy=False,
        help="The host plan hash that was approved; the watchdog refuses another plan.")
    waiting_since = fields.Datetime(readonly=True, copy=False)
    expires_at = fields.Datetime(
        string="Expires", readonly=True, copy=False, index=True,
        help="A run still waiting for approval then expires (Settings: per environment and "
             "severity).")
    expires_in = fields.Char(string="Time Left", compute="_compute_expires_in")
    expired_date = fields.Datetime(readonly=True, copy=False)
    previous_plan = fields.Text(
        string="Plan Before", readonly=True, copy=False,
        help="The plan (and diff) as it was before the plan changed: the approved plan of a "
             "stale run, or the plan before a re-plan.")
    plan_change = fields.Text(string="What Changed", readonly=True, copy=False)
    plan_change_reason = fields.Char(string="Why It Changed", readonly=True, copy=False)
    plan_changed_date = fields.Datetime(readonly=True, copy=False)
    plan_only_claim = fields.Boolean(
        readonly=True, copy=False,
        help="The watchdog claimed the run to plan it on the host only, for approval.")

    @api.depends("state", "approvals_required", "plan_hash", "host_plan_hash",
                 "approval_ids.superseded")
    def _compute_approvals_needed(self):
        for run in self:
            if run.state in WAITING_STATES:
                run.approvals_needed = max(0, run.approvals_required
                                           - len(run._valid_approvals()))
            else:
                run.approvals_needed = 0

    @api.depends("expires_at", "state")
    def _compute_expires_in(self):
        now = fields.Datetime.now()
        for run in self:
            run.expires_in = time_left(run.expires_at or None, now) \
                if run.state in WAITING_STATES else False

    # -- only transitions change approvals ---------------------------------------------

    def _guard(self, vals, creating=False):
        if self.env.su or in_transition():
            return
        touched = sorted(set(vals) & PROTECTED_FIELDS)
        if creating and vals.get("state", "draft") == "draft":
            touched = [name for name in touched if name != "state"]
        frozen = sorted(set(vals) & FROZEN_AFTER_DRAFT)
        if frozen and not creating and self.filtered(lambda run: run.state != "draft"):
            touched += frozen
        waiting_only = sorted(set(vals) & FROZEN_UNLESS_WAITING)
        if waiting_only and not creating and self.filtered(
                lambda run: run.state not in ("draft", *WAITING_STATES)):
            touched += waiting_only
        if touched:
            raise AccessError(self.env._(
                "%(fields)s of a fix run change only through its buttons (plan, approve, "
                "reject, run) and the watchdog's claim and report, never by a write.",
                fields=", ".join(touched)))

    @api.model
    def _requester_id(self):
        """The person acting now, unless a scan planned on its own or it is OdooBot."""
        user = self.env.user
        if planned_automatically() or user._is_superuser() or user.share:
            return False
        return user.id

    @api.model_create_multi
    def create(self, vals_list):
        for vals in vals_list:
            self._guard(vals, creating=True)
        requester = self._requester_id()
        if requester:
            vals_list = [dict(vals, requester_ids=[Command.link(requester)])
                         if "requester_ids" not in vals else vals for vals in vals_list]
        return super().create(vals_list)

    def write(self, vals):
        self._guard(vals)
        host_changed = params_changed = self.browse()
        if "target_host" in vals:
            new = " ".join(str(vals["target_host"] or "").split()).lower()
            host_changed = self.filtered(
                lambda run: run.state in WAITING_STATES and run.runs_on == "host"
                and " ".join((run.target_host or "").split()).lower() != new)
        if "params" in vals:
            params_changed = self.filtered(
                lambda run: run.state in WAITING_STATES
                and (run.params or "{}") != (vals["params"] or "{}"))
        result = super().write(vals)
        if host_changed:
            host_changed._request_changed_by_hand(self.env._("the target host changed"))
        if params_changed - host_changed:
            (params_changed - host_changed)._request_changed_by_hand(
                self.env._("the parameters changed"))
        return result

    @transition
    def _add_requester(self):
        """The person acting now asked for this run (four eyes keeps them from approving)."""
        requester = self._requester_id()
        if requester:
            self.write({"requester_ids": [Command.link(requester)]})

    @transition
    def _request_changed_by_hand(self, reason):
        """A waiting run's target host or parameters changed: a new request, planned
        again, with the person who changed it as a requester, approved afresh."""
        for run in self:
            old = run.plan_hash
            run._make_plan()
            run._add_requester()
            if run.plan_hash != old:
                run._supersede_approvals(reason)

    # -- settings ----------------------------------------------------------------------

    @api.model
    def _approval_settings(self):
        return self.env["res.config.settings"]._auto_heal_approval_settings()

    def _waiting_vals(self, now=None):
        """Deadline and approvals needed of a run that starts waiting for approval now."""
        self.ensure_one()
        settings = self._approval_settings()
        now = now or fields.Datetime.now()
        severity = self.severity or "high"
        try:
            hours = expiry_hours(settings["environment"], severity, settings["expiry"])
            required = approvals_required(severity, settings["critical_approvers"])
        except ApprovalError as exc:  # a severity this version does not know: the safest
            _logger.warning("auto_heal: fix run %s: %s", self.id, exc)
            hours, required = 24, 2
        return {"waiting_since": now, "expires_at": deadline(now, hours) or False,
                "approvals_required": required}

    def _valid_approvals(self):
        """The approvals that count: of the current plan, not superseded."""
        self.ensure_one()
        return self.approval_ids.filtered(
            lambda a: not a.superseded and (a.plan_hash or False) == (self.plan_hash or False)
            and (a.host_plan_hash or False) == (self.host_plan_hash or False))

    def _supersede_approvals(self, reason):
        approvals = self.approval_ids.filtered(lambda a: not a.superseded)
        if approvals:
            # sudo: approvals are written by these transitions only (no write access)
            approvals.sudo().write({"superseded": True, "superseded_date": fields.Datetime.now(),
                                    "superseded_reason": (reason or "")[:200]})
        return approvals

    def _audit_event(self, step, result, **details):
        """One audit line of an approval step, appended to the run's audit."""
        self.ensure_one()
        audit = RunAudit()
        audit.record(f"{self.action or 'fix'}.{step}", self.target or self.action or "",
                     result, 0.0, actor=f"odoo:{self.env.user.login}", run_id=str(self.id),
                     incident=self.incident_id.fingerprint or "", **details)
        return self._audit_join(audit)

    # -- approving ---------------------------------------------------------------------

    @transition
    def _approve(self):
        """Approve the current plan of each run; approved once enough people did."""
        self._check_manager()
        self._require_state(WAITING_STATES)
        settings = self._approval_settings()
        now = fields.Datetime.now()
        user = self.env.user
        for run in self:
            if run.expires_at and run.expires_at <= now:
                raise UserError(self.env._(
                    "Fix run %(run)s waited for approval until %(deadline)s UTC: it has "
                    "expired and can no longer be approved. The next occurrence of its "
                    "incident plans a fresh one.", run=run.display_name,
                    deadline=run.expires_at))
            try:
                required = approvals_required(run.severity or "high",
                                              settings["critical_approvers"])
            except ApprovalError:
                required = 2
            valid = run._valid_approvals()
            reason = refusal(user.id, set(run.requester_ids.ids), valid.user_id.ids,
                             settings["four_eyes"], settings["environment"])
            if reason:
                raise UserError(self.env._("%(user)s cannot approve %(run)s: %(reason)s.",
                                           user=user.name, run=run.display_name,
                                           reason=reason))
            # sudo: approvals are written here only; Managers have no create access
            self.env["auto_heal.fix.run.approval"].sudo().create({
                "run_id": run.id, "user_id": user.id, "date": now,
                "plan_hash": run.plan_hash or False,
                "host_plan_hash": run.host_plan_hash or False})
            count = len(valid) + 1
            done = count >= required
            vals = {"approvals_required": required, "audit": run._audit_event(
                "approve", "approved" if done else "approval", plan_hash=run.plan_hash or "",
                host_plan_hash=run.host_plan_hash or "", approvals=f"{count}/{required}")}
            if done:
                vals.update(state=run._next_state("approve"), approved_by=user.id,
                            approved_date=now,
                            auto_approved=False, approved_hash=run.plan_hash or False,
                            approved_host_hash=run.host_plan_hash or False)
            run.write(vals)
            if done:
                run._message_log(body=self.env._(
                    "Approved by %(user)s (plan %(hash)s).", user=user.name,
                    hash=short(run.plan_hash)))
            else:
                run._message_log(body=self.env._(
                    "Approved by %(user)s (plan %(hash)s): %(count)s of %(required)s "
                    "approvals; another person must approve it too.", user=user.name,
                    hash=short(run.plan_hash), count=count, required=required))
        if self.filtered(lambda r: r.state == "approved" and r.runs_on == "odoo"):
            self._trigger_run_cron()
        return True

    # -- expiry ------------------------------------------------------------------------

    @api.model
    @transition
    def _cron_expire_waiting(self, limit=500):
        """The "expire waiting fix runs" cron: waiting runs past their deadline expire.

        Runs that waited before deadlines existed get one from when they were
        planned. Rows are taken like ir_cron.py takes jobs (``FOR NO KEY UPDATE
        SKIP LOCKED``): an approval in another transaction is not overwritten.
        """
        for run in self.search([("state", "in", WAITING_STATES),
                                ("waiting_since", "=", False)], limit=limit):
            run.write(run._waiting_vals(run.planned_date or fields.Datetime.now()))
        now = fields.Datetime.now()
        self.env.flush_all()
        self.env.cr.execute(SQL(
            "SELECT id FROM auto_heal_fix_run WHERE state IN %s AND expires_at <= %s "
            "ORDER BY expires_at, id LIMIT %s FOR NO KEY UPDATE SKIP LOCKED",
            WAITING_STATES, now, limit))
        runs = self.browse([row[0] for row in self.env.cr.fetchall()])
        for run in runs:
            run._expire(now)
        return runs

    def _expire(self, now):
        self.ensure_one()
        since = self.waiting_since or self.planned_date or now
        hours = round((now - since).total_seconds() / 3600.0, 1)
        valid = self._valid_approvals()
        audit = RunAudit()
        audit.record(f"{self.action or 'fix'}.expire", self.target or self.action or "",
                     "expired", 0.0, actor="odoo:cron", run_id=str(self.id),
                     incident=self.incident_id.fingerprint or "",
                     deadline=fields.Datetime.to_string(self.expires_at), waited_hours=hours,
                     plan_hash=self.plan_hash or "",
                     approvals=f"{len(valid)}/{self.approvals_required}")
        self.write({"state": self._next_state("expire"), "expired_date": now,
                    "audit": self._audit_join(audit)})
        self._message_log(body=self.env._(
            "Expired: no approval by %(deadline)s UTC (after %(hours)s h waiting, %(count)s of "
            "%(required)s approvals). It can no longer be approved; the next occurrence of "
            "the incident plans a fresh fix run.", deadline=self.expires_at, hours=hours,
            count=len(valid), required=self.approvals_required))

    # -- the plan changed --------------------------------------------------------------

    def _hash_to_enforce(self):
        """The approved hash an Odoo run must match when it runs, or None.

        A run the policy approved on its own keeps no person's approval: its
        plan may change and still run, as long as the policy would still
        approve it without a person.
        """
        self.ensure_one()
        if not self.approved_hash:
            return None  # approved before plans were hashed
        if self.auto_approved:
            settings = self._settings()
            pattern = self.pattern_id
            needed, _reason = needs_approval(
                settings["environment"], self.severity or "high", bool(pattern.auto_fix),
                settings["rules"], demoted=bool(pattern.fix_demoted))
            if not needed:
                return None
        return self.approved_hash

    def _become_stale(self, record, audit, source):
        """The runner (or the watchdog) planned something else than what was approved."""
        self.ensure_one()
        now = fields.Datetime.now()
        before = plan_with_diff(self.plan, self.diff)
        before_data = _plan_data(self.plan_data)
        vals = self._plan_vals(record, source)
        vals.setdefault("diff", False)
        after = plan_with_diff(vals.get("plan") or self.plan, vals.get("diff"))
        reason = record.error or self.env._("the plan changed since it was approved")
        vals.update(
            state=self._next_state("go_stale"), previous_plan=before,
            plan_change=plan_change(before, after, before_data, record.plan),
            plan_change_reason=reason[:500], plan_changed_date=now, started_date=False,
            error=False, plan_only_claim=False,
            engine_run_id=record.run_id or self.engine_run_id,
            audit=self._audit_join(audit) if audit is not None else self.audit)
        vals.update(self._waiting_vals(now))
        self.write(vals)
        self._supersede_approvals(reason)
        where = self.env._("on the host %(host)s", host=self.claimed_by) \
            if source == "watchdog" else self.env._("in Odoo")
        self._message_log(body=self.env._(
            "Not run: planned again %(where)s, the plan differs from the one approved "
            "(%(reason)s). Nothing was changed. Compare both plans (Plan Changes) and approve "
            "the new one, or reject it.", where=where, reason=reason))

    def _request_hash(self):
        self.ensure_one()
        return request_hash(self.action, self._params_dict(), self.target_host)

    def _request_changed(self):
        """A host run whose request (action, parameters, target host) is not the approved one."""
        self.ensure_one()
        return self.runs_on == "host" and bool(self.approved_hash) \
            and self._request_hash() != self.approved_hash

    def _request_stale(self):
        """At claim: the request changed since it was approved; it waits for approval again."""
        self.ensure_one()
        before = plan_with_diff(self.plan, self.diff)
        self._make_plan()
        after = plan_with_diff(self.plan, self.diff)
        reason = self.env._(
            "the request (action, parameters, target host) is not the one approved "
            "(approved %(approved)s, now %(now)s)", approved=short(self.approved_hash),
            now=short(self.plan_hash))
        self.write(dict(self._waiting_vals(), state=self._next_state("go_stale"),
                        previous_plan=before,
                        plan_change=plan_change(before, after), plan_change_reason=reason,
                        plan_changed_date=fields.Datetime.now(),
                        audit=self._audit_event("stale", "stale", reason=reason,
                                                approved_hash=self.approved_hash or "",
                                                plan_hash=self.plan_hash or "")))
        self._supersede_approvals(reason)
        self._message_log(body=self.env._("Not handed to the watchdog: %(reason)s. Approve "
                                          "it again.", reason=reason))

    # -- host plans --------------------------------------------------------------------

    def _claims_plan_only(self):
        """Whether the watchdog only plans this run and reports the plan for approval."""
        self.ensure_one()
        return bool(self._approval_settings()["host_plan_approval"]) \
            and not self.auto_approved and not self.approved_host_hash

    def _claim_approval(self, plan_only):
        """What the claim carries of the approval (see host/approved.py)."""
        self.ensure_one()
        self.write({"plan_only_claim": plan_only})
        return {"target_host": self.target_host or "",
                "plan_hash": self.approved_hash or self._request_hash(),
                "host_plan_hash": self.approved_host_hash or None,
                "plan_only": plan_only}

    def _check_plan_only_report(self, record):
        self.ensure_one()
        if self.plan_only_claim and record.get("state") not in ("planned", "blocked"):
            raise UserError(self.env._(
                "Fix run %(run)s was claimed to be planned on the host only: the report "
                "must be its plan, not %(state)s.", run=self.display_name,
                state=record.get("state")))

    def _receive_host_plan(self, record, audit):
        """The watchdog planned the run on its host: that plan now waits for approval."""
        self.ensure_one()
        before = plan_with_diff(self.plan, self.diff)
        vals = self._plan_vals(record, "watchdog")
        vals.setdefault("diff", False)
        after = plan_with_diff(vals.get("plan") or self.plan, vals.get("diff"))
        reason = self.env._("planned on the host %(host)s: approve the host's own plan",
                            host=self.claimed_by or "-")
        vals.update(state=self._next_state("receive_host_plan"), previous_plan=before,
                    plan_change=plan_change(before, after),
                    plan_change_reason=reason, plan_changed_date=fields.Datetime.now(),
                    started_date=False, error=False, plan_only_claim=False,
                    engine_run_id=record.run_id or self.engine_run_id,
                    audit=self._audit_join(audit) if audit is not None else self.audit)
        vals.update(self._waiting_vals())
        self.write(vals)
        self._supersede_approvals(reason)
        self._message_log(body=self.env._(
            "The watchdog on %(host)s planned it (host plan %(hash)s). Read the host's plan and "
            "approve it: that plan, and no other, will run.", host=self.claimed_by or "-",
            hash=short(self.host_plan_hash)))

    # -- re-plan -----------------------------------------------------------------------

    @transition
    def action_replan(self):
        """Plan a waiting run again now; approvals of a plan that changed are cleared."""
        self._check_manager()
        self._require_state(WAITING_STATES)
        for run in self:
            before = plan_with_diff(run.plan, run.diff)
            before_data = _plan_data(run.plan_data)
            old_hash, old_host_hash = run.plan_hash, run.host_plan_hash
            error = run._make_plan()
            after = plan_with_diff(run.plan, run.diff)
            after_data = _plan_data(run.plan_data)
            # Odoo cannot plan on the host: a host plan reported earlier is forgotten, the
            # watchdog plans again when it runs it
            changed = run.plan_hash != old_hash or bool(old_host_hash)
            who = self.env.user.name
            if error:
                reason = self.env._("re-planned by %(user)s: it cannot be planned (%(error)s)",
                                    user=who, error=error)
                run.write({"state": run._next_state("replan_failed"), "previous_plan": before,
                           "plan_change_reason": reason,
                           "plan_change": plan_change(before, after), "host_plan_hash": False,
                           "plan_changed_date": fields.Datetime.now(),
                           "audit": run._audit_event("replan", "failed", error=error)})
                run._supersede_approvals(reason)
                run._message_log(body=self.env._("Re-planned by %(user)s: %(error)s. Complete "
                                                 "the parameters and submit it again.",
                                                 user=who, error=error))
                continue
            reason = self.env._("re-planned by %(user)s: %(what)s", user=who, what=self.env._(
                "the plan changed") if changed else self.env._("the plan is the same"))
            run.write(dict(
                run._waiting_vals(), state=run._next_state("replan"), previous_plan=before,
                plan_change=plan_change(before, after, before_data, after_data) if changed
                else self.env._(
                    "No change: the plan hashes the same (%(hash)s).", hash=short(run.plan_hash)),
                plan_change_reason=reason, plan_changed_date=fields.Datetime.now(),
                host_plan_hash=False,
                audit=run._audit_event("replan", "changed" if changed else "same",
                                       before=old_hash or "", after=run.plan_hash or "")))
            if changed:
                cleared = run._supersede_approvals(reason)
                run._message_log(body=self.env._(
                    "Re-planned by %(user)s: the plan changed (%(before)s -> %(after)s); "
                    "%(count)s approval(s) of the old plan cleared. See Plan Changes.",
                    user=who, before=short(old_hash), after=short(run.plan_hash),
                    count=len(cleared)))
            else:
                run._message_log(body=self.env._(
                    "Re-planned by %(user)s: the plan is the same (%(hash)s); its approvals "
                    "still count.", user=who, hash=short(run.plan_hash)))
        return True

