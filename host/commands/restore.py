"""``restore --config VERSION``: put a kept config version back (restore_config)."""

import json
import os

from engine.errors import EngineError
from engine.secrets import mask_values

from . import runs
from .base import (
    EXIT_ATTENTION,
    EXIT_OK,
    HELP_FORMAT,
    OK_STATES,
    audit_options,
    default_dir,
    run_options,
)

RESTORE_EPILOG = """\
Restores a config version kept by `backup --config` (or by the monitor's drift
baselines) through the restore_config fix action: the plan with the masked
diff is printed first, the current file is kept as a new version and backed
up, then the version is written atomically (mode and owner included) and
verified; a failed verification rolls back.

exit codes: 0 restored (or already that version), 1 refused, blocked or rolled
back, 2 bad input (unknown version), 3 internal error.
"""


def register(sub):
    p = sub.add_parser("restore", parents=[audit_options(), run_options()],
                       formatter_class=HELP_FORMAT,
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
    p.set_defaults(func=run)


def run(args):
    from engine import backup

    versions = args.versions or default_dir("config")
    version = backup.find_version(versions, args.version)  # EngineError: exit 2
    target = args.config_path or version.source
    if not os.path.isfile(target):
        raise EngineError(f"config file not found: {target}")
    context = runs.run_context(args)
    params = {"config": target, "version": version.name, "versions_dir": versions}
    record = runs.execute("restore_config", context, params, runs.run_store(args),
                          dry_run=args.dry_run)
    if args.json:
        print(json.dumps(mask_values(record.to_dict()), indent=2, default=str))
    else:
        runs.print_record(record)
    return EXIT_OK if record.state in OK_STATES else EXIT_ATTENTION
