"""``backup``: a versioned copy of a config file (``--config``, engine/backup.py) or a
pg_dump checked with pg_restore --list (``--db``, host/dbbackup.py)."""

import json
import os
import sys
import time

from engine import audit as audit_mod
from engine.errors import EngineError
from engine.secrets import mask_values
from host import dbbackup

from .base import (
    EXIT_ATTENTION,
    EXIT_OK,
    HELP_FORMAT,
    UsageError,
    audit_options,
    check_readable,
    default_dir,
    error,
    one_line,
    option_name,
    positive_int,
)

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



def register(sub):
    p = sub.add_parser(
        "backup",
        parents=[audit_options()],
        formatter_class=HELP_FORMAT,
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
    p.add_argument("--port", type=positive_int, help="--db: PostgreSQL port")
    p.add_argument("--user", help="--db: PostgreSQL role")
    p.add_argument("--pg-dump", metavar="BIN", help="--db: pg_dump binary (default: on PATH)")
    p.add_argument("--pg-restore", metavar="BIN",
                   help="--db: pg_restore binary (default: on PATH)")
    p.add_argument("--dest", metavar="DIR", help="where versions go (default: see below)")
    p.add_argument(
        "--keep",
        type=positive_int,
        default=None,
        metavar="N",
        help="keep the N newest versions of this file (default: 20) or dumps (default: 7)",
    )
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    p.set_defaults(func=run)


def run(args):
    from engine import backup

    if bool(args.config) == bool(args.db):
        raise UsageError("backup needs --config FILE (a config version) or --db NAME (a "
                         "pg_dump), one of them")
    db_only = ("dsn", "host", "port", "user", "pg_dump", "pg_restore")
    if args.db:
        args.keep = args.keep or 7
        return _backup_db(args)
    given = [name for name in db_only if getattr(args, name)]
    if given:
        raise UsageError("%s go(es) with --db" % ", ".join(option_name(n) for n in given))
    args.keep = args.keep or 20
    check_readable(args.config, "config file")
    dest = args.dest or default_dir("config")
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
            error=one_line(exc),
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
    return EXIT_OK



def _backup_db(args):
    dest = args.dest or default_dir("dumps")
    log = audit_mod.AuditLog(args.audit_log or audit_mod.default_audit_log())
    log.check_writable()
    start = time.monotonic()
    try:
        dump = dbbackup.dump_database(args.db, dest, dsn=args.dsn or "", host=args.host,
                                      port=args.port, user=args.user, keep=args.keep,
                                      pg_dump=args.pg_dump, pg_restore=args.pg_restore)
    except dbbackup.DumpError as exc:
        log.record("backup-db", args.db, "failed", time.monotonic() - start, error=str(exc),
                   dest=dest)
        error(exc)
        return EXIT_ATTENTION
    log.record("backup-db", args.db, "created", time.monotonic() - start, dump=dump.path,
               sha256=dump.sha256, entries=dump.entries, keep=args.keep)
    if args.json:
        print(json.dumps(mask_values(dump.to_dict()), indent=2))
    else:
        print(f"kept {dump.path} ({dump.size} bytes, {dump.entries} entries listed by "
              f"pg_restore --list, sha256 {dump.sha256[:12]})")
    sys.stdout.flush()
    return EXIT_OK
