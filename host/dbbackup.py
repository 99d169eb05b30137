"""``bin/auto-heal backup --db NAME``: a pg_dump that is proven to restore-list.

::

    pg_dump -Fc  ──> DEST/NAME.YYYYmmddTHHMMSSZ.dump.partial   (mode 0600)
    pg_restore --list   the dump's table of contents must read back
      │ ok                          │ fails
      v                             v
    rename to NAME.<time>.dump      the dump is deleted; the command fails
    + NAME.<time>.dump.json         (sha256, size, TOC entries, server, time)
    keep the --keep newest dumps of NAME

The password never reaches an argv (``ps`` shows argvs): a DSN's password
goes to ``PGPASSWORD`` in pg_dump's environment. pg_dump runs without a
shell, with a timeout.

>>> conninfo({"host": "db", "port": "5432", "user": "odoo", "password": "pw"}, "prod")
('dbname=prod host=db port=5432 user=odoo', 'pw')
>>> conninfo({"host": "it's here"}, "x")[0]
"dbname=x host='it\\\\'s here'"
"""

import contextlib
import datetime
import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import asdict, dataclass

from engine import fsutil
from engine.errors import EngineError

_NAME = re.compile(r"^[A-Za-z0-9_.@+-]{1,63}$")


class DumpError(EngineError):
    """pg_dump failed, or its dump does not list: nothing was kept."""


@dataclass
class Dump:
    path: str
    database: str
    sha256: str
    size: int
    entries: int
    created_at: str
    server: str = ""

    def to_dict(self):
        return asdict(self)


def _quote(value):
    value = str(value)
    if value and re.fullmatch(r"[^\s'\\]+", value):
        return value
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def conninfo(params, dbname):
    """``(libpq conninfo without the password, password)`` for *dbname*."""
    params = dict(params)
    password = params.pop("password", None) or None
    params.pop("dbname", None)
    parts = [f"dbname={_quote(dbname)}"] + [f"{k}={_quote(v)}" for k, v in sorted(params.items())
                                            if v not in (None, "")]
    return " ".join(parts), password


def parse_dsn(dsn):
    """A DSN (URI or key=value) as a dict, through libpq when psycopg2 is there."""
    if not dsn:
        return {}
    try:
        from psycopg2.extensions import parse_dsn as libpq_parse
    except ImportError:  # pragma: no cover - psycopg2 is a requirement
        libpq_parse = None
    if libpq_parse is not None:
        try:
            return libpq_parse(dsn)
        except Exception as exc:  # psycopg2.ProgrammingError
            raise EngineError(f"not a PostgreSQL DSN: {' '.join(str(exc).split())}") from None
    return dict(item.split("=", 1) for item in dsn.split() if "=" in item)


def find_binary(name, given=None):
    if given:
        return given
    found = shutil.which(name)
    if found:
        return found
    import glob

    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return candidates[-1] if candidates else name


def _run(argv, env, timeout):
    with tempfile.TemporaryFile() as out:
        try:
            proc = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=out,
                                  stderr=subprocess.STDOUT, env=env, timeout=timeout,
                                  check=False)
        except subprocess.TimeoutExpired:
            return None, f"no exit within {timeout:g}s"
        except OSError as exc:
            return 127, f"{argv[0]}: {exc.strerror or exc}"
        out.seek(0)
        return proc.returncode, out.read(1 << 20).decode("utf-8", "replace")


def list_dumps(dest, database):
    prefix = database + "."
    if not os.path.isdir(dest):
        return []
    found = []
    for name in os.listdir(dest):
        if name.startswith(prefix) and name.endswith(".dump"):
            path = os.path.join(dest, name)
            try:
                found.append((os.stat(path).st_mtime_ns, path))
            except FileNotFoundError:
                continue
    return [path for _, path in sorted(found)]  # oldest first


def dump_database(database, dest, *, dsn="", host=None, port=None, user=None, keep=7,
                  pg_dump=None, pg_restore=None, timeout=3600, now=None):
    """Dump *database* into *dest*, check it with ``pg_restore --list``, prune; a Dump."""
    if not _NAME.match(database or ""):
        raise EngineError(f"not a database name: {database!r}")
    params = parse_dsn(dsn)
    for key, value in (("host", host), ("port", port), ("user", user)):
        if value:
            params[key] = str(value)
    info, password = conninfo(params, database)
    env = dict(os.environ)
    if password:
        env["PGPASSWORD"] = password
    os.makedirs(dest, mode=0o700, exist_ok=True)
    moment = now or datetime.datetime.now(datetime.timezone.utc)
    final = os.path.join(dest, f"{database}.{moment.strftime('%Y%m%dT%H%M%SZ')}.dump")
    n = 1
    while os.path.exists(final):
        n += 1
        final = os.path.join(dest, f"{database}.{moment.strftime('%Y%m%dT%H%M%SZ')}.{n}.dump")
    partial = final + ".partial"
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.close(fd)
    try:
        code, out = _run([find_binary("pg_dump", pg_dump), "--format=custom",
                          f"--file={partial}", f"--dbname={info}"], env, timeout)
        if code != 0:
            why = "timeout" if code is None else f"exit {code}"
            raise DumpError(f"pg_dump of {database} failed ({why}): {_last(out)}")
        code, toc = _run([find_binary("pg_restore", pg_restore), "--list", partial], env, 600)
        entries = [line for line in toc.splitlines() if line and not line.startswith(";")]
        if code != 0 or not entries:
            raise DumpError(f"the dump of {database} does not list with pg_restore --list "
                            f"({'exit %s' % code if code else 'no entries'}): {_last(toc)}; "
                            "it was deleted")
        server = ""
        match = re.search(r"^;\s+Dumped from database version: (.+)$", toc, re.M)
        if match:
            server = match.group(1).strip()
        digest = hashlib.sha256()
        with open(partial, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        os.replace(partial, final)
        dump = Dump(path=final, database=database, sha256=digest.hexdigest(),
                    size=os.path.getsize(final), entries=len(entries),
                    created_at=moment.isoformat(), server=server)
        fsutil.atomic_write(final + ".json", (json.dumps(dump.to_dict(), indent=2) + "\n")
                            .encode(), mode=0o600)
    except BaseException:
        for path in (partial, final, final + ".json"):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
        raise
    for old in list_dumps(dest, database)[:-keep]:
        for path in (old + ".json", old):
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass
    return dump


def _last(text, lines=3):
    from engine.secrets import mask_secrets

    kept = [line.strip() for line in (text or "").strip().splitlines() if line.strip()]
    return mask_secrets(" | ".join(kept[-lines:])) or "no output"
