"""``reset``: clear the watchdog's escalation and restart counters (handed to a running
watchdog, else changed in the state file under its lock)."""

import json
import os
import time

from engine import fsutil
from engine.audit import AuditLog, current_user, default_actor
from engine.errors import EngineError
from host import config as cfg
from host.monitor import reset_request_path
from host.state import LockedError, State, StateLock

from .base import EXIT_ATTENTION, EXIT_OK, HELP_FORMAT, non_negative_float, warning

RESET_EPILOG = """\
Clears the escalation and the restart counters of the services (both without
--service). With a watchdog running on the same state, the request is handed
to it (<state_dir>/reset.request) and this command waits until it took it;
without one, the state file is changed directly.

exit codes: 0 reset done, 1 the running watchdog did not take the request
within --wait seconds, 2 bad input.
"""


def register(sub):
    p = sub.add_parser("reset", formatter_class=HELP_FORMAT,
                       help="clear an escalation: restarts are allowed again",
                       description="Clear the escalation of the watchdog.",
                       epilog=RESET_EPILOG)
    p.add_argument("--config", metavar="FILE", required=True, help="the watchdog's TOML config")
    p.add_argument("--service", choices=("odoo", "postgresql"), action="append",
                   help="only this service (repeatable; default: both)")
    p.add_argument("--wait", type=non_negative_float, default=30.0, metavar="SECONDS",
                   help="how long to wait for a running watchdog to take it (default: 30)")
    p.set_defaults(func=run)


def run(args):
    config = cfg.load(args.config)
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
        return EXIT_OK
    request = reset_request_path(config)
    data = {"services": services, "by": current_user(), "time": time.time()}
    fsutil.atomic_write(request, json.dumps(data).encode() + b"\n", mode=0o600)
    deadline = time.monotonic() + args.wait
    while time.monotonic() < deadline:
        if not os.path.exists(request):
            print("reset %s: the running watchdog took it" % ", ".join(services))
            return EXIT_OK
        time.sleep(0.2)
    print("the running watchdog did not take the reset within %gs; it will at its next "
          "cycle (%s)" % (args.wait, request))
    return EXIT_ATTENTION


def _audit_reset(config, services, was):
    try:
        log = AuditLog(cfg.audit_path(config), actor=default_actor("cli"))
        for service in services:
            log.record("watchdog.reset", service, "reset", 0.0, was_escalated=service in was)
    except EngineError as exc:
        warning(f"audit log: {exc}")
