"""The watchdog's service commands: ``monitor``, ``reset``, ``status``, ``handover``,
``restore``, and ``backup --db``. Registered by :func:`host.cli.build_parser`."""

import json
import os
import signal
import sys
import time

from engine.errors import EngineError
from engine.secrets import mask_values

MONITOR_EPILOG = """\
The loop: probes (startup, liveness /web/health, readiness
/web/health?db_server_status=1, PostgreSQL, the Odoo process, disk, log
freshness) -> config drift -> a decision (dependencies first: PostgreSQL down
restarts PostgreSQL, not Odoo; readiness failing alone never restarts Odoo) ->
restarts within the restart policy, else escalated until `reset` -> log scan
and the host fixes [fixes] auto allows -> the spool -> hand-over to Odoo when it
answers. Every key of FILE: examples/auto-heal.toml; semantics: readme/WATCHDOG.md.

One watchdog per state file: a second one exits 2 (the lock is
<state_dir>/state.json.lock). SIGTERM and Ctrl-C stop it after the cycle in
progress. Under systemd (Type=notify) it sends READY=1 after the first cycle,
WATCHDOG=1 after each cycle, and STATUS= lines.

exit codes: 0 stopped (SIGTERM, Ctrl-C, --max-cycles reached), 2 bad config,
unwritable log or state, or another watchdog holds the lock, 3 internal error.
"""

RESET_EPILOG = """\
Clears the escalation and the restart counters of the services (both without
--service). With a watchdog running on the same state, the request is handed
to it (<state_dir>/reset.request) and this command waits until it took it;
without one, the state file is changed directly.

exit codes: 0 reset done, 1 the running watchdog did not take the request
within --wait seconds, 2 bad input.
"""

STATUS_EPILOG = """\
Reads the state file (no lock needed): the last decision, probes, restarts in
the window, escalation, spool entries waiting for Odoo, counters.

exit codes: 0 healthy, 1 not healthy or escalated, 2 bad input (no state yet).
"""

RESTORE_EPILOG = """\
Restores a config version kept by `backup --config` (or by the monitor's drift
baselines) through the restore_config fix action: the plan with the masked
diff is printed first, the current file is kept as a new version and backed
up, then the version is written atomically (mode and owner included) and
verified; a failed verification rolls back.

exit codes: 0 restored (or already that version), 1 refused, blocked or rolled
back, 2 bad input (unknown version), 3 internal error.
"""


def register(sub, fmt, parents):
    """Add the watchdog's subcommands to the ``bin/auto-heal`` parser."""
    from host.cli import _non_negative_float, _positive_int

    p = sub.add_parser("monitor", formatter_class=fmt, help="watch Odoo and PostgreSQL and "
                       "heal them (the systemd service)", description="Run the watchdog loop.",
                       epilog=MONITOR_EPILOG)
    p.add_argument("--config", metavar="FILE", required=True, help="the watchdog's TOML config")
    p.add_argument("--max-cycles", type=_positive_int, metavar="N",
                   help="stop after N cycles (tests, one-shot runs)")
    p.add_argument("--patterns", metavar="FILE",
                   help="patterns file (default: [scan] patterns, else <state_dir>/patterns.json "
                        "exported from Odoo, else data/patterns.json)")
    p.add_argument("--verbose", "-v", action="store_true",
                   help="debug lines, also on stderr")
    p.set_defaults(func=cmd_monitor)

    p = sub.add_parser("reset", formatter_class=fmt, help="clear an escalation: restarts are "
                       "allowed again", description="Clear the escalation of the watchdog.",
                       epilog=RESET_EPILOG)
    p.add_argument("--config", metavar="FILE", required=True, help="the watchdog's TOML config")
    p.add_argument("--service", choices=("odoo", "postgresql"), action="append",
                   help="only this service (repeatable; default: both)")
    p.add_argument("--wait", type=_non_negative_float, default=30.0, metavar="SECONDS",
                   help="how long to wait for a running watchdog to take it (default: 30)")
    p.set_defaults(func=cmd_reset)

    p = sub.add_parser("status", formatter_class=fmt, help="what the watchdog knows now",
                       description="Print the watchdog's state.", epilog=STATUS_EPILOG)
    p.add_argument("--config", metavar="FILE", required=True, help="the watchdog's TOML config")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_status)

    p = sub.add_parser("handover", formatter_class=fmt, help="send the spool to Odoo now",
                       description="Send the spool's pending entries to Odoo ([handover] of "
                       "the config) and acknowledge what Odoo took.")
    p.add_argument("--config", metavar="FILE", required=True, help="the watchdog's TOML config")
    p.set_defaults(func=cmd_handover)

    p = sub.add_parser("restore", parents=parents, formatter_class=fmt,
                       help="restore a kept config version (restore_config)",
                       description="Restore a kept version of odoo.conf.",
                       epilog=RESTORE_EPILOG)
    p.add_argument("--config", metavar="VERSION", required=True, dest="version",
                   help="the version: its file name, or 8+ hex digits of its sha256")
    p.add_argument("--config-path", metavar="FILE",
                   help="the config file to restore (default: the file the version was "
                        "taken of)")
    p.add_argument("--versions", metavar="DIR",
                   help="where the versions are (default: as for backup --config)")
    p.add_argument("--dry-run", action="store_true", help="print the plan only")
    p.add_argument("--json", action="store_true", help="print the run record as JSON")
    p.set_defaults(func=cmd_restore)


# --------------------------------------------------------------------------
# monitor


def _load_config(path):
    from host import config as cfg

    return cfg.load(path)


def cmd_monitor(args):
    from host import config as cfg
    from host.monitor import Monitor, setup_logging, stop_on_signal
    from host.sdnotify import Notifier
    from host.state import State, StateLock

    config = _load_config(args.config)
    if args.patterns and not os.path.isfile(args.patterns):
        raise EngineError(f"patterns file not found: {args.patterns}")
    setup_logging(config, verbose=args.verbose)
    lock = StateLock(cfg.state_path(config))
    lock.acquire()  # LockedError: exit 2 with the holder's pid
    try:
        state = State.load(cfg.state_path(config))
        monitor = Monitor(config, state, notifier=Notifier(), patterns=args.patterns)

        stop = stop_on_signal(monitor)
        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        monitor.run(max_cycles=args.max_cycles)
    finally:
        lock.release()
    return 0


# --------------------------------------------------------------------------
# reset


def cmd_reset(args):
    from engine import fsutil
    from engine.audit import current_user
    from host import config as cfg
    from host.monitor import reset_request_path
    from host.state import LockedError, State, StateLock

    config = _load_config(args.config)
    services = args.service or ["odoo", "postgresql"]
    path = cfg.state_path(config)
    lock = StateLock(path)
    try:
        lock.acquire()
    except LockedError:
        lock = None
    if lock is not None:  # no watchdog runs: change the state directly
        try:
            state = State.load(path)
            restart = state.watchdog.get("restart", {})
            alerts = state.watchdog.get("alerts", {})
            was = []
            for service in services:
                entry = restart.get(service) or {}
                if entry.get("escalated"):
                    was.append(service)
                entry.update(restarts=[], escalated=False, escalated_reason="",
                             healthy_since=None)
                restart[service] = entry
                alerts.pop(f"escalated:{service}", None)
                alerts.pop(f"down:{service}", None)
            if state.watchdog:
                state.watchdog["restart"] = restart
                state.save()
            _audit_reset(config, services, was)
        finally:
            lock.release()
        print("reset %s (no watchdog running)%s" % (
            ", ".join(services), "; it was escalated" if was else ""))
        return 0
    request = reset_request_path(config)
    data = {"services": services, "by": current_user(), "time": time.time()}
    fsutil.atomic_write(request, json.dumps(data).encode() + b"\n", mode=0o600)
    deadline = time.monotonic() + args.wait
    while time.monotonic() < deadline:
        if not os.path.exists(request):
            print("reset %s: the running watchdog took it" % ", ".join(services))
            return 0
        time.sleep(0.2)
    print("the running watchdog did not take the reset within %gs; it will at its next "
          "cycle (%s)" % (args.wait, request))
    return 1


def _audit_reset(config, services, was):
    from engine.audit import AuditLog, default_actor
    from host import config as cfg

    try:
        log = AuditLog(cfg.audit_path(config), actor=default_actor("cli"))
        for service in services:
            log.record("watchdog.reset", service, "reset", 0.0, was_escalated=service in was)
    except EngineError as exc:
        from host.cli import warning

        warning(f"audit log: {exc}")


# --------------------------------------------------------------------------
# status


def cmd_status(args):
    from engine.spool import Spool
    from host import config as cfg
    from host.state import State

    config = _load_config(args.config)
    path = cfg.state_path(config)
    if not os.path.exists(path):
        raise EngineError(f"no state yet: {path} (has `monitor` run with this config?)")
    wd = State.load(path).watchdog
    spool = Spool(cfg.spool_path(config))
    pending = spool.count() + len(wd.get("outbox") or [])
    dropped = spool.dropped()
    status = wd.get("status") or {}
    restart = wd.get("restart") or {}
    escalated = [s for s, e in restart.items() if e.get("escalated")]
    report = {
        "time": status.get("time"), "action": status.get("action"),
        "reason": status.get("reason"), "healthy": bool(status.get("healthy")),
        "escalated": {s: restart[s].get("escalated_reason", "") for s in escalated},
        "restarts_in_window": {s: len(e.get("restarts") or []) for s, e in restart.items()},
        "probes": {name: {"status": p.get("status"), "failures": p.get("failures"),
                          "detail": p.get("last_detail")}
                   for name, p in (wd.get("probes") or {}).items() if p.get("last_run")},
        "odoo": {k: v for k, v in (wd.get("odoo") or {}).items()
                 if k in ("pid", "startup_done", "lifetime")},
        "spool_pending": pending,
        "spool_dropped": dropped,
        "counters": wd.get("counters") or {},
        "alerts": sorted(wd.get("alerts") or {}),
    }
    if args.json:
        print(json.dumps(mask_values(report), indent=2, default=str))
    else:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(report["time"])) \
            if report["time"] else "-"
        head = "ESCALATED" if escalated else "healthy" if report["healthy"] else "NOT HEALTHY"
        print(f"{head} (last cycle {when}): {report['action']}: {report['reason']}")
        for service, reason in report["escalated"].items():
            print(f"  escalated {service}: {reason}; run `bin/auto-heal reset --config "
                  f"{args.config}` once it is handled")
        for name, probe in report["probes"].items():
            print(f"  probe {name:<11} {probe['status']:<8} {probe['detail'] or ''}"[:160])
        print("  restarts in the window: " + ", ".join(
            f"{s} {n}" for s, n in report["restarts_in_window"].items()))
        print(f"  spool: {pending} entr(y/ies) waiting for Odoo"
              + (f"; {dropped} dropped by its cap ([handover] spool_max_mb)" if dropped else ""))
        if report["alerts"]:
            print("  alerts: " + ", ".join(report["alerts"]))
    return 0 if report["healthy"] and not escalated else 1


# --------------------------------------------------------------------------
# handover


def cmd_handover(args):
    from host import config as cfg
    from host.monitor import Monitor
    from host.state import State

    config = _load_config(args.config)
    if not config["handover"]["db"]:
        raise EngineError("[handover] db is not set in the config: nowhere to send the spool")
    monitor = Monitor(config, State(cfg.state_path(config)))
    before = monitor.spool.count()
    sent = monitor.handover(time.time(), force=True)
    left = monitor.spool.count()
    stored = monitor.counters["handover"].get("stored", 0)
    ignored = monitor.counters["handover"].get("ignored", 0)
    print(f"handed over {sent} of {before} entr(y/ies): {stored} stored, {ignored} Odoo already "
          f"had; {left} left")
    if getattr(monitor, "handover_error", ""):
        from host.cli import error

        error("hand-over to Odoo failed: %s" % monitor.handover_error)
    return 0 if left == 0 else 1


# --------------------------------------------------------------------------
# restore


def cmd_restore(args):
    from engine import backup
    from host.cli import OK_STATES, _default_dir, _execute, _print_record, _run_context, _store

    versions = args.versions or _default_dir("config")
    version = backup.find_version(versions, args.version)  # EngineError: exit 2
    target = args.config_path or version.source
    if not os.path.isfile(target):
        raise EngineError(f"config file not found: {target}")
    context = _run_context(args)
    params = {"config": target, "version": version.name, "versions_dir": versions}
    record = _execute("restore_config", context, params, _store(args), dry_run=args.dry_run)
    if args.json:
        print(json.dumps(mask_values(record.to_dict()), indent=2, default=str))
    else:
        _print_record(record)
    return 0 if record.state in OK_STATES else 1


# --------------------------------------------------------------------------
# backup --db


def cmd_backup_db(args):
    from engine import audit as audit_mod
    from host import dbbackup
    from host.cli import _default_dir

    dest = args.dest or _default_dir("dumps")
    log = audit_mod.AuditLog(args.audit_log or audit_mod.default_audit_log())
    log.check_writable()
    start = time.monotonic()
    try:
        dump = dbbackup.dump_database(args.db, dest, dsn=args.dsn or "", host=args.host,
                                      port=args.port, user=args.user, keep=args.keep,
                                      pg_dump=args.pg_dump, pg_restore=args.pg_restore)
    except dbbackup.DumpError as exc:
        log.record("backup-db", args.db, "failed", time.monotonic() - start, error=str(exc),
                   dest=dest)
        from host.cli import error

        error(exc)
        return 1
    log.record("backup-db", args.db, "created", time.monotonic() - start, dump=dump.path,
               sha256=dump.sha256, entries=dump.entries, keep=args.keep)
    if args.json:
        print(json.dumps(mask_values(dump.to_dict()), indent=2))
    else:
        print(f"kept {dump.path} ({dump.size} bytes, {dump.entries} entries listed by "
              f"pg_restore --list, sha256 {dump.sha256[:12]})")
    sys.stdout.flush()
    return 0
