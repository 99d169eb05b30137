"""``handover``: send the watchdog's spool to Odoo now."""

import time

from engine.errors import EngineError
from host import config as cfg
from host.monitor import Monitor
from host.state import State

from .base import EXIT_ATTENTION, EXIT_OK, HELP_FORMAT, error


def register(sub):
    p = sub.add_parser("handover", formatter_class=HELP_FORMAT, help="send the spool to Odoo now",
                       description="Send the spool's pending entries to Odoo ([handover] of "
                       "the config) and acknowledge what Odoo took.")
    p.add_argument("--config", metavar="FILE", required=True, help="the watchdog's TOML config")
    p.set_defaults(func=run)


def run(args):
    config = cfg.load(args.config)
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
        error("hand-over to Odoo failed: %s" % monitor.handover_error)
    return EXIT_OK if left == 0 else EXIT_ATTENTION
