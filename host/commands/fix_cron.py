"""``fix-cron``: remove the ir.cron fields Odoo 18 dropped (numbercall, doall) from
XML data files, one ``remove_deprecated_cron_fields`` run per file."""

import os
import re
import sys

from engine import audit as audit_mod
from engine.errors import EngineError

from . import runs
from .base import (
    EXIT_ATTENTION,
    EXIT_OK,
    EXIT_USAGE,
    HELP_FORMAT,
    UsageError,
    audit_options,
    check_readable,
    default_dir,
    error,
    load_patterns,
    one_line,
    warning,
)

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


def register(sub):
    p = sub.add_parser(
        "fix-cron",
        parents=[audit_options()],
        formatter_class=HELP_FORMAT,
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
    p.set_defaults(func=run)


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


def run(args):
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
        pattern_set = load_patterns(args.patterns)
        for log in args.from_log:
            check_readable(log)
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
    backup_dir = args.backup_dir or default_dir("backups")
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
            return EXIT_USAGE
        return EXIT_ATTENTION if (args.check and planned) else EXIT_OK

    fixed = not_done = 0
    if planned:
        context = Context(actor=quiet.actor, audit=runs.audit_log(args), backup_dir=backup_dir,
                          roots=tuple(args.root))
        store = runs.run_store(args)
        for path, dry in planned:
            record = runs.execute(CRON_ACTION, context, {"paths": [path]}, store,
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
                                                one_line(record.error)))
    print("%d file(s) fixed, %d with nothing to fix, %d error(s)"
          % (fixed, unchanged, failures + not_done))
    return EXIT_USAGE if failures else EXIT_ATTENTION if not_done else EXIT_OK
