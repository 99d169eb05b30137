"""``monitor``: the watchdog loop (host/monitor.py), the systemd service."""

import os
import signal

from engine.errors import EngineError
from host import config as cfg
from host.monitor import Monitor, setup_logging, stop_on_signal
from host.sdnotify import Notifier
from host.state import State, StateLock

from .base import EXIT_OK, HELP_FORMAT, positive_int

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


def register(sub):
    p = sub.add_parser("monitor", formatter_class=HELP_FORMAT, help="watch Odoo and PostgreSQL and "
                       "heal them (the systemd service)", description="Run the watchdog loop.",
                       epilog=MONITOR_EPILOG)
    p.add_argument("--config", metavar="FILE", required=True, help="the watchdog's TOML config")
    p.add_argument("--max-cycles", type=positive_int, metavar="N",
                   help="stop after N cycles (tests, one-shot runs)")
    p.add_argument("--patterns", metavar="FILE",
                   help="patterns file (default: [scan] patterns, else <state_dir>/patterns.json "
                        "exported from Odoo, else data/patterns.json)")
    p.add_argument("--verbose", "-v", action="store_true",
                   help="debug lines, also on stderr")
    p.set_defaults(func=run)


def run(args):
    config = cfg.load(args.config)
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
    return EXIT_OK
