"""``status``: what the watchdog knows now, read from its state file (no lock)."""

import json
import os
import time

from engine.errors import EngineError
from engine.secrets import mask_values
from engine.spool import Spool
from host import config as cfg
from host.state import State

from .base import EXIT_ATTENTION, EXIT_OK, HELP_FORMAT

STATUS_EPILOG = """\
Reads the state file (no lock needed): the last decision, probes, restarts in
the window, escalation, spool entries waiting for Odoo, counters.

exit codes: 0 healthy, 1 not healthy or escalated, 2 bad input (no state yet).
"""


def register(sub):
    p = sub.add_parser("status", formatter_class=HELP_FORMAT, help="what the watchdog knows now",
                       description="Print the watchdog's state.", epilog=STATUS_EPILOG)
    p.add_argument("--config", metavar="FILE", required=True, help="the watchdog's TOML config")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=run)


def run(args):
    config = cfg.load(args.config)
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
    return EXIT_OK if report["healthy"] and not escalated else EXIT_ATTENTION
