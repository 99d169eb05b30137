"""What the parts of the watchdog (host/monitor.py and host/watch/) share: its logger,
its constants and a few helpers."""

import logging
import os
from datetime import datetime, timezone

from host import config as cfg

LOG = logging.getLogger("auto_heal.watchdog")
LOG_FORMAT = "%(asctime)s %(process)d %(levelname)s auto_heal.watchdog: %(message)s"
PROBES = ("startup", "liveness", "readiness", "postgresql", "process")
SERVICES = ("odoo", "postgresql")
HANDOVER_MODEL = "auto_heal.handover"
#: How often the patterns are pulled from Odoo while it answers (seconds).
PATTERNS_REFRESH = 600.0
#: How often the host fix runs approved in Odoo are claimed while it answers (seconds).
APPROVED_POLL = 30.0
#: The fix-run model whose watchdog_claim and watchdog_report the hand-over calls.
FIX_RUN_MODEL = "auto_heal.fix.run"
#: After this many failed cycles in a row the watchdog exits (systemd restarts it).
MAX_FAILED_CYCLES = 10
#: Spool entry kinds.
KINDS = ("incident", "fix_run", "restart", "drift", "escalation", "alert", "health")


def naive_utc(moment):
    """Naive UTC, as the engine's incidents carry their log timestamps."""
    return datetime.fromtimestamp(moment, timezone.utc).replace(tzinfo=None).isoformat(
        sep=" ", timespec="seconds")


def mtime(path):
    try:
        return os.stat(path).st_mtime
    except OSError:
        return 0.0


class ScanStopped(BaseException):
    """Raised by the SIGTERM handler in the middle of a log scan: the scan stops,
    what was read whole is kept, the rest is read at the next start."""


def reset_request_path(config):
    return os.path.join(cfg.state_dir(config), "reset.request")
