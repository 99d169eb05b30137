"""Acting on a decision: restarts within the restart policy (restart_service), escalation,
reminders, reset requests, and healthy again. A part of :class:`host.monitor.Monitor`,
whose docstring draws the cycle.
"""

import contextlib
import json
import os
import signal
import time

from engine import drift as drift_mod
from engine.errors import EngineError
from engine.probes import probe_process
from engine.watchdog import (
    FAILING,
    OK,
)
from host import config as cfg

from .common import (
    LOG,
    SERVICES,
    mtime,
    reset_request_path,
)


class RestartMixin:
    """The restarts of the Monitor."""

    def act(self, decision, now):
        if self.last_decision is None or (decision.action, decision.reason) != (
                self.last_decision.action, self.last_decision.reason):
            log = LOG.info if decision.action == "none" else LOG.warning
            log("decision: %s: %s", decision.action, decision.reason)
        self.last_decision = decision
        if decision.action == "restart_postgresql":
            self.restart("postgresql", decision.reason, now)
        elif decision.action == "restart_odoo":
            self.restart("odoo", decision.reason, now)
        if decision.action == "alert":
            self.alert("readiness", "high", decision.reason, now, kind="odoo_db_unreachable",
                       subject=self.config["odoo"]["url"])
        else:
            self.clear_alert("readiness", "Odoo reaches its database again")
        pg = self.trackers["postgresql"].status
        if pg == OK:
            self.policies["postgresql"].record_healthy(now)
            self._forget("wait:postgresql")
        elif pg == FAILING:
            self.policies["postgresql"].record_unhealthy()
        if decision.healthy:
            self.policies["odoo"].record_healthy(now)
            self.odoo.setdefault("healthy_since", None)
            self.odoo["healthy_since"] = self.odoo["healthy_since"] or now
            self.odoo["restart_failed"] = False
            self._forget("wait:odoo")
            for key in [k for k in self.alerts if k.startswith(("down:", "config:"))]:
                self.clear_alert(key)
        else:
            self.policies["odoo"].record_unhealthy()
            self.odoo["healthy_since"] = None

    def _restart_params(self, service):
        conf = self.config[service]["restart"]
        params = {"service": service, "via": conf["via"], "timeout": conf["timeout"]}
        for key in ("unit", "container", "datadir", "pg_ctl", "pg_log", "cluster"):
            if conf.get(key):
                params[key] = conf[key]
        if conf["command"]:
            params["command"] = list(conf["command"])
        if service == "odoo":
            params["url"] = self.config["odoo"]["url"]
        else:
            params["dsn"] = self.config["postgresql"]["dsn"]
        return params

    def _event_kind(self, service, reason):
        if service == "postgresql":
            return "postgresql_down"
        if "did not finish starting" in reason:
            return "odoo_startup_timeout"
        if "hung" in reason:
            return "odoo_hung"
        return "odoo_down"

    def restart(self, service, reason, now):
        """Restart *service* within its restart policy, or escalate."""
        conf = self.config[service]["restart"]
        kind = self._event_kind(service, reason)
        if not conf["via"]:
            self.alert(f"down:{service}", "critical", f"{reason}; [{service}.restart] has no "
                       "method (via): not restarted, a person must act", now, kind=kind,
                       subject=service)
            return None
        policy = self.policies[service]
        was_escalated = policy.escalated
        verdict = policy.may_restart(now)
        if not verdict.allowed:
            if verdict.escalate and not was_escalated:
                self.escalate(service, verdict.reason, reason, now)
            elif verdict.escalate:
                self.remind(service, now)
            else:
                self._once(f"wait:{service}", LOG.info,
                           f"{service}: restart delayed, {verdict.reason}")
            return None
        if service == "odoo":
            self.check_drift(now, force=True)  # a broken config is restored first
            self.restore_refused_config(now)
            path = self.config["odoo"]["config"]
            if path and (self.baseline.get(path) or {}).get("state") == "broken":
                # Odoo cannot start with a config that does not parse: a restart would
                # only burn the budget. Say so, and wait for the restore or a person.
                self.alert(f"config:{path}", "critical", f"{reason}, and {path} does not "
                           "parse: Odoo is not restarted until the config is fixed or "
                           "restored", now, kind="config_broken", subject=path)
                return None
        incident = self.event_incident(kind, "high", reason, subject=service, now=now)
        history = list(policy.restarts)
        policy.record_restart(now)
        self._count("restarts", service)
        self.commit()  # write-ahead: a watchdog killed during the restart still counts it
        if service == "odoo" and conf["via"] == "command":
            self._stop_odoo_process(conf["stop_timeout"])
        LOG.warning("restarting %s via %s (attempt %d in the window): %s", service,
                    conf["via"], len(history) + 1, reason)
        with self.notifier.keepalive(conf["timeout"] + 60):
            record = self._run("restart_service", self._restart_params(service),
                               incident=incident["fingerprint"], budget=policy.budget,
                               history=history, timeout=conf["timeout"])
        level = LOG.info if record.state == "done" else LOG.error
        level("restart of %s: run %s %s%s", service, record.run_id, record.state,
              ": " + (record.error or record.output).split("\n")[-1][:300]
              if (record.error or record.output) else "")
        if service == "odoo":
            self.odoo.update(startup_done=False, startup_began=self.clock(),
                             restarted_at=self.clock(), restart_failed=record.state != "done",
                             pid=None, started=None, exited_at=None, lifetime=None)
            for name in ("startup", "liveness", "readiness"):
                self.trackers[name].reset()
            self.trackers["process"].reset()
        else:
            self.trackers["postgresql"].reset()
            self._observe(self.trackers["postgresql"], record.state == "done", self.clock(),
                          "verified after the restart" if record.state == "done"
                          else record.error)
        self.emit({"kind": "restart", "service": service, "reason": reason,
                   "incident": incident, "record": record.to_dict()})
        self.commit()
        return record

    def _stop_odoo_process(self, timeout):
        """Before a ``command`` restart: stop the old Odoo (TERM+CONT, then KILL).

        systemd and docker stop the old process themselves; a command (which
        only starts Odoo) would find the port taken by a hung process. Only
        the process the probe saw, with the same start time, is signalled.
        """
        info = self.last_process
        if not info or not info.alive or info.zombie or not info.pid:
            return
        current = probe_process(pid=info.pid)
        if not current.alive or current.zombie or current.started is None or \
                info.started is None or abs(current.started - info.started) > 1:
            return
        start = time.monotonic()
        result = "stopped"
        with contextlib.suppress(ProcessLookupError):
            os.kill(info.pid, signal.SIGTERM)
            os.kill(info.pid, signal.SIGCONT)  # a stopped process handles TERM only when running
        while time.monotonic() - start < timeout:
            now_info = probe_process(pid=info.pid)
            if not now_info.alive or now_info.zombie:
                break
            time.sleep(0.1)
        else:
            result = "killed"
            with contextlib.suppress(ProcessLookupError):
                os.kill(info.pid, signal.SIGKILL)
            for _ in range(50):
                now_info = probe_process(pid=info.pid)
                if not now_info.alive or now_info.zombie:
                    break
                time.sleep(0.1)
        LOG.warning("stopped the old Odoo process pid %s (%s) before the restart", info.pid,
                    "SIGTERM" if result == "stopped" else f"SIGKILL after {timeout:g}s")
        self.audit.record("odoo.stop", f"pid {info.pid}", result, time.monotonic() - start,
                          reason="restart via command")

    def escalate(self, service, budget_reason, reason, now):
        path = self.config.get("_path") or "FILE"
        message = (f"{service}: {reason}; restarts stopped ({budget_reason}). The watchdog "
                   f"stays escalated until a person runs `bin/auto-heal reset --config {path}`")
        LOG.error("ESCALATED: %s", message)
        self._count("escalations", service)
        incident = self.event_incident("watchdog_escalated", "critical", message,
                                       subject=service, now=now)
        self.emit({"kind": "escalation", "service": service, "reason": reason,
                   "incident": incident})
        self.audit.record("watchdog.escalate", service, "escalated", 0.0, reason=reason,
                          budget=budget_reason)
        self.alerts[f"escalated:{service}"] = now
        self._hook({"event": "escalated", "service": service, "severity": "critical",
                    "message": message})
        self.commit()

    def remind(self, service, now):
        key = f"escalated:{service}"
        last = self.alerts.get(key) or 0
        if now - last >= self.config["alert"]["repeat"]:
            self.alerts[key] = now
            reason = self.policies[service].escalated_reason
            LOG.error("still escalated: %s needs a person (%s); `bin/auto-heal reset` once "
                      "it is handled", service, reason)
            self._hook({"event": "escalated", "service": service, "severity": "critical",
                        "message": f"still escalated: {reason}", "reminder": True})

    def take_reset_request(self, now):
        path = reset_request_path(self.config)
        try:
            with open(path, encoding="utf-8") as handle:
                data = json.load(handle)
        except FileNotFoundError:
            return
        except (OSError, ValueError):
            data = {}
        services = [s for s in data.get("services") or SERVICES if s in SERVICES]
        for service in services:
            self.reset_service(service, data.get("by") or "?")
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        self.commit()

    def reset_service(self, service, by):
        policy = self.policies[service]
        was = policy.escalated
        policy.reset()
        self.alerts.pop(f"escalated:{service}", None)
        self.alerts.pop(f"down:{service}", None)
        self._forget(f"wait:{service}")
        LOG.warning("reset by %s: %s restarts allowed again%s", by, service,
                    " (it was escalated)" if was else "")
        self.audit.record("watchdog.reset", service, "reset", 0.0, actor=f"cli:{by}",
                          was_escalated=was)

    def mark_good(self, now, decision):
        """Configs Odoo has been healthy with for [drift] good_after seconds are good."""
        if not decision.healthy:
            return
        since = self.odoo.get("healthy_since")
        if since is None or now - since < self.config["drift"]["good_after"]:
            return
        loaded_at = self.odoo.get("started") or self.odoo.get("restarted_at") or \
            self.odoo.get("startup_began") or 0
        for path in cfg.watched_files(self.config):
            entry = self.baseline.get(path)
            if not entry or entry.get("state") != "ok" or \
                    entry.get("good_sha256") == entry.get("sha256"):
                continue
            if path == self.config["odoo"]["config"] and mtime(path) > loaded_at + 1:
                continue  # Odoo runs with what it loaded at its start, not this version
            try:
                version = drift_mod.mark_good(path, self.baseline, self.versions)
            except EngineError as exc:
                self._once(f"good:{path}", LOG.error, f"cannot keep {path} as good: {exc}")
                continue
            entry["good_sha256"] = version.sha256
            LOG.info("last known good: %s (sha256 %s)", path, version.sha256[:12])
