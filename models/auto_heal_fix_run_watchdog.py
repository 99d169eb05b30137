"""The watchdog's API (JSON-RPC, as an Auto-Heal Manager): claim the host's approved
runs, report their outcome with the claim token (readme/SECURITY.md).
"""

import hmac
import logging
import secrets
import time

from odoo import api, fields, models
from odoo.exceptions import UserError
from odoo.tools import SQL

from ..engine.actions import FixAttempt
from ..engine.budget import decide
from .auto_heal_fix_run import (
    RunAudit,
    _token_hash,
    transition,
)

_logger = logging.getLogger(__name__)


class AutoHealFixRunWatchdog(models.Model):
    _inherit = "auto_heal.fix.run"

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
                    run.write({"state": run._next_state("start"),
                               "started_date": fields.Datetime.now()})
                    run._store_record(FixAttempt(
                        run_id="", action=run.action, target=run.target or "",
                        actor=f"odoo:{self.env.user.login}", state="refused",
                        escalate=True, error=decision.reason))
                continue
            token = secrets.token_urlsafe(32)
            run.write({"state": run._next_state("start"), "claimed_by": host,
                       "claimed_uid": self.env.uid, "started_date": fields.Datetime.now(),
                       "error": False})
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
        """Store the outcome of a host run: *record* is ``FixAttempt.to_dict()``.

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
        engine_record = FixAttempt.from_dict(record)
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
