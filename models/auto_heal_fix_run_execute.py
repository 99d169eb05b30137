"""Running an approved fix run in Odoo: the engine's runner in a savepoint, its budget,
the outcome written back through the state machine (:mod:`engine.fixrun`), rollback.

The hooks give the engine's Odoo actions what only Odoo knows (a registry that is
ready, the asset bundles).
"""

import json
import logging
import os
import time
from datetime import timedelta

from odoo import api, fields, models
from odoo.exceptions import UserError
from odoo.tools import SQL, config

from ..engine import fixrun
from ..engine.actions import ActionError, Context, FixAttempt, get_action
from ..engine.actions.params import validate
from ..engine.actions.runner import execute, rollback_run
from .auto_heal_fix_run import STATES, RunAudit, _utc_naive, transition

_logger = logging.getLogger(__name__)


class AutoHealFixRunExecute(models.Model):
    _inherit = "auto_heal.fix.run"

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
            run._store_record(FixAttempt(
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
        self.write({"state": self._next_state("start"), "started_date": fields.Datetime.now(),
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
            record = FixAttempt(run_id="", action=self.action or "", target=self.target or "",
                               actor=f"odoo:{self.env.user.login}", params=params,
                               state="blocked", error=f"{type(exc).__name__}: {exc}")
        finally:
            self.env.invalidate_all()
        if not record.durations:
            record.durations = {"total": round(time.monotonic() - started, 6)}
        self._store_record(record, audit)
        return record

    @transition
    def _store_record(self, record, audit=None, source="odoo", handed_over=False):
        """Write an engine attempt onto the run: state, plan, output, timings, effects.

        The state comes from the state machine (:mod:`engine.fixrun`): the verb
        for what the attempt ended in. *handed_over*: the run is the closed
        record of what a watchdog did on its own; it takes the attempt's outcome.
        """
        self.ensure_one()
        escalated = bool(record.escalate)
        output, error = record.output or "", record.error or ""
        if handed_over:
            state = fixrun.handed_over_state(record.state)
        else:
            verb = fixrun.attempt_verb(record.state, escalated)
            if verb == "go_stale":  # the plan changed since it was approved: ask again
                return self._become_stale(record, audit, source)
            if source == "watchdog" and self.plan_only_claim and record.state == "planned":
                return self._receive_host_plan(record, audit)
            state = self._next_state(verb)
            if verb == "retry_later":  # too soon: wait for the growing delay, then try again
                self.write({"state": state, "started_date": False, "error": error,
                            "audit": self._audit_join(audit) if audit else self.audit})
                self._message_log(body=self.env._("Not run yet: %(reason)s", reason=error))
                return
        if record.state in ("blocked", "planned"):
            error = error or self.env._("the run only planned")
        elif state == "failed" and record.state not in ("failed", "blocked", "planned",
                                                        "refused"):
            error = error or f"unexpected engine state {record.state!r}"
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
        """The engine's FixAttempt of a done run, for a rollback."""
        self.ensure_one()
        try:
            plan = json.loads(self.plan_data or "{}")
            backup = json.loads(self.backup_manifest or "{}")
        except ValueError:
            plan, backup = {}, {}
        if not plan:
            raise UserError(self.env._("Fix run %(run)s has no stored plan to roll back from.",
                                       run=self.display_name))
        return FixAttempt(run_id=self.engine_run_id or str(self.id), action=self.action,
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
            "state": self._next_state("roll_back"),
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
