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

import json
import logging
import logging.handlers
import os
import socket
import subprocess
import threading
import time
from datetime import datetime, timezone

from engine.audit import AuditLog
from engine.budget import BudgetPolicy
from engine.errors import EngineError
from engine.fingerprint import fingerprint
from engine.secrets import MaskingFormatter, mask_values
from engine.spool import Spool, SpoolError
from engine.watchdog import (
    ProbeSpec,
    ProbeTracker,
    RestartPolicy,
    decide_action,
)

from . import config as cfg
from . import host_checks
from .sdnotify import Notifier
from .watch.common import (
    KINDS,
    LOG,
    LOG_FORMAT,
    MAX_FAILED_CYCLES,
    PROBES,
    SERVICES,
    ScanStopped,
    naive_utc,
    reset_request_path,
)
from .watch.drift import DriftMixin
from .watch.handover import HandoverMixin
from .watch.probes import ProbesMixin
from .watch.restart import RestartMixin
from .watch.scan import ScanMixin

__all__ = ["KINDS", "Monitor", "reset_request_path", "setup_logging", "stop_on_signal"]


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


def restart_policy(config):
    r = config["restart"]
    return BudgetPolicy(max_runs=r["max_restarts"], window=r["window"],
                        first_delay=r["first_delay"], factor=max(1.0, r["factor"]),
                        max_delay=r["max_delay"])


class Monitor(ProbesMixin, RestartMixin, DriftMixin, ScanMixin, HandoverMixin):
    """The watchdog for one Odoo (and its PostgreSQL), over one state file.

    The cycle is here; its parts are mixins in host/watch/: probes, restart,
    drift, scan (log findings and host fixes) and handover (the spool, the
    patterns, the approved host fix runs).
    """

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
                "exception": "", "first_seen": naive_utc(now), "last_seen": naive_utc(now),
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
        from engine.actions.runner import FixAttempt, execute

        try:
            record = execute(action, self._context(roots, timeout), params, incident=incident,
                             budget=budget, history=history)
        except EngineError as exc:  # bad parameters: nothing ran
            import uuid

            now = datetime.now(timezone.utc).isoformat(timespec="seconds")
            record = FixAttempt(run_id=uuid.uuid4().hex[:12], action=action, target="",
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

    # -- acting --------------------------------------------------------------------------

    # -- logs ----------------------------------------------------------------------------

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
