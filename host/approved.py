"""Host fix runs approved in Odoo: data from Odoo, power from this host.

``bin/auto-heal run-approved`` and ``monitor`` (its hand-over) both run the
runs they claim here (readme/SECURITY.md)::

    claim from Odoo {"id", "action", "params", "incident", "target_host",
                     "plan_hash", "host_plan_hash", "plan_only"}
        │
        ├─ params: validate(source="odoo")  -> a host parameter? refused, reported failed
        │
        ├─ + this host's parameters (HostParams.for_action): [fixes] roots,
        │    [actions.NAME], [odoo.restart]/[postgresql.restart] with the probe's
        │    url/dsn, the config files [odoo] config and [drift] files for
        │    restore_config, the versions folder
        │
        ├─ plan_hash: the approved request (action, params, target host)?
        │    not it -> stale, reported with this host's plan; nothing runs
        ├─ plan here (a dry run); plan_only -> the plan is reported for approval
        │
        └─ runner: plan again, compare with the approved host plan (host_plan_hash, or
             the plan just made), budget, backup, apply, verify, rollback -> record
             -> reported (a plan that differs: stale, nothing touched)

What a person approved in Odoo is what runs here (engine/planhash.py): Odoo
vouches for the request, and once this host reported its plan (a stale report,
or a plan-only claim), for that plan too; the runner refuses any other.
"""

import os
import uuid
from datetime import datetime, timezone

from engine.errors import EngineError
from host import config as cfg

#: Actions that touch files: they need this host's roots.
FILE_ACTIONS = ("remove_deprecated_cron_fields", "fix_permissions", "restore_config")


class HostParams:
    """This host's parameters of the fix actions it runs for Odoo."""

    def __init__(self, roots=(), versions_dir="", actions=None, restart=None, configs=()):
        self.roots = [os.path.abspath(r) for r in roots]
        self.versions_dir = versions_dir
        self.actions = dict(actions or {})
        #: {"odoo": {...}, "postgresql": {...}}: how each service restarts here
        self.restart = dict(restart or {})
        #: the config files restore_config may put back
        self.configs = [os.path.abspath(c) for c in configs]

    @classmethod
    def from_config(cls, config, roots=(), versions_dir=""):
        """From the watchdog's TOML config (:mod:`host.config`), plus the command line's."""
        restart = {}
        for service in ("odoo", "postgresql"):
            table = config[service]["restart"]
            if not table["via"]:
                continue
            params = {"via": table["via"], "timeout": table["timeout"]}
            for key in ("unit", "container", "datadir", "pg_ctl", "pg_log", "cluster"):
                if table.get(key):
                    params[key] = table[key]
            if table["command"]:
                params["command"] = list(table["command"])
            if service == "odoo":
                params["url"] = config["odoo"]["url"]
            elif config["postgresql"]["dsn"]:
                params["dsn"] = config["postgresql"]["dsn"]
            restart[service] = params
        return cls(roots=list(roots) + list(config["fixes"]["roots"]),
                   versions_dir=versions_dir or cfg.versions_dir(config),
                   actions=config["actions"], restart=restart,
                   configs=cfg.watched_files(config))

    def for_action(self, action, data):
        """The parameters of a run of *action*: *data* from Odoo (already free of host
        parameters) plus this host's; :class:`EngineError` when this host lacks one."""
        from engine.actions.params import declared

        names = declared(action)
        host = dict(self.actions.get(action.name, {}))
        if "roots" in names and action.name in FILE_ACTIONS:
            if not self.roots and not host.get("roots"):
                raise EngineError(f"{action.name} touches files: this host has no roots "
                                  "([fixes] roots, or --root)")
            host.setdefault("roots", list(self.roots))
        if action.name == "restart_service":
            service = data.get("service")
            table = self.restart.get(service)
            if not table:
                raise EngineError(f"this host restarts no {service or 'service'}: configure "
                                  f"[{service or 'SERVICE'}.restart] via")
            host = {**table, **host}
        if action.name == "restore_config":
            host["versions_dir"] = self.versions_dir
            host["config"] = self._config_of_version(data.get("version"))
        return {**data, **host}

    def _config_of_version(self, ident):
        from engine import backup

        if not self.versions_dir:
            raise EngineError("restore_config: this host keeps no config versions")
        version = backup.find_version(self.versions_dir, str(ident or ""))
        if version.source not in self.configs:
            raise EngineError(f"restore_config: version {version.name} is of {version.source}, "
                              "which this host does not watch ([odoo] config, [drift] files)")
        return version.source


def not_run(claim, actor, reason):
    """A record for a claimed run that could not start (Odoo stores it as failed)."""
    from engine.actions.runner import FixAttempt

    now = datetime.now(timezone.utc).isoformat(timespec="seconds")
    return FixAttempt(run_id=uuid.uuid4().hex[:12], action=str(claim.get("action") or ""),
                     target="", actor=actor, incident=str(claim.get("incident") or ""),
                     params={}, state="blocked", error=reason, started=now, ended=now)


def _stale(claim, planned, context, reason):
    """The record of a claim refused because it is not what was approved."""
    planned.state, planned.error = "stale", reason
    planned.incident = str(claim.get("incident") or "")
    planned.ended = datetime.now(timezone.utc).isoformat(timespec="seconds")
    if context.audit is not None:
        context.audit.record(f"{planned.action}.stale", planned.target, "stale", 0.0,
                             actor=context.actor, run_id=planned.run_id,
                             incident=planned.incident, reason=reason,
                             approved_hash=str(claim.get("plan_hash") or ""),
                             plan_hash=planned.plan_hash)
    return planned


def run_claim(claim, host_params, store, context, budget):
    """Run one claimed fix run here; its :class:`engine.actions.runner.FixAttempt`, saved."""
    import dataclasses
    import json

    from engine.actions.base import ActionError, get_action
    from engine.actions.params import validate
    from engine.actions.runner import execute
    from engine.planhash import request_hash, short

    actor = context.actor
    params = claim.get("params") or {}
    if isinstance(params, str):
        try:
            params = json.loads(params)
        except ValueError:
            return store.save(not_run(claim, actor, "params are not JSON"))
    try:
        action = get_action(str(claim.get("action")))
        if action.runs_on != "host":
            raise ActionError(f"{action.name} runs inside Odoo, not on the host")
        data = validate(action, params, source="odoo")  # a host parameter: refused
        merged = host_params.for_action(action, data)
    except EngineError as exc:
        return store.save(not_run(claim, actor, str(exc)))
    incident = str(claim.get("incident") or "")
    quiet = dataclasses.replace(context, audit=None)
    planned = execute(action.name, quiet, merged, incident=incident, dry_run=True)
    approved_request = claim.get("plan_hash")
    if approved_request:
        requested = request_hash(claim.get("action"), params, claim.get("target_host"))
        if requested != approved_request:
            return store.save(_stale(claim, planned, context, (
                f"the claim is not the request approved in Odoo (approved "
                f"{short(approved_request)}, claimed {short(requested)}): nothing was "
                "changed; approve it again")).masked())
    if claim.get("plan_only"):  # the host's own plan, for a person to approve
        record = execute(action.name, context, merged, incident=incident, dry_run=True)
        return store.save(record.masked())
    history = ()
    if budget is not None and planned.target:
        history = store.history(action.name, planned.target)
    if "timeout" in merged:
        context.timeout = float(merged["timeout"])
    # the host plan a person approved, else the plan just made: what runs is that plan
    approved = claim.get("host_plan_hash") or planned.plan_hash or None
    record = execute(action.name, context, merged, incident=incident, budget=budget,
                     history=history, approved_hash=approved)
    if record.state == "stale" and claim.get("host_plan_hash"):
        record.error = (f"the plan on this host differs from the host plan approved in Odoo "
                        f"(approved {short(approved)}, now {short(record.plan_hash)}): "
                        "nothing was changed; approve the new plan")
    return store.save(record.masked())
