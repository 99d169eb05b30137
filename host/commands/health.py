"""``health``: probe Odoo, PostgreSQL, free disk space and log freshness (exit codes of
the monitoring-plugin convention)."""

import json

from engine.secrets import mask_values

from .base import HELP_FORMAT, UsageError, non_negative_float, percent, positive_float, url

HEALTH_EPILOG = """\
Only the checks asked for run:
  --url    GET URL/web/health (server up) and URL/web/health?db_server_status=1
           (Odoo reaches PostgreSQL: Odoo 18 answers 500 when it does not)
  --dsn    connect to PostgreSQL and run SELECT 1 (URI or key=value DSN;
           the password is masked in every message)
  --path   free disk space of the filesystem holding each path
  --log    seconds since each log file was last written

exit codes (monitoring-plugin convention): 0 ok, 1 warning, 2 critical,
3 internal error. Bad input is also 2.
"""


def register(sub):
    p = sub.add_parser(
        "health",
        formatter_class=HELP_FORMAT,
        help="probe Odoo, PostgreSQL, disk space and log freshness",
        description="Probe Odoo, PostgreSQL, free disk space and log freshness.",
        epilog=HEALTH_EPILOG,
    )
    p.add_argument("--url", type=url, help="Odoo base URL, e.g. http://localhost:8069")
    p.add_argument(
        "--dsn", help="PostgreSQL DSN, e.g. postgresql://odoo:PW@localhost:5432/postgres"
    )
    p.add_argument(
        "--path",
        metavar="P",
        action="append",
        default=[],
        help="check free disk space where P lives (repeatable)",
    )
    p.add_argument(
        "--log",
        metavar="FILE",
        action="append",
        default=[],
        help="check how recently FILE was written (repeatable)",
    )
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    p.add_argument(
        "--timeout",
        type=positive_float,
        default=5.0,
        metavar="SECONDS",
        help="HTTP and PostgreSQL timeout (default: 5)",
    )
    p.add_argument(
        "--disk-warn",
        type=percent,
        default=15.0,
        metavar="PCT",
        help="warning at or below PCT%% free (default: 15)",
    )
    p.add_argument(
        "--disk-crit",
        type=percent,
        default=5.0,
        metavar="PCT",
        help="critical at or below PCT%% free (default: 5)",
    )
    p.add_argument(
        "--log-warn",
        type=non_negative_float,
        default=3600,
        metavar="SECONDS",
        help="warning when the log is older than SECONDS (default: 3600)",
    )
    p.add_argument(
        "--log-crit",
        type=non_negative_float,
        default=21600,
        metavar="SECONDS",
        help="critical when the log is older than SECONDS (default: 21600)",
    )
    p.set_defaults(func=run)


def run(args):
    from engine import health

    if not (args.url or args.dsn or args.path or args.log):
        raise UsageError("nothing to check: give --url, --dsn, --path or --log")
    if args.disk_warn < args.disk_crit:
        raise UsageError("argument --disk-warn: must be >= --disk-crit")
    if args.log_warn > args.log_crit:
        raise UsageError("argument --log-warn: must be <= --log-crit")
    checks = []
    if args.url:
        checks.extend(health.check_odoo_http(args.url, timeout=args.timeout))
    if args.dsn:
        checks.append(health.check_postgres(args.dsn, timeout=args.timeout))
    for path in args.path:
        checks.append(health.check_disk(path, args.disk_warn, args.disk_crit))
    for path in args.log:
        checks.append(health.check_log_freshness(path, args.log_warn, args.log_crit))
    status = health.overall(checks)
    if args.json:
        print(json.dumps(mask_values({"status": status, "checks": [c.to_dict() for c in checks]}),
                         indent=2))
    else:
        for c in checks:
            print("%-8s %-12s %s" % (c.status.upper(), c.name.split(":")[0], c.message))
        print("overall: %s" % status.upper())
    return health.exit_code(status)

