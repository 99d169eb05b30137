"""``bin/auto-heal monitor``: measure, decide, act, hand over; then sleep and again.

One cycle, in this order::

    reset request? ──> probes ──> config drift ──> decide (engine.watchdog) ──> act
         │               │            │                                          │
         │     PostgreSQL, process,   a broken odoo.conf is          restart PostgreSQL or
         │     startup / liveness /   restored (restore_config)      Odoo (restart_service)
         │     readiness, disk, log   when [fixes] auto allows       within the restart
         │                                                           policy, else escalate
         v
    scan the logs (incremental cursors) ──> host fixes [fixes] auto allows ──> spool
         ──> hand the spool over to Odoo when it answers ──> save the state (atomic)

What the monitor decides comes from :func:`engine.watchdog.decide_action` and
:class:`engine.watchdog.RestartPolicy`; every change goes through
:func:`engine.actions.runner.execute` (plan, budget, backup, apply, verify,
audit). The monitor itself only measures, keeps state and writes the log.

Crash safety: everything the monitor must not forget lives in one state file
(:class:`host.state.State`, written atomically). A restart attempt is saved
*before* the restart runs (a watchdog killed mid-restart still counts it).
Spool entries are first saved in the state's ``outbox`` together with the log
cursors and counters that produced them, then appended to the spool, then
dropped from the outbox; a watchdog killed in between appends them at its next
start (an entry already in the spool is recognised by its id). Odoo stores each
entry id once, so nothing is lost and nothing counts twice.
"""

import contextlib
import json
import logging
import logging.handlers
import os
import signal
import socket
import subprocess
import threading
import time
from dataclasses import asdict
from datetime import datetime, timezone

from engine import drift as drift_mod
from engine import health
from engine.audit import AuditLog
from engine.budget import BudgetPolicy
from engine.errors import EngineError, LogSourceError
from engine.fingerprint import fingerprint
from engine.probes import http_probe, probe_process
from engine.secrets import MaskingFormatter, mask_values
from engine.spool import Spool, SpoolError
from engine.watchdog import (
    FAILING,
    OK,
    UNKNOWN,
    Observation,
    ProbeSpec,
    ProbeTracker,
    RestartPolicy,
    decide_action,
)

from . import config as cfg
from . import host_checks
from .sdnotify import Notifier

LOG = logging.getLogger("auto_heal.watchdog")
LOG_FORMAT = "%(asctime)s %(process)d %(levelname)s auto_heal.watchdog: %(message)s"
PROBES = ("startup", "liveness", "readiness", "postgresql", "process")
SERVICES = ("odoo", "postgresql")
HANDOVER_MODEL = "auto_heal.handover"
#: How often the patterns are pulled from Odoo while it answers (seconds).
PATTERNS_REFRESH = 600.0
#: After this many failed cycles in a row the watchdog exits (systemd restarts it).
MAX_FAILED_CYCLES = 10
#: Spool entry kinds.
KINDS = ("incident", "fix_run", "restart", "drift", "escalation", "alert", "health")


def _iso(moment):
    """Naive UTC, as the engine's incidents carry their log timestamps."""
    return datetime.fromtimestamp(moment, timezone.utc).replace(tzinfo=None).isoformat(
        sep=" ", timespec="seconds")


def _mtime(path):
    try:
        return os.stat(path).st_mtime
    except OSError:
        return 0.0


class ScanStopped(BaseException):
    """Raised by the SIGTERM handler in the middle of a log scan: the scan stops,
    what was read whole is kept, the rest is read at the next start."""


def stop_on_signal(monitor):
    """A SIGTERM/SIGINT handler: stop after the cycle, or at once in a scan."""
    def stop(signum, frame):
        monitor.stop_event.set()
        if monitor.scanning:
            raise ScanStopped()
    return stop


def setup_logging(config, verbose=False):
    """Log to ``[watchdog] log_file`` (``-``: stderr), one line per event.

    A WatchedFileHandler reopens the file after logrotate moved it, so the
    logrotate snippet needs no copytruncate and no signal.
    """
    path = config["watchdog"]["log_file"]
    level = getattr(logging, config["watchdog"]["log_level"].upper())
    LOG.setLevel(logging.DEBUG if verbose else level)
    LOG.propagate = False
    for handler in list(LOG.handlers):
        LOG.removeHandler(handler)
        handler.close()
    handlers = []
    if path == "-":
        handlers.append(logging.StreamHandler())
    else:
        try:
            os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
            handlers.append(logging.handlers.WatchedFileHandler(path, encoding="utf-8"))
        except OSError as exc:
            raise EngineError("cannot write the watchdog log %s: %s (set [watchdog] log_file)"
                              % (path, exc.strerror or exc)) from None
        if verbose:
            handlers.append(logging.StreamHandler())
    for handler in handlers:
        handler.setFormatter(MaskingFormatter(LOG_FORMAT))
        LOG.addHandler(handler)
    return handlers


def reset_request_path(config):
    return os.path.join(cfg.state_dir(config), "reset.request")


def restart_policy(config):
    r = config["restart"]
    return BudgetPolicy(max_runs=r["max_restarts"], window=r["window"],
                        first_delay=r["first_delay"], factor=max(1.0, r["factor"]),
                        max_delay=r["max_delay"])


class Monitor:
    """The watchdog for one Odoo (and its PostgreSQL), over one state file."""

    def __init__(self, config, state, *, notifier=None, patterns=None, clock=time.time):
        from engine.actions.store import RunStore

        self.config = config
        self.state = state
        self.wd = state.watchdog
        self.notifier = notifier or Notifier({})
        self.clock = clock
        self.host = config["watchdog"]["host"] or socket.gethostname()
        self.spool = Spool(cfg.spool_path(config),
                           max_bytes=config["handover"]["spool_max_mb"] * 1024 * 1024,
                           on_overflow=self._spool_overflow)
        self.audit = AuditLog(cfg.audit_path(config), actor=f"watchdog:{self.host}")
        self.store = RunStore(os.path.join(cfg.state_dir(config), "runs"))
        self.versions = cfg.versions_dir(config)
        self.patterns_override = patterns
        self._scanner = None
        self._patterns_key = None
        self.stop_event = threading.Event()
        #: True while the logs are read: SIGTERM then stops the read (ScanStopped).
        self.scanning = False
        self.last_process = None
        self.last_decision = None
        self._http_failed_now = False
        self._worker = None
        self._worker_result = None
        self._load_state()

    # -- state ---------------------------------------------------------------------------

    def _load_state(self):
        wd = self.wd
        wd.setdefault("version", 1)
        saved = wd.setdefault("probes", {})
        self.trackers = {}
        for name in PROBES:
            conf = self.config["probes"][name]
            spec = ProbeSpec(name, period=conf["period"], timeout=conf["timeout"],
                             failure_threshold=conf["failure_threshold"],
                             success_threshold=conf["success_threshold"])
            tracker = ProbeTracker(spec)
            for key in ("status", "failures", "successes", "last_run", "last_detail",
                        "changed_at"):
                if key in saved.get(name, {}):
                    setattr(tracker, key, saved[name][key])
            self.trackers[name] = tracker
        policies = wd.setdefault("restart", {})
        self.policies = {}
        for service in SERVICES:
            policy = RestartPolicy(restart_policy(self.config),
                                   healthy_reset=self.config["restart"]["healthy_reset"])
            old = policies.get(service) or {}
            policy.restarts = [float(t) for t in old.get("restarts", [])]
            policy.escalated = bool(old.get("escalated"))
            policy.escalated_reason = old.get("escalated_reason", "")
            policy.healthy_since = old.get("healthy_since")
            self.policies[service] = policy
        self.odoo = wd.setdefault("odoo", {})
        self.odoo.setdefault("startup_done", False)
        self.baseline = wd.setdefault("drift", {})
        self.alerts = wd.setdefault("alerts", {})
        self.notes = wd.setdefault("notes", {})
        self.outbox = wd.setdefault("outbox", [])
        counters = wd.setdefault("counters", {})
        counters.setdefault("cycles", 0)
        for key in ("restarts", "findings", "fixes", "handover", "spooled", "escalations"):
            counters.setdefault(key, {})
        self.counters = counters

    def _sync_state(self):
        self.wd["probes"] = {name: {k: v for k, v in t.to_dict().items() if k != "spec"}
                             for name, t in self.trackers.items()}
        self.wd["restart"] = {service: {
            "restarts": p.restarts, "escalated": p.escalated,
            "escalated_reason": p.escalated_reason, "healthy_since": p.healthy_since}
            for service, p in self.policies.items()}

    def save(self):
        self._sync_state()
        self.state.save()

    def _count(self, group, key, n=1):
        bucket = self.counters.setdefault(group, {})
        bucket[key] = bucket.get(key, 0) + n

    # -- the spool, through the state's outbox -----------------------------------------------

    def emit(self, entry):
        """Queue a spool entry; it reaches the spool at the next :meth:`commit`."""
        import uuid


        entry = mask_values(dict(entry, host=self.host))  # the outbox is text kept too
        entry.setdefault("id", uuid.uuid4().hex)
        entry.setdefault("time", datetime.now(timezone.utc).isoformat(timespec="seconds"))
        self.outbox.append(entry)
        self._count("spooled", entry.get("kind", "entry"))
        return entry

    def commit(self):
        """Save the state (outbox included), move the outbox to the spool, save again."""
        self.save()
        if not self.outbox:
            return
        try:
            self._flush_outbox()
        except SpoolError as exc:
            self._once("spool", LOG.error, f"cannot write the spool: {exc}; entries stay in the "
                                           "state file and are retried")
            return
        self._forget("spool")
        self.save()

    def _flush_outbox(self):
        if not self.outbox:
            return
        # a crash between append and save leaves the last entries in both: look at the
        # spool's end only (Odoo ignores an id it has anyway)
        known = self.spool.recent_ids()
        while self.outbox:
            entry = self.outbox[0]
            if entry["id"] not in known:
                self.spool.append(entry)
            self.outbox.pop(0)

    # -- helpers -------------------------------------------------------------------------

    def _once(self, key, log, message):
        """Log *message* when it is new for *key* (not at every cycle)."""
        if self.notes.get(key) != message:
            self.notes[key] = message
            log(message)

    def _forget(self, key, message=None):
        if self.notes.pop(key, None) is not None and message:
            LOG.info(message)

    def _spool_overflow(self, dropped, first, last, max_bytes):
        """The spool's notice of what it dropped: an incident for Odoo, and a log line."""
        from engine.spool import overflow_entry

        entry = overflow_entry(dropped, first, last, max_bytes)
        LOG.error("spool: %s", entry["message"])
        self._count("spooled", "dropped", dropped)
        entry["host"] = self.host
        entry["incident"] = self.event_incident("watchdog_spool_overflow", "high",
                                                entry["message"], subject="spool")
        return entry

    def event_incident(self, kind, severity, message, subject="", sample="", now=None):
        """An engine incident dict for something the watchdog saw (not a log record).

        Its fingerprint holds the kind, the host and the subject, so a service
        that goes down ten times is one incident counted ten times.
        """
        now = self.clock() if now is None else now
        digest, signature = fingerprint(kind, kind, fields={"host": self.host,
                                                             "subject": subject})
        return {"pattern": kind, "severity": severity, "count": 1, "fingerprint": digest,
                "signature": signature, "message": message, "database": None,
                "exception": "", "first_seen": _iso(now), "last_seen": _iso(now),
                "sample": sample or message, "source": {"path": subject, "line": 0},
                "captures": {"host": self.host, "subject": subject}}

    def _context(self, roots=(), timeout=60.0):
        from engine.actions.runner import Context

        return Context(actor=f"watchdog:{self.host}", audit=self.audit,
                       backup_dir=os.path.join(cfg.state_dir(self.config), "backups"),
                       roots=tuple(roots), timeout=timeout)

    def _run(self, action, params, *, incident="", budget=None, history=(), roots=(),
             timeout=60.0):
        """One fix action through the runner; the record is kept in the runs folder."""
        from engine.actions.runner import RunRecord, execute

        try:
            record = execute(action, self._context(roots, timeout), params, incident=incident,
                             budget=budget, history=history)
        except EngineError as exc:  # bad parameters: nothing ran
            import uuid

            now = datetime.now(timezone.utc).isoformat(timespec="seconds")
            record = RunRecord(run_id=uuid.uuid4().hex[:12], action=action, target="",
                               actor=f"watchdog:{self.host}", incident=incident,
                               params=params, state="blocked", error=str(exc), started=now,
                               ended=now)
        return self.store.save(record.masked())

    def _fix_budget(self):
        f = self.config["fixes"]
        return BudgetPolicy(max_runs=f["max_runs"], window=f["window"],
                            first_delay=f["first_delay"])

    def _hook(self, payload):
        argv = self.config["alert"]["command"]
        if not argv:
            return
        data = json.dumps(mask_values(dict(payload, host=self.host)), default=str).encode()
        try:
            result = subprocess.run(argv, input=data, stdout=subprocess.DEVNULL,
                                    stderr=subprocess.PIPE, timeout=self.config["alert"]["timeout"],
                                    cwd="/", start_new_session=True, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            LOG.error("alert command %s failed: %s", argv[0], exc)
            return
        if result.returncode:
            LOG.error("alert command %s exited %d: %s", argv[0], result.returncode,
                      result.stderr.decode("utf-8", "replace").strip()[-300:])

    def alert(self, key, severity, message, now, kind=None, subject="", sample=""):
        """Raise an alert once (log, spool, hook) until :meth:`clear_alert`."""
        if key in self.alerts:
            return False
        self.alerts[key] = now
        (LOG.error if severity in ("high", "critical") else LOG.warning)("alert: %s", message)
        incident = self.event_incident(kind or "watchdog_" + key.split(":")[0], severity,
                                       message, subject=subject or key, sample=sample, now=now)
        self.emit({"kind": "alert", "key": key, "incident": incident})
        self._hook({"event": "alert", "key": key, "severity": severity, "message": message})
        return True

    def clear_alert(self, key, message=None):
        if self.alerts.pop(key, None) is not None:
            LOG.info("recovered: %s", message or key)

    # -- probes --------------------------------------------------------------------------

    def _observe(self, tracker, ok, now, detail):
        before = tracker.status
        after = tracker.observe(ok, now, detail)
        if after != before:
            log = LOG.warning if after == FAILING else LOG.info
            log("probe %s: %s -> %s (%s)", tracker.spec.name, before, after, detail)
        elif not ok:
            LOG.debug("probe %s failed %d time(s): %s", tracker.spec.name, tracker.failures,
                      detail)
        return after

    def probe_postgres(self, now):
        dsn = self.config["postgresql"]["dsn"]
        tracker = self.trackers["postgresql"]
        if not dsn or not tracker.due(now):
            return
        check = health.check_postgres(dsn, timeout=tracker.spec.timeout)
        self._observe(tracker, check.status == health.OK, now, check.message)

    def _process_configured(self):
        return bool(self.config["odoo"]["pidfile"] or self.config["odoo"]["cmdline"])

    def probe_process(self, now):
        if not self._process_configured():
            return
        tracker = self.trackers["process"]
        if not tracker.due(now):
            return
        conf = self.config["odoo"]
        info = probe_process(pidfile=conf["pidfile"] or None,
                             cmdline_regex=conf["cmdline"] or None, now=now)
        self.last_process = info
        ok = info.alive and not info.zombie
        known = (self.odoo.get("pid"), self.odoo.get("started"))
        if ok and info.started is not None and (info.pid, round(info.started, 2)) != known:
            self._new_odoo_process(now, info)
        if not ok and self.odoo.get("pid") and not self.odoo.get("exited_at"):
            self.odoo["exited_at"] = now
            started = self.odoo.get("started")
            self.odoo["lifetime"] = round(now - started, 1) if started else None
            LOG.warning("Odoo process pid %s is gone (%s)%s", self.odoo["pid"], info.detail,
                        " after %.0fs" % self.odoo["lifetime"] if started else "")
        self._observe(tracker, ok, now, info.detail)
        probe = self.config["probes"]["process"]
        if ok and probe["rss_warn_mb"] and info.rss_mb > probe["rss_warn_mb"]:
            self.alert("rss", "medium", f"Odoo uses {info.rss_mb:g} MiB of memory (RSS), over "
                       f"{probe['rss_warn_mb']:g} MiB", now, kind="watchdog_memory_high")
        elif ok:
            self.clear_alert("rss")
        cpu = info.cpu_percent
        if ok and probe["cpu_warn_percent"] and cpu is not None and \
                cpu > probe["cpu_warn_percent"]:
            self.alert("cpu", "medium", f"Odoo uses {cpu:g}% CPU, over "
                       f"{probe['cpu_warn_percent']:g}%", now, kind="watchdog_cpu_high")
        elif ok and cpu is not None:
            self.clear_alert("cpu")

    def _new_odoo_process(self, now, info):
        LOG.info("Odoo process: pid %s (%s)", info.pid, info.detail)
        self.odoo.update(pid=info.pid, started=round(info.started, 2), startup_done=False,
                         startup_began=now, exited_at=None, lifetime=None)
        for name in ("startup", "liveness", "readiness"):
            self.trackers[name].reset()

    def probe_http(self, now):
        url = self.config["odoo"]["url"]
        self._http_failed_now = False
        if not self.odoo.get("startup_done"):
            tracker = self.trackers["startup"]
            if not tracker.due(now):
                return
            self.odoo.setdefault("startup_began", now)
            check = http_probe(url, tracker.spec.timeout)
            ok = check.status == health.OK
            self._observe(tracker, ok, now, check.message)
            if ok and tracker.status == OK:
                began = self.odoo.get("startup_began") or now
                LOG.info("Odoo answers /web/health: started (%.1fs after the start was seen)",
                         now - began)
                self.odoo["startup_done"] = True
                self.trackers["liveness"].reset()
                self.trackers["liveness"].observe(True, now, check.message)
            self._http_failed_now = not ok
        else:
            tracker = self.trackers["liveness"]
            if tracker.due(now):
                check = http_probe(url, tracker.spec.timeout)
                self._observe(tracker, check.status == health.OK, now, check.message)
                self._http_failed_now = check.status != health.OK
        tracker = self.trackers["readiness"]
        if self.odoo.get("startup_done") and tracker.due(now) and not self._http_failed_now:
            check = http_probe(url, tracker.spec.timeout, db_status=True)
            self._observe(tracker, check.status == health.OK, now, check.message)

    def probe_resources(self, now):
        disk = self.config["probes"]["disk"]
        if disk["paths"] and now - self.wd.get("disk_checked", 0) >= disk["period"]:
            self.wd["disk_checked"] = now
            for path in disk["paths"]:
                check = health.check_disk(path, disk["warn_percent"], disk["crit_percent"])
                if check.status == health.OK:
                    self.clear_alert(f"disk:{path}", check.message)
                else:
                    self.alert(f"disk:{path}", "high" if check.status == health.CRITICAL
                               else "medium", f"free disk: {check.message}", now,
                               kind="watchdog_disk_low", subject=path)
        fresh = self.config["probes"]["log_freshness"]
        logs = self.config["odoo"]["logs"]
        if logs and now - self.wd.get("logs_checked", 0) >= fresh["period"]:
            self.wd["logs_checked"] = now
            for path in logs:
                check = health.check_log_freshness(path, fresh["warn_seconds"],
                                                   fresh["crit_seconds"], now=now)
                if check.status == health.OK:
                    self.clear_alert(f"log:{path}", check.message)
                else:
                    self.alert(f"log:{path}", "medium", f"Odoo's log: {check.message}", now,
                               kind="watchdog_log_stale", subject=path)

    def _startup_progressing(self, now):
        """Odoo is still loading: alive, and its log was written within two periods."""
        grace = self.config["probes"]["startup"]["progress_grace"]
        began = self.odoo.get("startup_began") or now
        if not grace or now - began > grace:
            return False
        if self._process_configured() and self.trackers["process"].status != OK:
            return False
        window = 2 * self.trackers["startup"].spec.period
        for path in self.config["odoo"]["logs"]:
            try:
                if now - os.stat(path).st_mtime <= window:
                    return True
            except OSError:
                continue
        return False

    def observation(self, now):
        startup = self.trackers["startup"].status
        if startup == FAILING and not self.odoo.get("startup_done") and \
                self._startup_progressing(now):
            self._once("startup", LOG.info, "Odoo is slow to start but its log grows (loading or "
                                            "upgrading modules): not killed for that")
            startup = UNKNOWN
        alive = zombie = None
        if self._process_configured():
            alive = {OK: True, FAILING: False}.get(self.trackers["process"].status)
            zombie = bool(alive is False and self.last_process and self.last_process.zombie)
        return Observation(
            postgres=self.trackers["postgresql"].status if self.config["postgresql"]["dsn"]
            else UNKNOWN,
            startup_done=bool(self.odoo.get("startup_done")), startup=startup,
            liveness=self.trackers["liveness"].status,
            readiness=self.trackers["readiness"].status,
            process_alive=alive, process_zombie=bool(zombie))

    # -- acting --------------------------------------------------------------------------

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

    # -- config drift --------------------------------------------------------------------

    def check_drift(self, now, force=False):
        files = cfg.watched_files(self.config)
        if not files:
            return
        if not force and now - self.wd.get("drift_checked", 0) < self.config["drift"]["period"]:
            return
        self.wd["drift_checked"] = now
        try:
            drifts = drift_mod.check(files, self.baseline, self.versions)
        except EngineError as exc:
            self._once("drift", LOG.error, f"config drift check failed: {exc}")
            return
        reported = self.wd.setdefault("drift_reported", {})
        for change in drifts:
            entry = self.baseline.get(change.path)
            key = f"{change.kind}:{change.sha256}:{bool(change.parse_error)}"
            why = f"it does not parse ({change.parse_error})"
            if change.parse_error and reported.get(change.path, {}).get("key") == key:
                # still broken, reported already: only the restore is tried again
                self.restore_config(change.path, reported[change.path]["incident"], why, now)
                continue
            if entry is not None:
                entry["changed_at"] = now
            kind = "config_broken" if change.parse_error else f"config_{change.kind}"
            severity = "high" if change.parse_error or change.kind != "changed" else "low"
            message = change.parse_error or f"{change.path}: {change.kind}"
            LOG.warning("config drift: %s%s", message,
                        "" if not change.diff else " (%d diff lines)" % len(
                            change.diff.splitlines()))
            incident = self.event_incident(kind, severity, message, subject=change.path,
                                           sample=change.diff, now=now)
            reported[change.path] = {"key": key, "incident": incident}
            self.emit({"kind": "drift", "drift": asdict(change), "incident": incident})
            if change.parse_error and change.kind == "changed":
                self.restore_config(change.path, incident, why, now)
        if drifts:
            self.commit()

    def restore_config(self, path, incident, why, now):
        """Put back the last known good version of *path*, when [fixes] auto allows it."""
        if "restore_config" not in self.config["fixes"]["auto"]:
            self._once(f"norestore:{path}", LOG.warning,
                       f"{path}: {why}; restore_config is not in [fixes] auto here: "
                       "reported only")
            return None
        good = drift_mod.last_good(path, self.baseline, self.versions)
        if good is None:
            self.alert(f"nogood:{path}", "high", f"{path}: {why}, and there is no last known "
                       "good version to restore", now, kind="config_broken", subject=path)
            return None
        from engine.budget import decide

        history = self.store.history("restore_config", os.path.realpath(path))
        verdict = decide(self._fix_budget(), history, time.time())
        if not verdict.allowed:  # asked again each cycle: say it once, store no refused run
            self._once(f"restore-wait:{path}", LOG.error if verdict.escalate else LOG.warning,
                       f"restore of {path} ({why}) waits: {verdict.reason}")
            if verdict.escalate:
                self.alert(f"restore:{path}", "critical", f"{path}: {why}; restore_config is "
                           f"over its budget: {verdict.reason}", now, kind="config_broken",
                           subject=path)
            return None
        self._forget(f"restore-wait:{path}")
        params = {"config": path, "version": good.name, "versions_dir": self.versions}
        record = self._run("restore_config", params, incident=incident["fingerprint"],
                           budget=self._fix_budget(), history=history)
        self._count("fixes", f"restore_config:{record.state}")
        if record.state == "done":
            drift_mod.accept_restored(path, self.baseline, good, now)
            self.wd.get("drift_reported", {}).pop(path, None)
            self.clear_alert(f"config:{path}", f"{path} restored")
            self.odoo["config_restored_at"] = now
            LOG.warning("restored %s from the last known good version %s (%s): run %s",
                        path, good.name, why, record.run_id)
        else:
            LOG.error("restore of %s: run %s %s: %s", path, record.run_id, record.state,
                      record.error)
        self.emit({"kind": "fix_run", "record": record.to_dict(), "incident": incident})
        self.commit()
        return record

    def restore_refused_config(self, now):
        """Odoo refuses to start with a changed config: go back to the last known good.

        Suspect when the config differs from the last version Odoo was healthy
        with, and since that change Odoo died within [drift] crash_window of
        its start, or a restart did not come up.
        """
        path = self.config["odoo"]["config"]
        entry = self.baseline.get(path) if path else None
        if not entry or entry.get("state") != "ok":
            return None
        good = drift_mod.last_good(path, self.baseline, self.versions)
        if good is None or good.sha256 == entry.get("sha256"):
            return None
        changed_at = _mtime(path)
        lifetime = self.odoo.get("lifetime")
        died_young = lifetime is not None and lifetime < self.config["drift"]["crash_window"] \
            and (self.odoo.get("started") or 0) + 1 >= changed_at
        failed = bool(self.odoo.get("restart_failed")) and \
            (self.odoo.get("restarted_at") or 0) >= changed_at
        if not (died_young or failed):
            return None
        why = ("Odoo exited %.0fs after it started" % lifetime if died_young
               else "Odoo did not come back after a restart") + \
            " with a config changed since it was last healthy"
        incident = self.event_incident("config_refused", "high", f"{path}: {why}",
                                       subject=path, now=now)
        return self.restore_config(path, incident, why, now)

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
            if path == self.config["odoo"]["config"] and _mtime(path) > loaded_at + 1:
                continue  # Odoo runs with what it loaded at its start, not this version
            try:
                version = drift_mod.mark_good(path, self.baseline, self.versions)
            except EngineError as exc:
                self._once(f"good:{path}", LOG.error, f"cannot keep {path} as good: {exc}")
                continue
            entry["good_sha256"] = version.sha256
            LOG.info("last known good: %s (sha256 %s)", path, version.sha256[:12])

    # -- logs ----------------------------------------------------------------------------

    def _patterns_path(self):
        from engine.scanner import DEFAULT_PATTERNS

        if self.patterns_override:
            return self.patterns_override
        if self.config["scan"]["patterns"]:
            return self.config["scan"]["patterns"]
        exported = cfg.exported_patterns(self.config)
        return exported if os.path.isfile(exported) else DEFAULT_PATTERNS

    def scanner(self):
        from engine.patterns import load_patterns
        from engine.scanner import DEFAULT_PATTERNS, Scanner

        path = self._patterns_path()
        try:
            st = os.stat(path)
            key = (path, st.st_mtime_ns, st.st_size)
        except OSError:
            key = (path, None, None)
        if key == self._patterns_key and self._scanner is not None:
            return self._scanner
        try:
            pattern_set = load_patterns(path)
        except EngineError as exc:
            if path == DEFAULT_PATTERNS:
                raise
            LOG.error("patterns %s: %s; using %s", path, exc, DEFAULT_PATTERNS)
            pattern_set = load_patterns(DEFAULT_PATTERNS)
        for message in pattern_set.errors:
            LOG.warning("patterns: %s", message)
        from engine.matcher import prepare_cache_dir

        # The compiled database is kept in <state_dir>/cache, keyed by the patterns' hash.
        self._scanner = Scanner(pattern_set, cache_dir=prepare_cache_dir(
            os.path.join(cfg.state_dir(self.config), "cache")))
        self._patterns_key = key
        LOG.info("patterns: %d from %s", len(pattern_set.patterns), path)
        return self._scanner

    def scan_logs(self, now):
        from engine.incidents import aggregate
        from engine.patterns import SEVERITY_RANK

        scan = self.config["scan"]
        logs = self.config["odoo"]["logs"]
        if not scan["enabled"] or not logs:
            return []
        scanner = self.scanner()
        # a bounded read per log and cycle: a 1 GB backlog is read over many cycles,
        # and the probes keep their period (and READY comes in time)
        budget = scan["max_mb_per_cycle"] * 1024 * 1024
        findings, done = [], []
        try:
            self.scanning = True  # SIGTERM now stops the scan (ScanStopped)
            for path in logs:
                try:
                    result = scanner.scan_file(path, self.state.cursor(path), final=False,
                                               settle_seconds=scan["settle"], max_bytes=budget)
                except LogSourceError as exc:
                    self._once(f"log:{path}", LOG.warning, f"log: {exc}")
                    continue
                done.append((path, result))
        except ScanStopped:
            LOG.info("stopping in the middle of a scan: the rest is read at the next start "
                     "(the cursors stay where the read records end)")
        finally:
            self.scanning = False
        for path, result in done:
            self._forget(f"log:{path}", f"log {path} readable again")
            for message in result.warnings:
                LOG.warning("log %s: %s", path, message)
            self.state.set_cursor(path, result.cursor)
            findings.extend(result.findings)
        floor = SEVERITY_RANK[scan["min_severity"]]
        incidents = [i for i in aggregate(findings) if SEVERITY_RANK.get(i.severity, 3) >= floor]
        down = not self._odoo_answers()
        for incident in incidents:
            self._count("findings", incident.pattern, incident.count)
            LOG.warning("finding: [%s] %s x%d at %s:%s: %s", incident.severity, incident.pattern,
                        incident.count, incident.source_path, incident.source_line,
                        incident.message.split("\n")[0][:200])
            record = self.fix_from_log(incident, now)
            if self.config["handover"]["incidents"] == "always" or down or record is not None:
                self.emit({"kind": "incident", "incident": incident.to_dict()})
            if record is not None:
                self.emit({"kind": "fix_run", "record": record.to_dict()})
        return incidents

    def fix_from_log(self, incident, now):
        """Run the incident's host fix when [fixes] auto allows it here; the record or None."""
        action = incident.fix_script
        fixes = self.config["fixes"]
        if action == "restore_config" and action in fixes["auto"]:
            # db_auth_failed and friends: only a config changed since Odoo was last
            # healthy is put back (restore_refused_config records its own run)
            self.restore_refused_config(now)
            return None
        if action not in ("remove_deprecated_cron_fields", "fix_permissions"):
            return None  # odoo-level, or restart_service: the probes decide restarts
        if action not in fixes["auto"]:
            self._once(f"fix:{action}", LOG.info,
                       f"{action} is not in [fixes] auto here: {incident.pattern} is spooled "
                       "as a finding for Odoo")
            return None
        if not fixes["roots"]:
            self._once(f"roots:{action}", LOG.warning,
                       f"{action} needs [fixes] roots (the only folders it may touch)")
            return None
        from engine.actions import get_action
        from engine.actions.params import capture_map
        from host.approved import HostParams

        # the log names the file (data, checked against the roots); this host's
        # config says everything else
        engine_action = get_action(action)
        captures = incident.captures or {}
        data = {param: captures[capture] for capture, param in capture_map(engine_action).items()
                if captures.get(capture) not in (None, "")}
        if not data:
            return None
        try:
            params = HostParams.from_config(self.config).for_action(engine_action, data)
        except EngineError as exc:
            self._once(f"params:{action}", LOG.warning, f"{action} cannot run here: {exc}")
            return None
        roots = fixes["roots"]
        planned = self._run_plan(action, params, roots)
        history = self.store.history(action, planned) if planned else ()
        record = self._run(action, params, incident=incident.fingerprint,
                           budget=self._fix_budget(), history=history, roots=roots)
        self._count("fixes", f"{action}:{record.state}")
        (LOG.warning if record.state in ("done", "noop") else LOG.error)(
            "fix %s for %s: run %s %s%s", action, incident.pattern, record.run_id,
            record.state, ": " + record.error if record.error else "")
        return record

    def _run_plan(self, action, params, roots):
        import dataclasses

        from engine.actions.runner import execute

        context = dataclasses.replace(self._context(roots), audit=None)
        try:
            return execute(action, context, params, dry_run=True).target
        except EngineError:
            return ""

    # -- hand-over -----------------------------------------------------------------------

    def _odoo_answers(self):
        return bool(self.odoo.get("startup_done")) and \
            self.trackers["liveness"].status == OK and \
            self.trackers["readiness"].status != FAILING

    def client(self):
        from host.rpc import OdooRPC, read_api_key

        conf = self.config["handover"]
        key = read_api_key(conf["api_key_file"])
        return OdooRPC(conf["url"] or self.config["odoo"]["url"], conf["db"], conf["login"],
                       key, timeout=conf["timeout"])

    def _handover_due(self, now, force):
        conf = self.config["handover"]
        if not conf["db"]:
            return False
        if force:
            return True
        return self._odoo_answers() and now >= self.wd.get("handover_retry", 0)

    def handover(self, now, force=False):
        """Send the spool to Odoo now, in this thread; the number of entries Odoo took."""
        if not self._handover_due(now, force):
            return None
        refresh = now - self.wd.get("patterns_pulled", 0) >= PATTERNS_REFRESH
        if refresh:
            self.wd["patterns_pulled"] = now
        result = self._handover_job(refresh, now)
        self._apply_handover(result, now)
        return result["sent"]

    def handover_async(self, now):
        """Start a hand-over in a thread: a slow or hanging Odoo never stops the probes.

        The thread only talks to Odoo and moves the spool's acknowledged offset
        (the spool locks its own files); its counts and errors are taken into
        the state by the loop, at the next cycle.
        """
        self.collect_handover(now)
        if self._worker is not None or not self._handover_due(now, False):
            return False
        refresh = now - self.wd.get("patterns_pulled", 0) >= PATTERNS_REFRESH
        if not refresh and not self.spool.pending(limit=1):
            return False
        if refresh:
            self.wd["patterns_pulled"] = now

        def job():
            self._worker_result = self._handover_job(refresh, now)

        self._worker_result = None
        self._worker = threading.Thread(target=job, name="handover", daemon=True)
        self._worker.start()
        return True

    def collect_handover(self, now, wait=0.0):
        """Take the result of a finished hand-over thread into the state."""
        if self._worker is None:
            return
        self._worker.join(wait)
        if self._worker.is_alive():
            return
        self._worker = None
        if self._worker_result is not None:
            self._apply_handover(self._worker_result, now)
            self._worker_result = None

    def _handover_job(self, refresh, now):
        """Talk to Odoo: pull the patterns if due, send the spool in batches, acknowledge."""
        conf = self.config["handover"]
        result = {"sent": 0, "stored": 0, "ignored": 0, "error": ""}
        try:
            client = self.client()
            if refresh:
                self.pull_patterns(client, now)
            pending = self.spool.pending(limit=conf["batch"])
            while pending:
                entries = [{k: v for k, v in e.items() if k != "_end"} for e in pending]
                answer = client.execute_kw(HANDOVER_MODEL, "watchdog_handover", [entries])
                if not isinstance(answer, dict):
                    raise EngineError("watchdog_handover did not answer an object")
                stored = [str(i) for i in answer.get("stored") or []]
                ignored = [str(i) for i in answer.get("ignored") or []]
                taken = set(stored) | set(ignored)
                missing = [e["id"] for e in entries if e["id"] not in taken]
                if missing:
                    raise EngineError(f"Odoo did not take {len(missing)} entr(y/ies), e.g. "
                                      f"{missing[0]}")
                self.spool.acknowledge(pending)  # only after Odoo's answer
                result["sent"] += len(entries)
                result["stored"] += len(stored)
                result["ignored"] += len(ignored)
                LOG.info("hand-over: %d entr(y/ies) to Odoo (%d stored, %d it already had)",
                         len(entries), len(stored), len(ignored))
                pending = self.spool.pending(limit=conf["batch"])
        except (EngineError, OSError) as exc:
            result["error"] = str(exc)
        return result

    def _apply_handover(self, result, now):
        conf = self.config["handover"]
        self._count("handover", "stored", result["stored"])
        self._count("handover", "ignored", result["ignored"])
        self.handover_error = result["error"]
        if result["error"]:
            self.wd["handover_retry"] = now + conf["retry"]
            self._once("handover", LOG.warning, f"hand-over to Odoo failed, retried in "
                                                f"{conf['retry']:g}s: {result['error']}")
        else:
            self._forget("handover", "hand-over to Odoo works again")

    def pull_patterns(self, client, now):
        """Keep Odoo's patterns (with the admins' edits) for when Odoo is down."""
        from engine import fsutil
        from engine.patterns import PatternSet

        try:
            entries = client.execute_kw(HANDOVER_MODEL, "watchdog_patterns", [])
        except EngineError as exc:
            LOG.warning("patterns not pulled from Odoo: %s", exc)
            return False
        if not isinstance(entries, list) or not entries:
            return False
        pattern_set = PatternSet.from_entries(entries)
        if not pattern_set.patterns:
            LOG.warning("patterns from Odoo: none usable, the export is not replaced")
            return False
        data = json.dumps({"version": 1, "exported_at": _iso(now), "patterns": entries},
                          indent=1, sort_keys=True, default=str).encode() + b"\n"
        path = cfg.exported_patterns(self.config)
        fsutil.atomic_write(path, data, mode=0o600)
        LOG.info("patterns: %d pulled from Odoo into %s", len(pattern_set.patterns), path)
        return True

    # -- the loop ------------------------------------------------------------------------

    def cycle(self):
        """One cycle; returns the :class:`engine.watchdog.Decision`."""
        now = self.clock()
        self.counters["cycles"] += 1
        self._flush_outbox_safely()
        self.take_reset_request(now)
        self.probe_postgres(now)
        self.probe_process(now)
        self.probe_http(now)
        self.probe_resources(now)
        host_checks.run_due(self, now)  # [backup], [deployment]: host/host_checks.py
        self.check_drift(now)
        decision = decide_action(self.observation(now))
        self.act(decision, now)
        now = self.clock()
        self.scan_logs(now)
        self.mark_good(now, decision)
        self.wd["status"] = {"time": now, "action": decision.action, "reason": decision.reason,
                             "healthy": decision.healthy,
                             "escalated": [s for s, p in self.policies.items() if p.escalated]}
        self.handover_async(now)
        self.commit()
        return decision

    def _flush_outbox_safely(self):
        try:
            self._flush_outbox()
        except SpoolError as exc:
            self._once("spool", LOG.error, f"cannot write the spool: {exc}")

    def status_text(self, decision):
        escalated = [s for s, p in self.policies.items() if p.escalated]
        if escalated:
            head = "ESCALATED (%s): run bin/auto-heal reset" % ", ".join(escalated)
        elif decision.healthy:
            head = "healthy"
        else:
            head = f"{decision.action}: {decision.reason}"
        return "%s; restarts odoo %d, postgresql %d; spool %d" % (
            head, len(self.policies["odoo"].restarts), len(self.policies["postgresql"].restarts),
            self.spool.count())

    def run(self, max_cycles=None):
        interval = self.config["watchdog"]["interval"]
        LOG.info("watchdog started (pid %d, host %s, config %s)", os.getpid(), self.host,
                 self.config.get("_path") or "-")
        cycles = failed = 0
        while not self.stop_event.is_set():
            started = time.monotonic()
            try:
                decision = self.cycle()
                failed = 0
            except EngineError as exc:
                LOG.error("cycle failed: %s", exc)
                decision, failed = None, failed + 1
            except Exception:  # a bug: keep watching, but not forever
                LOG.exception("cycle failed (a bug)")
                decision, failed = None, failed + 1
            if failed >= MAX_FAILED_CYCLES:
                LOG.critical("%d cycles in a row failed: stopping (systemd restarts the "
                             "watchdog)", failed)
                self.notifier.stopping("failing")
                raise EngineError(f"{failed} watchdog cycles in a row failed; see "
                                  f"{self.config['watchdog']['log_file']}")
            cycles += 1
            status = self.status_text(decision) if decision else "cycle failed; see the log"
            if cycles == 1:
                self.notifier.ready(status)
            else:
                self.notifier.watchdog(status)
            if max_cycles and cycles >= max_cycles:
                break
            self.stop_event.wait(max(0.0, interval - (time.monotonic() - started)))
        self.collect_handover(self.clock(), wait=2.0)  # a hand-over in flight may finish
        self.save()
        self.notifier.stopping("stopping")
        LOG.info("watchdog stopped after %d cycle(s)", cycles)
        return cycles
