"""``bin/auto-heal``: the host watchdog's command line.

It needs neither Odoo nor PostgreSQL: it reads the same patterns and logs as
the addon, probes Odoo and PostgreSQL from outside, and fixes files with the
engine's plan / backup / atomic write / verify / rollback, auditing every
change.

Exit codes, all subcommands:

=====  ====================================================================
0      nothing to report: no incident, health ok, nothing to fix, or done
1      something to look at: incidents found (``detect``), a health warning,
       files that would change (``fix-cron --check``), a fix run that was
       refused, blocked, rolled back or failed (``fix``, ``rollback``,
       ``run-approved``)
2      bad input (missing or unreadable file, bad option, malformed XML,
       broken patterns file), or a critical health check
3      internal error (a bug): one line on stderr; ``AUTO_HEAL_DEBUG=1``
       shows the traceback
=====  ====================================================================

Errors are one line on stderr: ``auto-heal: error: ...``; warnings likewise
``auto-heal: warning: ...``. Never a traceback.
"""

import argparse
import json
import os
import re
import signal
import sys
import time

from engine import audit as audit_mod
from engine.errors import EngineError
from engine.secrets import mask_secrets, mask_values

PROG = "auto-heal"
SEVERITIES = ("low", "medium", "high", "critical")
_SEV_RANK = {s: i for i, s in enumerate(SEVERITIES)}

SYSTEM_STATE_DIR = "/var/lib/odoo_auto_heal"


class UsageError(Exception):
    """Bad command line: printed as one line, exit code 2."""


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line and exit code 2."""

    def error(self, message):
        raise UsageError(message)


def _one_line(text):
    return mask_secrets(" ".join(str(text).split()))


def error(message):
    sys.stderr.write("%s: error: %s\n" % (PROG, _one_line(message)))


def warning(message):
    sys.stderr.write("%s: warning: %s\n" % (PROG, _one_line(message)))


def _default_dir(sub, environ=None):
    """``$AUTO_HEAL_HOME/<sub>``, else /var/lib/odoo_auto_heal/<sub> when
    writable, else ``$XDG_STATE_HOME/auto_heal/<sub>`` (~/.local/state)."""
    environ = os.environ if environ is None else environ
    home = environ.get("AUTO_HEAL_HOME")
    if home:
        return os.path.join(home, sub)
    if audit_mod._writable_dir(SYSTEM_STATE_DIR):
        return os.path.join(SYSTEM_STATE_DIR, sub)
    state = environ.get("XDG_STATE_HOME") or os.path.join(
        os.path.expanduser("~"), ".local", "state"
    )
    return os.path.join(state, "auto_heal", sub)


# --------------------------------------------------------------------------
# argument types


def _positive_float(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError("%r is not a number" % text) from None
    if not value > 0 or value != value or value == float("inf"):
        raise argparse.ArgumentTypeError("%r must be a number > 0" % text)
    return value


def _non_negative_float(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError("%r is not a number" % text) from None
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError("%r must be a number >= 0" % text)
    return value


def _percent(text):
    value = _non_negative_float(text)
    if value > 100:
        raise argparse.ArgumentTypeError("%r must be a percentage between 0 and 100" % text)
    return value


def _positive_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError("%r is not an integer" % text) from None
    if value < 1:
        raise argparse.ArgumentTypeError("%r must be at least 1" % text)
    return value


def _url(text):
    from urllib.parse import urlsplit

    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise argparse.ArgumentTypeError("%r is not an http(s) URL" % mask_secrets(text))
    return text


# --------------------------------------------------------------------------
# parser

EXIT_CODES = """exit codes: 0 nothing to report, 1 something to look at, 2 bad input
(or a critical health check), 3 internal error."""

DETECT_EPILOG = """\
Prints one block per incident: pattern type, severity, count, first and last
seen, source file:line, captures (for cron_field_deprecated the XML file and
line) and a masked sample. With --json:
  {"incidents": [{"pattern", "severity", "count", "fingerprint", "first_seen",
   "last_seen", "sample", "source": {"path", "line"}, "captures", ...}],
   "bytes_scanned": N}
(with --follow, one such JSON object per line and per round).

--state FILE keeps a cursor per log: each run reports only what was written
since the last one (a record still being written is left for the next run,
see --settle). Without --state every run scans the whole files.

exit codes: 0 no incident (at or above --min-severity), 1 incidents found,
2 bad input, 3 internal error. --follow exits 0 on Ctrl-C.
"""

FIX_CRON_EPILOG = """\
Odoo 18 removed the ir.cron fields numbercall and doall; a module whose XML
data still sets either fails to install ("Invalid field 'numbercall' on model
'ir.cron'", then "Failed to initialize database"). Both are removed at once.
Only <record model="ir.cron"> records of Odoo data files are touched, and
only those fields; every other byte (comments, encoding, quoting, blank lines,
line endings) is kept. It is the remove_deprecated_cron_fields fix action,
run once per file through the engine's runner: each changed file is backed
up first (bytes, mode, owner, sha256), written atomically, verified, and
restored from the backup if verification fails; each step is one line in the
audit log, and each fixed file prints a run id that `rollback` undoes.

defaults: --backup-dir $AUTO_HEAL_HOME/backups, else
/var/lib/odoo_auto_heal/backups when writable, else
~/.local/state/auto_heal/backups; --runs-dir likewise .../runs.
--audit-log $AUTO_HEAL_HOME/audit.jsonl, else
/var/log/odoo_auto_heal/audit.jsonl when writable, else
~/.local/state/auto_heal/audit.jsonl.

exit codes: 0 done or nothing to fix, 1 (--check) files would change, or a
file was refused by its budget or rolled back, 2 bad input (a missing path,
malformed XML: the other files are still processed), 3 internal error.
"""

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

BACKUP_EPILOG = """\
--config FILE keeps DEST/NAME.YYYYmmddTHHMMSSZ.<sha8> (mode 0600: a config
holds passwords) and DEST/NAME.YYYYmmddTHHMMSSZ.<sha8>.json (sha256, size,
mode, owner, source path, time). A config identical to its latest version is
not copied again. Only the --keep newest versions of that file are kept
(default 20). `restore --config VERSION` puts one back.

--db NAME runs pg_dump --format=custom into DEST/NAME.YYYYmmddTHHMMSSZ.dump
(mode 0600), then reads it back with pg_restore --list: a dump that does not
list is deleted and the command fails. Kept with NAME.<time>.dump.json
(sha256, size, entries, server version); only the --keep newest dumps of NAME
are kept (default 7). Connection: --dsn and/or --host/--port/--user, else
libpq's PG* variables; a password never goes on an argv (PGPASSWORD).

defaults: --dest $AUTO_HEAL_HOME/config (dumps: .../dumps), else
/var/lib/odoo_auto_heal/config when writable, else ~/.local/state/auto_heal/config.

exit codes: 0 kept (or unchanged), 1 pg_dump failed or the dump did not list
(nothing kept), 2 bad input, 3 internal error.
"""


FIX_EPILOG = """\
Every fix goes through the engine's runner: plan (printed first, with a
unified diff for files, secrets masked) -> budget -> backup -> apply ->
verify -> rollback when verification fails. Each step is one line in the
audit log; the run record is kept in the runs folder for `rollback RUN_ID`.

The host actions are remove_deprecated_cron_fields, fix_permissions,
restart_service and restore_config; `fix ACTION --help` lists the options of
one, derived from the parameters it declares (engine/actions/params.py).

exit codes: 0 done, nothing to change, or planned (--dry-run); 1 refused,
blocked, rolled back or failed; 2 bad input; 3 internal error.
"""

FIX_ACTION_EPILOG = """\
budgets: an action may run on one target at most --budget-max-runs times
within --budget-window seconds (default 3 in 1800), waiting --budget-delay
seconds after a run, doubling each time (default 30). Over budget the run
is refused, nothing is touched, and the record says escalate.

defaults: --backup-dir $AUTO_HEAL_HOME/backups, --runs-dir $AUTO_HEAL_HOME/runs,
--versions $AUTO_HEAL_HOME/config (else /var/lib/odoo_auto_heal/..., else
~/.local/state/auto_heal/...); --audit-log as for fix-cron.

exit codes: 0 done, nothing to change, or planned (--dry-run); 1 refused,
blocked, rolled back or failed; 2 bad input; 3 internal error.
"""

ROLLBACK_EPILOG = """\
Undoes a done host run from the backup kept in its run record: exact bytes,
mode and owner for files, modes and owners for fix_permissions. A restart
cannot be undone (refused). The record is updated to rolled_back.

exit codes: 0 rolled back, 1 refused (not a done run, irreversible) or the
rollback failed, 2 bad input (unknown run id), 3 internal error.
"""

RUN_APPROVED_EPILOG = """\
Logs in to Odoo over JSON-RPC with an API key (--api-key-file, mode 0600 and
owned by this user, else $AUTO_HEAL_API_KEY; never printed), claims the
approved host fix runs bound to this host (auto_heal.fix.run.watchdog_claim(HOST):
the runs whose target host is HOST, each with a claim token), runs each one
here through the runner (budgets from the local runs folder), and writes each
record back (watchdog_report(id, record, claim_token=..., host=HOST): Odoo
takes it only from the user, host and claim that took the run).

The host takes data from Odoo, never power (readme/SECURITY.md): Odoo's run
names which file, which version, which service; a run that carries a host
parameter (a program, a unit, a container, an owner, a mode, a root, a DSN or
URL, a file to read, a timeout) is refused and reported back as failed. This
host's parameters come from --config (the watchdog's TOML: [fixes] roots,
[actions.NAME], [odoo.restart] and [postgresql.restart], [drift] for the
config files restore_config may put back) and from --root and --versions.

exit codes: 0 every claimed run done or nothing to change (or none claimed),
1 a run was refused, blocked, rolled back or failed, or a report did not
reach Odoo, 2 bad input, Odoo unreachable or the login refused, 3 internal
error.
"""


def _add_fix_actions(parser, fmt, parents):
    """``fix ACTION``: a sub-command per registered action (engine/actions/params.py)."""
    from engine.actions import actions
    from engine.actions.params import add_cli_options

    common = _Parser(add_help=False)
    common.add_argument("--dry-run", action="store_true", help="print the plan only")
    common.add_argument("--yes", action="store_true", help="run without asking (the default)")
    common.add_argument("--json", action="store_true", help="print the run record as JSON")
    common.add_argument("--incident", metavar="FINGERPRINT", default="",
                        help="the incident this run is for (kept in the record and the audit "
                        "log)")
    sub = parser.add_subparsers(dest="action", metavar="ACTION", parser_class=_Parser)
    sub.required = True
    for name, action in actions().items():
        if action.runs_on != "host":
            p = sub.add_parser(name, help=f"(runs inside Odoo) {action.description}")
            p.set_defaults(func=cmd_fix, fix_action=name)
            continue
        p = sub.add_parser(name, parents=[common, *parents], formatter_class=fmt,
                           help=action.description, description=action.description,
                           epilog=FIX_ACTION_EPILOG)
        add_cli_options(p, action)
        p.set_defaults(func=cmd_fix, fix_action=name)


def build_parser(argv=None):
    fix_actions = bool(argv) and "fix" in argv[:1]
    parser = _Parser(
        prog=PROG,
        description="auto_heal host watchdog: detect Odoo failures in logs, probe health, "
        "fix files safely. Works without Odoo and without PostgreSQL.",
        epilog=EXIT_CODES,
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    fmt = argparse.RawDescriptionHelpFormatter

    audit_parent = _Parser(add_help=False)
    audit_parent.add_argument(
        "--audit-log", metavar="FILE", help="JSON-lines audit log (default: see below)"
    )

    # detect
    p = sub.add_parser(
        "detect",
        help="scan Odoo logs and print incidents",
        formatter_class=fmt,
        description="Scan Odoo log files against the pattern database and print incidents.",
        epilog=DETECT_EPILOG,
    )
    p.add_argument(
        "--log",
        metavar="FILE",
        action="append",
        required=True,
        help="an Odoo log file (repeat for several)",
    )
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    p.add_argument(
        "--state", metavar="FILE", help="remember cursors in FILE and report only new findings"
    )
    p.add_argument(
        "--patterns",
        metavar="FILE",
        help="patterns file (default: $AUTO_HEAL_PATTERNS, else data/patterns.json of auto_heal)",
    )
    p.add_argument(
        "--follow",
        metavar="SECONDS",
        type=_positive_float,
        help="rescan every SECONDS and print new incidents until Ctrl-C",
    )
    p.add_argument(
        "--min-severity",
        choices=SEVERITIES,
        default="low",
        help="report only incidents at or above this severity (default: low)",
    )
    p.add_argument(
        "--settle",
        metavar="SECONDS",
        type=_non_negative_float,
        default=10.0,
        help="incremental scans (--state, --follow) leave a last record that "
        "changed less than SECONDS ago for the next scan (default: 10)",
    )
    p.set_defaults(func=cmd_detect)

    # fix-cron
    p = sub.add_parser(
        "fix-cron",
        parents=[audit_parent],
        formatter_class=fmt,
        help="remove ir.cron fields Odoo 18 no longer has (numbercall, doall)",
        description="Remove from ir.cron records in Odoo XML data files every field Odoo 18 "
        "no longer has (numbercall, doall), all at once.",
        epilog=FIX_CRON_EPILOG,
    )
    mode = p.add_mutually_exclusive_group()
    mode.add_argument(
        "--dry-run", action="store_true", help="print the unified diff, change nothing"
    )
    mode.add_argument(
        "--check",
        action="store_true",
        help="change nothing; exit 1 when a file would change (for CI)",
    )
    p.add_argument(
        "paths",
        nargs="*",
        metavar="PATH",
        help="XML files or folders (searched recursively for *.xml)",
    )
    p.add_argument(
        "--from-log",
        metavar="FILE",
        action="append",
        default=[],
        help="fix exactly the XML files this Odoo log's errors name",
    )
    p.add_argument(
        "--patterns",
        metavar="FILE",
        help="patterns file for --from-log (default: $AUTO_HEAL_PATTERNS, else data/patterns.json)",
    )
    p.add_argument(
        "--root",
        metavar="DIR",
        action="append",
        default=[],
        help="refuse files outside DIR (repeatable); recommended with --from-log",
    )
    p.add_argument("--backup-dir", metavar="DIR", help="where backups go (default: see below)")
    p.add_argument(
        "--runs-dir", metavar="DIR", help="where run records go (default: see below)"
    )
    p.set_defaults(func=cmd_fix_cron)

    # health
    p = sub.add_parser(
        "health",
        formatter_class=fmt,
        help="probe Odoo, PostgreSQL, disk space and log freshness",
        description="Probe Odoo, PostgreSQL, free disk space and log freshness.",
        epilog=HEALTH_EPILOG,
    )
    p.add_argument("--url", type=_url, help="Odoo base URL, e.g. http://localhost:8069")
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
        type=_positive_float,
        default=5.0,
        metavar="SECONDS",
        help="HTTP and PostgreSQL timeout (default: 5)",
    )
    p.add_argument(
        "--disk-warn",
        type=_percent,
        default=15.0,
        metavar="PCT",
        help="warning at or below PCT%% free (default: 15)",
    )
    p.add_argument(
        "--disk-crit",
        type=_percent,
        default=5.0,
        metavar="PCT",
        help="critical at or below PCT%% free (default: 5)",
    )
    p.add_argument(
        "--log-warn",
        type=_non_negative_float,
        default=3600,
        metavar="SECONDS",
        help="warning when the log is older than SECONDS (default: 3600)",
    )
    p.add_argument(
        "--log-crit",
        type=_non_negative_float,
        default=21600,
        metavar="SECONDS",
        help="critical when the log is older than SECONDS (default: 21600)",
    )
    p.set_defaults(func=cmd_health)

    # backup
    p = sub.add_parser(
        "backup",
        parents=[audit_parent],
        formatter_class=fmt,
        help="keep a versioned copy of odoo.conf (--config) or a checked pg_dump (--db)",
        description="Keep a versioned copy of a config file (odoo.conf) with its checksum, "
        "or a pg_dump of a database checked with pg_restore --list.",
        epilog=BACKUP_EPILOG,
    )
    p.add_argument(
        "--config", metavar="FILE", help="the config file, e.g. /etc/odoo/odoo.conf"
    )
    p.add_argument("--db", metavar="NAME", help="dump this database with pg_dump instead")
    p.add_argument("--dsn", help="--db: PostgreSQL DSN (its password goes to PGPASSWORD, "
                   "never to an argv)")
    p.add_argument("--host", help="--db: PostgreSQL host or socket folder")
    p.add_argument("--port", type=_positive_int, help="--db: PostgreSQL port")
    p.add_argument("--user", help="--db: PostgreSQL role")
    p.add_argument("--pg-dump", metavar="BIN", help="--db: pg_dump binary (default: on PATH)")
    p.add_argument("--pg-restore", metavar="BIN",
                   help="--db: pg_restore binary (default: on PATH)")
    p.add_argument("--dest", metavar="DIR", help="where versions go (default: see below)")
    p.add_argument(
        "--keep",
        type=_positive_int,
        default=None,
        metavar="N",
        help="keep the N newest versions of this file (default: 20) or dumps (default: 7)",
    )
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    p.set_defaults(func=cmd_backup)

    run_parent = _Parser(add_help=False)
    run_parent.add_argument(
        "--backup-dir", metavar="DIR", help="where file backups go (default: see below)"
    )
    run_parent.add_argument(
        "--runs-dir", metavar="DIR", help="where run records go (default: see below)"
    )
    budget_parent = _Parser(add_help=False)
    budget_parent.add_argument(
        "--budget-max-runs", type=_positive_int, default=3, metavar="N",
        help="at most N runs per action and target within the window (default: 3)",
    )
    budget_parent.add_argument(
        "--budget-window", type=_positive_float, default=1800.0, metavar="SECONDS",
        help="the budget window (default: 1800)",
    )
    budget_parent.add_argument(
        "--budget-delay", type=_non_negative_float, default=30.0, metavar="SECONDS",
        help="wait after a run, doubling after each further run (default: 30)",
    )

    # fix: one sub-command per action, its options derived from the action's declarations
    p = sub.add_parser(
        "fix",
        formatter_class=fmt,
        help="plan and run one fix action on this host",
        description="Print the plan of a host fix action, then run it (backup, apply, "
        "verify, rollback on failure) unless --dry-run. `fix ACTION --help` shows that "
        "action's options.",
        epilog=FIX_EPILOG,
    )
    if fix_actions:
        _add_fix_actions(p, fmt, [audit_parent, run_parent, budget_parent])
    else:  # a start that does not fix anything does not load the actions (idle memory)
        p.add_argument("action", metavar="ACTION", help="the fix action, e.g. fix_permissions")
        p.set_defaults(func=cmd_fix)

    # rollback
    p = sub.add_parser(
        "rollback",
        parents=[audit_parent, run_parent],
        formatter_class=fmt,
        help="undo a done host fix run from its backup",
        description="Undo a done host fix run from the backup kept in its run record.",
        epilog=ROLLBACK_EPILOG,
    )
    p.add_argument("run_id", metavar="RUN_ID", help="the run id `fix` printed")
    p.set_defaults(func=cmd_rollback)

    # run-approved
    p = sub.add_parser(
        "run-approved",
        parents=[audit_parent, run_parent, budget_parent],
        formatter_class=fmt,
        help="run the host fix runs approved in Odoo and report back",
        description="Claim the approved host fix runs from Odoo, run them here, and write "
        "their state and output back.",
        epilog=RUN_APPROVED_EPILOG,
    )
    p.add_argument("--url", type=_url, required=True, help="Odoo base URL")
    p.add_argument("--db", required=True, help="Odoo database")
    p.add_argument("--login", default=None,
                   help="Odoo login owning the API key (default: $AUTO_HEAL_LOGIN, else admin)")
    p.add_argument("--api-key-file", metavar="FILE",
                   help="file holding the API key (default: $AUTO_HEAL_API_KEY)")
    p.add_argument("--host", default=None,
                   help="the name this host claims runs as (default: the hostname)")
    p.add_argument("--config", metavar="FILE",
                   help="the watchdog's TOML config: this host's parameters ([fixes] roots, "
                   "[actions.NAME], [odoo.restart], [postgresql.restart], [drift])")
    p.add_argument("--root", metavar="DIR", action="append", default=[],
                   help="allowed root for file actions (repeatable), besides [fixes] roots")
    p.add_argument("--versions", metavar="DIR",
                   help="config versions for restore_config (default: as for fix)")
    p.add_argument("--timeout", type=_positive_float, default=30.0, metavar="SECONDS",
                   help="JSON-RPC timeout (default: 30)")
    p.set_defaults(func=cmd_run_approved)

    from host import cli_monitor

    cli_monitor.register(sub, fmt, [audit_parent, run_parent])
    return parser


# --------------------------------------------------------------------------
# detect


def _load_patterns(path):
    from engine.patterns import load_patterns
    from engine.scanner import DEFAULT_PATTERNS

    pattern_set = load_patterns(path or os.environ.get("AUTO_HEAL_PATTERNS") or DEFAULT_PATTERNS)
    for message in pattern_set.errors:
        warning("patterns: %s" % message)
    return pattern_set


def _check_readable(path, what="log file"):
    if not os.path.exists(path):
        raise EngineError("%s not found: %s" % (what, path))
    if os.path.isdir(path):
        raise EngineError("%s is a folder: %s" % (what, path))
    if not os.access(path, os.R_OK):
        raise EngineError("%s is not readable: %s" % (what, path))


def _iso(value):
    return value or "-"


def _print_incident_text(incident, out):
    from host.output import terminal_safe

    out = _SafeWriter(out, terminal_safe)
    d = incident.to_dict()
    out.write("[%s] %s  count=%d\n" % (d["severity"], d["pattern"], d["count"]))
    out.write("  first seen: %s   last seen: %s\n" % (_iso(d["first_seen"]), _iso(d["last_seen"])))
    out.write("  source: %s:%s\n" % (d["source"]["path"], d["source"]["line"]))
    if d.get("message"):
        out.write("  message: %s\n" % mask_secrets(d["message"].split("\n")[0][:300]))
    if d["captures"]:
        out.write(
            "  captures: %s\n"
            % " ".join(
                "%s=%s" % (k, mask_secrets(str(v))) for k, v in sorted(d["captures"].items())
            )
        )
    lines = mask_secrets(d["sample"] or "").split("\n")
    shown = _sample_lines(lines)
    out.write("  sample:\n")
    for line in shown:
        out.write("    | %s\n" % line[:300])
    if len(lines) > len(shown):
        out.write(
            "    | ... (%d more lines; --json shows the whole sample)\n" % (len(lines) - len(shown))
        )
    out.write("\n")


class _SafeWriter:
    """A stream whose writes pass through *clean* (log text never drives the terminal)."""

    def __init__(self, stream, clean):
        self.stream, self.clean = stream, clean

    def write(self, text):
        return self.stream.write(self.clean(text))


_EXCEPTION_LINE = re.compile(r"^[A-Za-z_][\w.]*(?:Error|Exception|Warning|Exit|Failure)\b.*")


def _sample_lines(lines, limit=6):
    """A few lines of a sample: its first line, then the exception lines.

    >>> sample = ["2026 ... CRITICAL db x: Failed", "Traceback", "  File a", "ValueError: bad",
    ...           "", "odoo.tools.convert.ParseError: while parsing /a.xml:3"]
    >>> for line in _sample_lines(sample, limit=3):
    ...     print(line)
    2026 ... CRITICAL db x: Failed
    ValueError: bad
    odoo.tools.convert.ParseError: while parsing /a.xml:3
    """
    if len(lines) <= limit:
        return lines
    picked = [lines[0]] + [line for line in lines[1:] if _EXCEPTION_LINE.match(line)]
    if len(picked) == 1:
        return lines[:limit]
    return picked[:1] + picked[1:][-(limit - 1) :]


def _select(incidents, min_severity):
    floor = _SEV_RANK[min_severity]
    chosen = [i for i in incidents if _SEV_RANK.get(i.severity, len(SEVERITIES)) >= floor]
    order = {id(i): n for n, i in enumerate(chosen)}
    chosen.sort(key=lambda i: (-_SEV_RANK.get(i.severity, 0), order[id(i)]))
    return chosen


#: Seconds ``detect --state`` waits for another run holding the same state file.
STATE_LOCK_WAIT = 30.0


class _Detector:
    """Scan a set of logs, with cursors kept in memory (and in --state)."""

    def __init__(self, args):
        from engine.scanner import Scanner

        self.args = args
        self.logs = list(dict.fromkeys(args.log))
        for path in self.logs:
            _check_readable(path)
        self.state = None
        if args.state:
            from host.state import State

            self.state = State.load(args.state)
        self.incremental = bool(args.state or args.follow)
        self.missing = set()
        self.cursors = {}
        if self.state:
            for path in self.logs:
                self.cursors[path] = self.state.cursor(path)
        from engine.matcher import prepare_cache_dir

        # The compiled pattern database is kept in the state folder's cache/.
        self.scanner = Scanner(_load_patterns(args.patterns),
                               cache_dir=prepare_cache_dir(_default_dir("cache")))

    def scan(self, tolerate_missing=False):

        if self.state is None:
            return self._scan(tolerate_missing)
        from host.state import State, StateLock

        # one detect at a time per state file: cursors read, scanned and saved under
        # the lock, so two runs never report the same records or lose an update
        lock = StateLock(self.args.state).acquire(timeout=STATE_LOCK_WAIT,
                                                  who="another auto-heal")
        try:
            self.state = State.load(self.args.state)
            for path in self.logs:
                self.cursors[path] = self.state.cursor(path)
            return self._scan(tolerate_missing)
        finally:
            lock.release()

    def _scan(self, tolerate_missing):
        from engine.errors import LogSourceError

        incidents, scanned = {}, 0
        for path in self.logs:
            try:
                result = self.scanner.scan_file(
                    path,
                    self.cursors.get(path),
                    final=not self.incremental,
                    settle_seconds=self.args.settle,
                    incidents=incidents,  # folded as found: memory stays flat
                )
            except LogSourceError as exc:
                if not tolerate_missing:
                    raise
                if path not in self.missing:  # say it once, not every round
                    self.missing.add(path)
                    warning(str(exc))
                continue
            self.missing.discard(path)
            for message in result.warnings:
                warning("%s: %s" % (path, message))
            self.cursors[path] = result.cursor
            scanned += result.bytes_scanned
        if self.state is not None:
            for path, cursor in self.cursors.items():
                self.state.set_cursor(path, cursor)
            self.state.save()
        return _select(list(incidents.values()), self.args.min_severity), scanned

    def report(self, incidents, scanned, out, follow=False, quiet_if_empty=False):
        if self.args.json:
            if quiet_if_empty and not incidents:
                return
            if follow:
                doc = _json_incident({"incidents": [i.to_dict() for i in incidents],
                                      "bytes_scanned": scanned})
                out.write(json.dumps(doc, ensure_ascii=False, sort_keys=False) + "\n")
            else:
                _write_json_report(incidents, scanned, out)
        else:
            for incident in incidents:
                _print_incident_text(incident, out)
            if not quiet_if_empty or incidents:
                total = sum(i.count for i in incidents)
                if incidents:
                    out.write(
                        "%d incident(s), %d finding(s), %d bytes scanned\n"
                        % (len(incidents), total, scanned)
                    )
                else:
                    out.write("no incidents, %d bytes scanned\n" % scanned)
        out.flush()


def _json_incident(data):
    """What --json prints of an incident: secrets masked, valid UTF-8."""
    from host.output import json_safe

    return json_safe(mask_values(data))


def _write_json_report(incidents, scanned, out):
    """``json.dumps({"incidents": [...], "bytes_scanned": n}, indent=2)``, written
    one incident at a time so that a large report never sits in memory twice.

    >>> import io
    >>> class Incident:
    ...     def to_dict(self):
    ...         return {"pattern": "x", "captures": {"a": "b"}}
    >>> out = io.StringIO()
    >>> _write_json_report([Incident(), Incident()], 7, out)
    >>> doc = {"incidents": [Incident().to_dict()] * 2, "bytes_scanned": 7}
    >>> out.getvalue() == json.dumps(doc, indent=2, ensure_ascii=False) + chr(10)
    True
    """
    if not incidents:
        out.write(json.dumps({"incidents": [], "bytes_scanned": scanned}, indent=2) + "\n")
        return
    out.write('{\n  "incidents": [\n')
    for number, incident in enumerate(incidents):
        text = json.dumps(_json_incident(incident.to_dict()), indent=2, ensure_ascii=False)
        # JSON strings hold no raw newline: every newline is the encoder's.
        out.write("    " + text.replace("\n", "\n    "))
        out.write(",\n" if number < len(incidents) - 1 else "\n")
    out.write('  ],\n  "bytes_scanned": %s\n}\n' % json.dumps(scanned))


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt


def cmd_detect(args):
    if args.follow:
        # Ctrl-C and systemd's SIGTERM both end --follow cleanly (exit 0), also while
        # the first scan runs. A shell starts background jobs with SIGINT ignored:
        # restore it.
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        detector = _Detector(args)
        incidents, scanned = detector.scan()
        detector.report(incidents, scanned, sys.stdout, follow=bool(args.follow))
    except KeyboardInterrupt:
        if args.follow:
            return 0
        raise
    if not args.follow:
        return 1 if incidents else 0
    try:
        while True:
            time.sleep(args.follow)
            incidents, scanned = detector.scan(tolerate_missing=True)
            detector.report(incidents, scanned, sys.stdout, follow=True, quiet_if_empty=True)
    except KeyboardInterrupt:
        return 0


# --------------------------------------------------------------------------
# fix-cron


CRON_ACTION = "remove_deprecated_cron_fields"


def _removals_text(removals):
    return ", ".join(
        "%s (line %d%s)"
        % (r["field"], r["line"], ", record %s" % r["record_id"] if r["record_id"] else "")
        for r in removals
    )


def _plain_error(text):
    """The cause of a blocked run, without the runner's prefixes.

    >>> _plain_error("planning failed: CronFieldError: /a.xml:3: malformed XML: x")
    '/a.xml:3: malformed XML: x'
    """
    text = re.sub(r"^planning failed: ", "", text or "")
    return re.sub(r"^[A-Z]\w*(?:Error|Exception): ", "", text)


def cmd_fix_cron(args):
    """fix-cron: the remove_deprecated_cron_fields action, one run per XML file."""
    try:
        from engine.actions.runner import Context, execute
    except ImportError as exc:
        raise EngineError(
            "fix-cron needs the python package %s (pip install -r requirements.txt)"
            % (exc.name or exc)
        ) from None
    from engine import fsutil
    from engine import xmledit as cron_fields
    from engine.budget import BudgetPolicy

    if not args.paths and not args.from_log:
        raise UsageError("fix-cron needs a PATH or --from-log FILE")
    if args.from_log and not args.root:
        raise UsageError("--from-log needs --root DIR: a log is text anyone can write, so the "
                         "files it names are fixed only inside folders you name")
    for root in args.root:
        if not os.path.isdir(root):
            raise UsageError("argument --root: not a folder: %s" % root)

    failures = 0
    files = []
    if args.paths:
        for path in args.paths:
            if not os.path.exists(path):
                raise EngineError("no such file or folder: %s" % path)
        files.extend(
            cron_fields.find_xml_files(
                args.paths, on_skip=lambda p, reason: warning("skipped %s" % reason)
            )
        )
    if args.from_log:
        pattern_set = _load_patterns(args.patterns)
        for log in args.from_log:
            _check_readable(log)
        named = []
        for log in args.from_log:
            found, missing = cron_fields.files_from_log(log, pattern_set)
            named.extend(path for path in found if path not in named)
            for path in missing:
                warning("%s names %s, which does not exist here" % (log, path))
        if not named:
            print("the log names no existing ir.cron XML file to fix")
        files.extend(named)

    checked = []
    for path in dict.fromkeys(files):
        if args.root:
            try:
                path = fsutil.resolve_inside(path, args.root)
            except fsutil.PathEscapeError as exc:
                error(str(exc))
                failures += 1
                continue
        checked.append(path)

    # plan each file through the runner (a dry run: nothing written, nothing audited)
    backup_dir = args.backup_dir or _default_dir("backups")
    quiet = Context(actor=audit_mod.default_actor("cli"), backup_dir=backup_dir,
                    roots=tuple(args.root))
    planned, unchanged = [], 0
    for path in checked:
        record = execute(CRON_ACTION, quiet, {"paths": [path]}, dry_run=True)
        if record.state != "planned":
            error(_plain_error(record.error))
            failures += 1
        elif not record.plan["changes"]:
            unchanged += 1
        else:
            planned.append((path, record))

    if args.dry_run or args.check:
        for path, record in planned:
            if args.dry_run:
                sys.stdout.write(record.plan["diff"])
            else:
                print("would fix %s: %s" % (
                    path, _removals_text(record.plan["details"]["files"][0]["removals"])))
        print(
            "%d file(s) would change, %d with nothing to fix, %d error(s)"
            % (len(planned), unchanged, failures)
        )
        if failures:
            return 2
        return 1 if (args.check and planned) else 0

    fixed = not_done = 0
    if planned:
        context = Context(actor=quiet.actor, audit=_audit_log(args), backup_dir=backup_dir,
                          roots=tuple(args.root))
        store = _store(args)
        for path, dry in planned:
            record = _execute(CRON_ACTION, context, {"paths": [path]}, store,
                              budget=BudgetPolicy(), target=dry.target)
            if record.state == "done":
                fixed += 1
                removals = record.plan["details"]["files"][0]["removals"]
                print("fixed %s: removed %s; backup %s (run %s)" % (
                    path, _removals_text(removals),
                    record.backup["files"][0]["backup_path"], record.run_id))
            elif record.state == "noop":
                unchanged += 1
            elif record.state == "blocked":
                failures += 1
                error("%s: %s" % (path, _plain_error(record.error)))
            else:
                not_done += 1
                error("%s: %s (run %s): %s" % (path, record.state, record.run_id,
                                                _one_line(record.error)))
    print("%d file(s) fixed, %d with nothing to fix, %d error(s)"
          % (fixed, unchanged, failures + not_done))
    return 2 if failures else 1 if not_done else 0


# --------------------------------------------------------------------------
# health


def cmd_health(args):
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


# --------------------------------------------------------------------------
# backup


def cmd_backup(args):
    from engine import backup

    if bool(args.config) == bool(args.db):
        raise UsageError("backup needs --config FILE (a config version) or --db NAME (a "
                         "pg_dump), one of them")
    db_only = ("dsn", "host", "port", "user", "pg_dump", "pg_restore")
    if args.db:
        from host.cli_monitor import cmd_backup_db

        args.keep = args.keep or 7
        return cmd_backup_db(args)
    given = [name for name in db_only if getattr(args, name)]
    if given:
        raise UsageError("%s go(es) with --db" % ", ".join(_option_name(n) for n in given))
    args.keep = args.keep or 20
    _check_readable(args.config, "config file")
    dest = args.dest or _default_dir("config")
    log = audit_mod.AuditLog(args.audit_log or audit_mod.default_audit_log())
    log.check_writable()
    start = time.monotonic()
    try:
        version = backup.backup_config(args.config, dest, keep=args.keep)
    except EngineError as exc:
        log.record(
            "backup-config",
            os.path.realpath(args.config),
            "failed",
            time.monotonic() - start,
            error=_one_line(exc),
            dest=dest,
        )
        raise
    result = "created" if version.created else "unchanged"
    if version.created:
        log.record(
            "backup-config",
            version.source,
            result,
            time.monotonic() - start,
            version=version.path,
            sha256=version.sha256,
            keep=args.keep,
        )
    if args.json:
        data = version.to_dict()
        data["created"] = version.created
        print(json.dumps(mask_values(data), indent=2))
    elif version.created:
        print("kept %s (sha256 %s)" % (version.path, version.sha256))
    else:
        print("unchanged: %s already holds sha256 %s" % (version.path, version.sha256))
    return 0


# --------------------------------------------------------------------------
# fix actions: the runner, budgets, run records


#: Options of ``fix`` each host action understands (argparse dest names).
#: States of a run record that need no one's attention.
OK_STATES = ("done", "noop", "planned")


def _option_name(dest):
    return "--" + dest.replace("_", "-")


def _audit_log(args):
    log = audit_mod.AuditLog(args.audit_log or audit_mod.default_audit_log())
    log.check_writable()
    return log


def _run_context(args, actor=None, roots=(), timeout=60.0):
    from engine.actions.runner import Context

    return Context(
        actor=actor or audit_mod.default_actor("cli"),
        audit=_audit_log(args),
        backup_dir=args.backup_dir or _default_dir("backups"),
        roots=tuple(roots),
        timeout=timeout,
    )


def _store(args):
    from engine.actions.store import RunStore

    return RunStore(args.runs_dir or _default_dir("runs"))


def _budget(args):
    from engine.budget import BudgetPolicy

    return BudgetPolicy(
        max_runs=args.budget_max_runs, window=args.budget_window, first_delay=args.budget_delay
    )


def _execute(name, context, params, store, *, dry_run=False, budget=None, incident="",
             target=None):
    """Run *name* through the runner with the budget history of its target; save it.

    The target is what the plan says; a plan-only run (not audited) finds it
    first unless the caller knows it.
    """
    import dataclasses

    from engine.actions.runner import execute

    history = ()
    if budget is not None and not dry_run:
        if target is None:
            quiet = dataclasses.replace(context, audit=None)
            target = execute(name, quiet, params, dry_run=True).target
        if target:
            history = store.history(name, target)
    record = execute(name, context, params, incident=incident, dry_run=dry_run,
                     budget=budget, history=history)
    return store.save(record.masked())


def _print_record(record, out=None):
    from engine.actions.base import Plan

    out = out or sys.stdout
    if record.plan:
        plan = Plan.from_dict(record.plan)
        out.write(plan.text() + "\n")
        if plan.diff:
            out.write(plan.diff if plan.diff.endswith("\n") else plan.diff + "\n")
    out.write("run %s: %s\n" % (record.run_id, record.state))
    for line in (record.output or "").splitlines():
        out.write("  %s\n" % line)
    if record.error:
        out.write("%s: %s\n" % ("refused" if record.state == "refused" else "reason",
                                _one_line(record.error)))
    if record.escalate:
        out.write("escalate: a person must look at %s\n" % (record.target or record.action))
    out.flush()


def _fix_params(action, args):
    """The parameters of *action* from its ``fix ACTION`` options, checked: bad input
    (a missing file, a wrong type, a rule across options) is exit 2 here, before any
    plan."""
    from engine.actions.params import params_from_cli

    params = params_from_cli(action, args)
    if action.name == "restore_config":
        params.setdefault("versions_dir", _default_dir("config"))
    for param in action.params:
        if param.kind not in ("path", "paths") or param.name not in params \
                or param.name in ("paths", "path", "pg_log", "versions_dir"):
            continue  # data paths are the plan's business; pg_ctl creates its log
        for path in params[param.name] if param.kind == "paths" else [params[param.name]]:
            if not os.path.exists(path):
                raise UsageError("argument %s: no such file or folder: %s" % (param.option,
                                                                              path))
    for path in params.get("paths", []) if action.name == "remove_deprecated_cron_fields" \
            else []:
        if not os.path.exists(path):
            raise EngineError("no such file or folder: %s" % path)
    return action.check_params(params)


def _host_action(name):
    from engine.actions.base import get_action

    action = get_action(name)  # ActionError (exit 2) names the known ones
    if action.runs_on != "host":
        raise UsageError("%s runs inside Odoo (database level): approve and run it in the "
                         "backend" % name)
    return action


def cmd_fix(args):
    action = _host_action(args.fix_action if hasattr(args, "fix_action") else args.action)
    params = _fix_params(action, args)
    context = _run_context(args, timeout=params.get("timeout", 60.0))
    record = _execute(action.name, context, params, _store(args), dry_run=args.dry_run,
                      budget=_budget(args), incident=args.incident)
    if args.json:
        print(json.dumps(mask_values(record.to_dict()), indent=2, default=str))
    else:
        _print_record(record)
    return 0 if record.state in OK_STATES else 1


def cmd_rollback(args):
    from engine.actions.base import ActionError
    from engine.actions.runner import rollback_run

    store = _store(args)
    record = store.load(args.run_id)  # EngineError: unknown or malformed id (exit 2)
    _host_action(record.action)
    context = _run_context(args)
    try:
        rollback_run(record, context)
    except ActionError as exc:
        store.save(record.masked())
        error(exc)
        return 1
    store.save(record.masked())
    print("run %s: %s" % (record.run_id, record.state))
    for line in record.output.splitlines():
        print("  %s" % line)
    return 0


# --------------------------------------------------------------------------
# run-approved

FIX_RUN_MODEL = "auto_heal.fix.run"


def _api_key(args):
    if args.api_key_file:
        from host.rpc import read_api_key

        return read_api_key(args.api_key_file)
    key = os.environ.get("AUTO_HEAL_API_KEY", "").strip()
    if not key:
        raise UsageError("run-approved needs an API key: --api-key-file FILE or "
                         "$AUTO_HEAL_API_KEY")
    return key


def _host_params(args):
    """This host's parameters: the watchdog's config (--config), plus --root/--versions."""
    from host.approved import HostParams

    versions = args.versions or ""
    if args.config:
        from host import config as cfg

        return HostParams.from_config(cfg.load(args.config), roots=args.root,
                                      versions_dir=versions)
    return HostParams(roots=args.root, versions_dir=versions or _default_dir("config"))


def cmd_run_approved(args):
    import socket

    from host.approved import run_claim
    from host.rpc import OdooRPC, RPCError

    key = _api_key(args)
    host_params = _host_params(args)
    login = args.login or os.environ.get("AUTO_HEAL_LOGIN") or "admin"
    host = args.host or socket.gethostname()
    _audit_log(args)  # refuse now, before claiming anything, if it cannot be written
    client = OdooRPC(args.url, args.db, login, key, timeout=args.timeout)
    client.login()
    claims = client.execute_kw(FIX_RUN_MODEL, "watchdog_claim", [host])
    if not isinstance(claims, list) or not all(isinstance(c, dict) for c in claims):
        raise RPCError("watchdog_claim did not answer a list of runs")
    if not claims:
        print("no approved host fix run for %s" % host)
        return 0
    store = _store(args)
    actor = "watchdog:%s@%s" % (login, args.db)
    trouble = 0
    for claim in claims:
        record = run_claim(claim, host_params, store, _run_context(args, actor=actor),
                           _budget(args))
        try:
            client.execute_kw(FIX_RUN_MODEL, "watchdog_report",
                              [claim.get("id"), record.to_dict()],
                              {"claim_token": claim.get("claim_token"), "host": host})
            reported = "reported"
        except RPCError as exc:
            error("fix run %s: %s" % (claim.get("id"), exc))
            reported = "NOT reported"
            trouble += 1
        if record.state not in OK_STATES:
            trouble += 1
        print("fix run %s: %s %s -> %s (run %s, %s)%s" % (
            claim.get("id"), record.action, record.target or "-", record.state,
            record.run_id, reported,
            ": %s" % _one_line(record.error) if record.error else ""))
        if record.escalate:
            print("  escalate: a person must look at %s" % (record.target or record.action))
    print("%d run(s) claimed, %d need attention" % (len(claims), trouble))
    return 1 if trouble else 0


# --------------------------------------------------------------------------
# entry point


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(argv)
    try:
        args = parser.parse_args(argv)
        return args.func(args)
    except UsageError as exc:
        error(exc)
        return 2
    except EngineError as exc:
        error(exc)
        return 2
    except KeyboardInterrupt:
        sys.stderr.write("%s: interrupted\n" % PROG)
        return 130
    except BrokenPipeError:
        try:
            sys.stdout = open(os.devnull, "w")
        except OSError:
            pass
        return 0
    except OSError as exc:
        error("%s%s" % (exc.strerror or exc, ": %s" % exc.filename if exc.filename else ""))
        return 2
    except Exception as exc:  # a bug: one line, unless asked for the traceback
        if os.environ.get("AUTO_HEAL_DEBUG"):
            raise
        error(
            "internal error: %s: %s (AUTO_HEAL_DEBUG=1 shows the traceback)"
            % (exc.__class__.__name__, exc)
        )
        return 3
