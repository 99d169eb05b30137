"""The admin's half of a fix run: a queue without noise, a plan checked before it is read,
a red banner when a precondition fails, and a run that starts right after its approval.

::

    scan / "Plan a fix" -> plan -> no change?           -> never queued (cancelled)
                                -> same action+target?  -> the open run covers the incident
                                -> other database?      -> no database-level run at all
    opened for review   -> plan again -> healthy again? -> cancelled, with an audit line
    Approve (a person)  -> refused while a precondition fails
                        -> committed -> the browser asks for the run at once
                           (``action_run_approved_now``); otherwise the "run fixes"
                           cron, whose next call the form shows.
"""

import json

from markupsafe import Markup
from odoo import api, fields, models
from odoo.exceptions import UserError

from ..engine.actions import Plan
from .auto_heal_fix_run import OPEN_STATES, RunAudit, transition

#: The client action (static/src/js/run_after_approval.js) that runs approved Odoo fixes
#: in a request of their own, once the approval is committed.
RUN_AFTER_APPROVAL_TAG = "auto_heal_run_after_approval"
#: How many waiting plans one look at the queue checks again at most.
RECHECK_LIMIT = 50


def _notification(title, message, kind="info", sticky=False):
    """A notification, then close: the form the button was pressed on reloads."""
    return {"type": "ir.actions.client", "tag": "display_notification",
            "params": {"title": title, "message": message, "type": kind, "sticky": sticky,
                       "next": {"type": "ir.actions.act_window_close"}}}


class AutoHealFixRunReview(models.Model):
    _inherit = "auto_heal.fix.run"

    covered_incident_ids = fields.Many2many(
        "auto_heal.incident", "auto_heal_fix_run_covered_incident_rel", "run_id", "incident_id",
        string="Also Covers", readonly=True, copy=False,
        help="Other incidents that planned the same action on the same target: one open run "
             "per action and target; when it is done, they are resolved too.")
    action_label = fields.Char(string="Fix", compute="_compute_action_label",
                               help="The fix action, in words.")
    target_label = fields.Char(string="Target", readonly=True, copy=False,
                               help="What the fix changes, in words.")
    precondition_failed = fields.Boolean(
        compute="_compute_precondition_failed", store=True,
        help="A precondition of the plan does not hold: the run cannot be approved.")
    precondition_banner = fields.Html(compute="_compute_precondition_banner", sanitize=False)
    schedule_note = fields.Char(
        string="When It Runs", compute="_compute_schedule_note",
        help="When an approved fix runs in Odoo, and what keeps it from running.")
    cancel_reason = fields.Char(readonly=True, copy=False,
                                help="Why the run was cancelled without running.")

    @api.depends("action")
    def _compute_action_label(self):
        for run in self:
            action = run._engine_action()
            run.action_label = action.label if action else (run.action or False)

    @api.depends("plan_data", "state")
    def _compute_precondition_failed(self):
        for run in self:
            run.precondition_failed = run.state in ("draft", "pending") and bool(
                run._failed_preconditions())

    @api.depends("plan_data", "state")
    def _compute_precondition_banner(self):
        for run in self:
            failed = run._failed_preconditions() if run.state in ("draft", "pending") else []
            if not failed:
                run.precondition_banner = False
                continue
            items = Markup("").join(
                Markup("<li><strong>%s</strong>%s%s</li>") % (
                    p.description, Markup(": %s") % p.detail if p.detail else "",
                    Markup("<br/>What to do: %s") % p.remedy if p.remedy else "")
                for p in failed)
            run.precondition_banner = Markup(
                "<p class='mb-1'>%s</p><ul class='mb-1'>%s</ul><p class='mb-0'>%s</p>") % (
                self.env._("This fix cannot be approved: a precondition of its plan fails."),
                items,
                self.env._("The plan is checked again each time the run is opened for review "
                           "(and by the \"run fixes\" job)."))

    @api.depends("state", "runs_on")
    def _compute_schedule_note(self):
        for run in self:
            run.schedule_note = run._schedule_text() if run.state == "approved" else False

    # -- reading the plan ------------------------------------------------------------------

    def _stored_plan(self):
        self.ensure_one()
        try:
            return Plan.from_dict(json.loads(self.plan_data)) if self.plan_data else None
        except (TypeError, ValueError, AttributeError):
            return None

    def _failed_preconditions(self):
        plan = self._stored_plan()
        return plan.blocked_by if plan else []

    def _plan_is_noop(self):
        plan = self._stored_plan()
        return bool(plan) and not plan.changes

    def _schedule_text(self):
        """When this approved Odoo run runs, in words; why it may not."""
        self.ensure_one()
        if self.runs_on != "odoo":
            return self.env._("The watchdog of %(host)s runs it at its next cycle "
                              "(bin/auto-heal monitor, or run-approved).",
                              host=self.target_host or "-")
        # sudo: ir.cron and ir.module.module rows are read for a sentence, never changed
        cron = self.env.ref("auto_heal.ir_cron_run_fixes", raise_if_not_found=False)
        cron = cron.sudo() if cron else cron
        stuck = self.env["ir.module.module"].sudo().search(
            [("state", "in", ("to install", "to upgrade", "to remove"))], limit=5)
        if stuck:
            return self.env._(
                "Press Run Now: Odoo runs no scheduled action while modules wait in an "
                "install, upgrade or removal (%(modules)s), so the \"run fixes\" job will "
                "not run it.", modules=", ".join(f"{m.name}: {m.state}" for m in stuck))
        if not cron or not cron.active:
            return self.env._("Press Run Now: the \"Auto-Heal: run approved fixes\" job is "
                              "switched off.")
        return self.env._(
            "Runs with the \"Auto-Heal: run approved fixes\" job, next due %(when)s UTC "
            "(every %(number)s %(unit)s), or now with Run Now.",
            when=fields.Datetime.to_string(cron.nextcall), number=cron.interval_number,
            unit=cron.interval_type)

    # -- a queue without noise -----------------------------------------------------------

    @transition
    def _screen_plan(self):
        """Right after a successful plan: True when this run must not wait for anyone.

        A plan that changes nothing is cancelled (the target is already healthy);
        a run whose action and target another open run has is cancelled too, and
        that run covers its incident. Called by ``_submit``.
        """
        self.ensure_one()
        if self._plan_is_noop():
            plan = self._stored_plan()
            self._cancel(self.env._("nothing to change: %(summary)s", summary=plan.summary))
            return True
        twin = self._open_twin()
        if twin:
            twin._cover(self.incident_id)
            self._cancel(self.env._("fix run %(run)s already does this (same action and "
                                    "target)", run=twin.display_name))
            return True
        return False

    def _open_twin(self):
        """Another open run of the same action on the same target, or an empty recordset."""
        self.ensure_one()
        if not self.target or not self.action:
            return self.browse()
        return self.search([("id", "!=", self.id), ("action", "=", self.action),
                            ("target", "=", self.target), ("state", "in", OPEN_STATES)],
                           order="id", limit=1)

    def _cover(self, incidents):
        """This run also covers *incidents*: a note on each, resolved with the run."""
        self.ensure_one()
        new = incidents - self.covered_incident_ids - self.incident_id
        if not new:
            return
        self.write({"covered_incident_ids": [(4, incident.id) for incident in new]})
        for incident in new:
            incident._message_log(body=self.env._(
                "Fix run %(run)s of incident %(other)s changes the same target "
                "(%(target)s): it covers this incident too.", run=self.display_name,
                other=self.incident_id.display_name,
                target=self.target_label or self.target or "-"))

    @transition
    def _cancel(self, reason):
        """Cancel a run that never ran, with an audit line and a note on its incident.

        In automatic planning (context ``auto_heal_planning``) the run is dropped
        right after, and the incident gets no note: a scan must not fill its
        chatter with plans that were never queued.
        """
        self.ensure_one()
        audit = RunAudit()
        audit.record(f"{self.action}.cancel", self.target or "", "cancelled", 0.0,
                     actor=f"odoo:{self.env.user.login}", reason=reason,
                     incident=self.incident_id.fingerprint)
        self.write({"state": self._next_state("cancel"), "cancel_reason": reason[:500],
                    "ended_date": fields.Datetime.now(), "audit": self._audit_join(audit)})
        self._message_log(body=self.env._("Cancelled: %(reason)s.", reason=reason))
        if self.env.context.get("auto_heal_planning"):
            return
        self.incident_id._message_log(body=self.env._(
            "Fix run %(run)s was cancelled: %(reason)s.", run=self.display_name,
            reason=reason))

    @api.model
    def _incident_may_plan(self, incident, action_name):
        """Why *incident* gets no run of *action_name* (text), or False.

        A database-level action never runs for an incident of another database:
        the log of one Odoo holds the records of all its databases.
        """
        try:
            from ..engine.actions import get_action

            runs_on = get_action(action_name).runs_on
        except Exception:  # noqa: BLE001 - an action this Odoo does not know: the host's
            runs_on = "host"
        if runs_on == "odoo" and incident.database and incident.database != self.env.cr.dbname:
            return self.env._(
                "the incident is from database %(other)s: a database-level fix runs only "
                "in the Odoo of that database, never here (%(here)s)", other=incident.database,
                here=self.env.cr.dbname)
        return False

    @api.model
    def _open_covering_run(self, incident, action_name):
        return self.search([("covered_incident_ids", "in", incident.ids),
                            ("action", "=", action_name), ("state", "in", OPEN_STATES)],
                           limit=1)

    @transition
    def _recheck_plans(self):
        """Plan the waiting Odoo runs among *self* again; cancel those healthy again.

        The plan a person reads must be today's: a module fixed meanwhile, a cron
        switched on by hand, a precondition that holds now. Host runs are
        planned by their watchdog and are left as they are. Returns the runs
        still waiting.
        """
        for run in self.filtered(lambda r: r.state == "pending" and r.runs_on == "odoo"
                                 and r._engine_action()):
            before = (run.plan, run.preconditions, run.target, run.error)
            audit = run.audit
            error = run._make_plan()
            if not error and run._plan_is_noop():
                plan = run._stored_plan()
                run._cancel(self.env._("the target is healthy again, nothing to change: "
                                       "%(summary)s", summary=plan.summary))
                continue
            if (run.plan, run.preconditions, run.target, run.error) == before:
                run.audit = audit  # the same plan again: no new audit lines
        return self.filtered(lambda r: r.state == "pending")

    @api.model
    def _recheck_waiting(self, limit=RECHECK_LIMIT):
        """Check the plans of the waiting Odoo runs again (the queue, the overview, the cron)."""
        runs = self.search([("state", "=", "pending"), ("runs_on", "=", "odoo")],
                           order="id", limit=limit)
        return runs._recheck_plans()

    def _resolve_covered_incidents(self):
        """A done run resolves the incidents it covers, like its own."""
        self.ensure_one()
        for incident in self.covered_incident_ids.filtered(
                lambda i: i.state in i.OPEN_STATES):
            incident.with_context(mail_notrack=True).write({"state": "resolved"})
            incident._message_log(body=self.env._(
                "Resolved by fix run %(run)s (%(action)s on %(target)s), verified.",
                run=self.display_name, action=self.action_label or self.action,
                target=self.target_label or self.target or "-"))

    def write(self, vals):
        replan = self.browse()
        if "params" in vals:
            replan = self.filtered(lambda run: run.state in ("pending", "stale")
                                   and (run.params or "{}") != (vals["params"] or "{}"))
        result = super().write(vals)
        for run in replan:
            run._replan_after_params()
        return result

    def _replan_after_params(self):
        """A person changed the parameters of a waiting run: its plan was made again
        (the approvals' write did it, _request_changed_by_hand); say so, screen it."""
        self.ensure_one()
        error = self.error if self.state in ("pending", "stale") else False
        self._message_log(body=self.env._(
            "Parameters changed by %(user)s: %(params)s. Planned again%(outcome)s.",
            user=self.env.user.name, params=self.params,
            outcome=self.env._(", but the plan failed: %(error)s", error=error) if error
            else ""))
        if not error:
            self._screen_plan()

    # -- buttons -------------------------------------------------------------------------

    def action_review(self):
        """Open the run for review, its plan checked again first."""
        self.ensure_one()
        if self.state == "pending" and self.env.user.has_group(
                "auto_heal.group_auto_heal_manager"):
            self._recheck_plans()
        return {
            "type": "ir.actions.act_window",
            "res_model": self._name,
            "res_id": self.id,
            "view_mode": "form",
            "views": [(False, "form")],
            "target": "current",
        }

    @api.model
    def action_open_waiting(self):
        """The "Waiting Approval" menu: the plans are checked again, then listed."""
        if self.env.user.has_group("auto_heal.group_auto_heal_manager"):
            self._recheck_waiting()
        return self.env["ir.actions.act_window"]._for_xml_id(
            "auto_heal.action_auto_heal_fix_run_pending")

    def action_approve(self):
        self._check_manager()
        self._require_state(("pending", "stale"))
        self._recheck_plans()
        self._require_state(("pending", "stale"))  # cancelled meanwhile: nothing to approve
        blocked = self.filtered("precondition_failed")
        if blocked:
            failed = blocked[0]._failed_preconditions()
            raise UserError(self.env._(
                "Fix run %(run)s cannot be approved: %(why)s.", run=blocked[0].display_name,
                why="; ".join(f"{p.description}: {p.detail}" if p.detail else p.description
                              for p in failed)))
        super().action_approve()
        odoo_runs = self.filtered(lambda r: r.runs_on == "odoo")
        if odoo_runs:
            # The approval commits with this request; the browser then asks for the
            # run in a request of its own (the "run fixes" cron remains the fallback).
            return {"type": "ir.actions.client", "tag": RUN_AFTER_APPROVAL_TAG,
                    "params": {"run_ids": odoo_runs.ids}}
        return _notification(
            self.env._("Approved"),
            self.env._("The watchdog of %(host)s runs it at its next cycle and reports back "
                       "here.", host=", ".join(sorted(set(self.mapped("target_host")) - {False}))
                       or "-"))

    def action_run_approved_now(self):
        """Run the approved Odoo runs among *self* now (the browser, after Approve)."""
        self._check_manager()
        runs = self.filtered(lambda r: r.state == "approved" and r.runs_on == "odoo")
        for run in runs:
            if run._try_lock():
                run._execute()
        return self._outcome_notification(runs)

    def action_run(self):
        super().action_run()
        return self._outcome_notification(self)

    def _outcome_notification(self, runs):
        states = dict(self._fields["state"]._description_selection(self.env))
        if not runs:
            return _notification(self.env._("Nothing ran"),
                                 self.env._("No approved fix was waiting to run in Odoo."))
        lines = [f"{run.display_name}: {states.get(run.state, run.state)}"
                 + (f" ({run.error})" if run.error and run.state != "done" else "")
                 for run in runs]
        ok = all(run.state == "done" for run in runs)
        return _notification(self.env._("Fix done") if ok else self.env._("Fix not done"),
                             "\n".join(lines), "success" if ok else "danger", sticky=not ok)
