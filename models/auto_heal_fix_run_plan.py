"""Planning a fix run: parameters from its incident, the engine's plan, the policy.

The state machine is :mod:`engine.fixrun`; approvals are in
models/auto_heal_fix_run_approval.py.
"""

import json
import logging

from odoo import api, fields, models

from ..engine.actions import ActionError, Plan, get_action
from ..engine.actions.params import capture_map, host_params_text, validate
from ..engine.actions.runner import execute
from ..engine.fixrun import OPEN_STATES
from ..engine.planhash import request_hash
from ..engine.policy import needs_approval
from .auto_heal_fix_run import _AUTOMATIC, RunAudit, transition

_logger = logging.getLogger(__name__)


class AutoHealFixRunPlan(models.Model):
    _inherit = "auto_heal.fix.run"

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
                vals["state"] = run._next_state("queue")
                vals.update(run._waiting_vals())
            else:
                vals.update(state=run._next_state("approve_by_policy"), auto_approved=True,
                            approved_date=fields.Datetime.now(), approved_hash=run.plan_hash)
            run.write(vals)
            run._message_log(body=self.env._(
                "Planned. %(decision)s: %(reason)s.",
                decision=self.env._("Waiting for approval") if approval
                else self.env._("Approved by the policy"), reason=reason))
