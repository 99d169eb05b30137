"""``bin/auto-heal``: the host watchdog's command line.

It needs neither Odoo nor PostgreSQL: it reads the same patterns and logs as
the addon, probes Odoo and PostgreSQL from outside, and fixes files with the
engine's plan / backup / atomic write / verify / rollback, auditing every
change.

Exit codes, all subcommands:

=====  ====================================================================
0      nothing to report: no incident, health ok, nothing to fix, or done
1      something to look at: incidents found (``detect``), a health warning,
       files that would change (``fix-cron --check``)
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
from engine.secrets import mask_secrets

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
line endings) is kept. Each changed file is backed up first (bytes, mode,
owner, sha256), written atomically, verified, and restored from the backup
if verification fails; each change is one line in the audit log.

defaults: --backup-dir $AUTO_HEAL_HOME/backups, else
/var/lib/odoo_auto_heal/backups when writable, else
~/.local/state/auto_heal/backups. --audit-log $AUTO_HEAL_HOME/audit.jsonl,
else /var/log/odoo_auto_heal/audit.jsonl when writable, else
~/.local/state/auto_heal/audit.jsonl.

exit codes: 0 done or nothing to fix, 1 (--check) files would change,
2 bad input (a missing path, malformed XML: the other files are still
processed), 3 internal error.
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
Keeps DEST/NAME.YYYYmmddTHHMMSSZ.<sha8> (mode 0600: a config holds passwords)
and DEST/NAME.YYYYmmddTHHMMSSZ.<sha8>.json (sha256, size, mode, owner, source
path, time). A config identical to its latest version is not copied again.
Only the --keep newest versions of that file are kept.

defaults: --dest $AUTO_HEAL_HOME/config, else /var/lib/odoo_auto_heal/config
when writable, else ~/.local/state/auto_heal/config. --keep 20.

exit codes: 0 kept (or unchanged), 2 bad input, 3 internal error.
"""


def build_parser():
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
        help="keep a versioned copy of odoo.conf with its checksum",
        description="Keep a versioned copy of a config file (odoo.conf) with its checksum.",
        epilog=BACKUP_EPILOG,
    )
    p.add_argument(
        "--config", metavar="FILE", required=True, help="the config file, e.g. /etc/odoo/odoo.conf"
    )
    p.add_argument("--dest", metavar="DIR", help="where versions go (default: see below)")
    p.add_argument(
        "--keep",
        type=_positive_int,
        default=20,
        metavar="N",
        help="keep the N newest versions of this file (default: 20)",
    )
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    p.set_defaults(func=cmd_backup)
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
        self.scanner = Scanner(_load_patterns(args.patterns))

    def scan(self, tolerate_missing=False):
        from engine.errors import LogSourceError
        from engine.incidents import aggregate

        findings, scanned = [], 0
        for path in self.logs:
            try:
                result = self.scanner.scan_file(
                    path,
                    self.cursors.get(path),
                    final=not self.incremental,
                    settle_seconds=self.args.settle,
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
            findings.extend(result.findings)
            scanned += result.bytes_scanned
        if self.state is not None:
            for path, cursor in self.cursors.items():
                self.state.set_cursor(path, cursor)
            self.state.save()
        return _select(aggregate(findings), self.args.min_severity), scanned

    def report(self, incidents, scanned, out, follow=False, quiet_if_empty=False):
        if self.args.json:
            if quiet_if_empty and not incidents:
                return
            doc = {"incidents": [i.to_dict() for i in incidents], "bytes_scanned": scanned}
            if follow:
                out.write(json.dumps(doc, ensure_ascii=False, sort_keys=False) + "\n")
            else:
                out.write(json.dumps(doc, indent=2, ensure_ascii=False) + "\n")
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


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt


def cmd_detect(args):
    detector = _Detector(args)
    incidents, scanned = detector.scan()
    detector.report(incidents, scanned, sys.stdout, follow=bool(args.follow))
    if not args.follow:
        return 1 if incidents else 0
    # Ctrl-C and systemd's SIGTERM both end --follow cleanly (exit 0). A shell
    # starts background jobs with SIGINT ignored: restore it.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        while True:
            time.sleep(args.follow)
            incidents, scanned = detector.scan(tolerate_missing=True)
            detector.report(incidents, scanned, sys.stdout, follow=True, quiet_if_empty=True)
    except KeyboardInterrupt:
        return 0


# --------------------------------------------------------------------------
# fix-cron


def _removals_text(plan):
    parts = [
        "%s (line %d%s)" % (r.field, r.line, ", record %s" % r.record_id if r.record_id else "")
        for r in plan.removals
    ]
    return ", ".join(parts)


def cmd_fix_cron(args):
    try:
        from engine.fixes import cron_fields
    except ImportError as exc:
        raise EngineError(
            "fix-cron needs the python package %s (pip install -r requirements.txt)"
            % (exc.name or exc)
        ) from None
    from engine import fsutil

    if not args.paths and not args.from_log:
        raise UsageError("fix-cron needs a PATH or --from-log FILE")
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

    plans, unchanged = [], 0
    for path in checked:
        try:
            plan = cron_fields.plan(path)
        except EngineError as exc:
            error(str(exc))
            failures += 1
            continue
        if plan is None:
            unchanged += 1
        else:
            plans.append(plan)

    if args.dry_run or args.check:
        for plan in plans:
            if args.dry_run:
                sys.stdout.write(plan.diff)
            else:
                print("would fix %s: %s" % (plan.path, _removals_text(plan)))
        print(
            "%d file(s) would change, %d with nothing to fix, %d error(s)"
            % (len(plans), unchanged, failures)
        )
        if failures:
            return 2
        return 1 if (args.check and plans) else 0

    fixed = 0
    if plans:
        log = audit_mod.AuditLog(args.audit_log or audit_mod.default_audit_log())
        log.check_writable()
        backup_dir = args.backup_dir or _default_dir("backups")
        for plan in plans:
            start = time.monotonic()
            details = {
                "removals": [r.to_dict() for r in plan.removals],
                "sha256_before": fsutil.sha256_bytes(plan.old),
                "sha256_after": fsutil.sha256_bytes(plan.new),
            }
            try:
                record = cron_fields.apply_plan(plan, backup_dir)
            except EngineError as exc:
                failures += 1
                result = "rolled_back" if "rolled back" in str(exc) else "failed"
                log.record(
                    "fix-cron",
                    plan.path,
                    result,
                    time.monotonic() - start,
                    error=_one_line(exc),
                    **details,
                )
                error(str(exc))
                continue
            fixed += 1
            log.record(
                "fix-cron",
                plan.path,
                "applied",
                time.monotonic() - start,
                backup=record.backup_path,
                **details,
            )
            print(
                "fixed %s: removed %s; backup %s"
                % (plan.path, _removals_text(plan), record.backup_path)
            )
    print("%d file(s) fixed, %d with nothing to fix, %d error(s)" % (fixed, unchanged, failures))
    return 2 if failures else 0


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
        print(json.dumps({"status": status, "checks": [c.to_dict() for c in checks]}, indent=2))
    else:
        for c in checks:
            print("%-8s %-12s %s" % (c.status.upper(), c.name.split(":")[0], c.message))
        print("overall: %s" % status.upper())
    return health.exit_code(status)


# --------------------------------------------------------------------------
# backup


def cmd_backup(args):
    from engine import backup

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
        print(json.dumps(data, indent=2))
    elif version.created:
        print("kept %s (sha256 %s)" % (version.path, version.sha256))
    else:
        print("unchanged: %s already holds sha256 %s" % (version.path, version.sha256))
    return 0


# --------------------------------------------------------------------------
# entry point


def main(argv=None):
    parser = build_parser()
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
