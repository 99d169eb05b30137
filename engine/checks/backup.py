"""Backup freshness: the age of the last verified dump and of the last filestore copy.

A dump counts only once ``pg_restore --list`` has read its table of contents
back (what ``bin/auto-heal backup --db`` does before it keeps a dump). The
check looks at a folder of dumps (that command's ``--dest``, or any folder of
``pg_dump -Fc`` / ``-Ft`` files), newest first, and verifies each file it has
not verified before (at most :data:`MAX_VERIFY_PER_RUN` a run; the result is
kept per file, by inode, size and mtime, in the run's counters)::

    <dir>/prod.20261129T020000Z.dump   verified (cached)  <- the newest verified one: its age
    <dir>/prod.20261130T020000Z.dump   does not list      <- newer but broken: a warning

The filestore copy is a folder: archives (``filestore-2026-11-29.tar.gz``) or
a mirror of the filestore (``3f/3f2a...``). Its age is that of its newest
entry (no recursion), and a mirror that already holds the live filestore's
newest file is current whatever its dates (``rsync -a`` keeps the source's).

Critical past ``backup_crit_hours`` (26 h: a daily backup plus its run time).
The watchdog runs this check on the host (``[backup]`` in its config); the
addon runs it too when Odoo can read the folder, and shows the watchdog's
results in its health report.

Every path is checked with ``lstat`` (no symlink is followed) and each dump is
opened with ``O_NOFOLLOW`` and handed to pg_restore as ``/dev/fd/N``, so a
file swapped for a link between the check and the verification is never read.
"""

import os
import re
import stat
import subprocess
import time

from .base import CRITICAL, OK, WARNING, CheckResult, _ok, human_duration, resolve_settings
from .filestore import FILESTORE_PATH
from .registry import check

DUMP_SUFFIXES = (".dump", ".backup", ".pgdump", ".tar")
#: Files verified with pg_restore in one run (each a process); the rest wait.
MAX_VERIFY_PER_RUN = 3
#: Entries looked at in one folder (dumps, the copy, a filestore subfolder).
MAX_ENTRIES = 20000
VERIFY_TIMEOUT = 120
_HEX2 = re.compile(r"^[0-9a-f]{2}$")


class BackupCheckError(Exception):
    """The check cannot run (no pg_restore): one line."""


def _scandir(path, limit=MAX_ENTRIES):
    """``[(name, lstat)]`` of *path*'s entries, at most *limit*; symlinks left out."""
    found = []
    with os.scandir(path) as entries:
        for entry in entries:
            if len(found) >= limit:
                break
            try:
                info = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            if not stat.S_ISLNK(info.st_mode):
                found.append((entry.name, info))
    return found


def is_dump_name(name, database=""):
    """Whether *name* looks like a dump (of *database* when given).

    A dump of ``prod`` is ``prod.dump`` or ``prod`` and a separator then a
    digit (a date): ``prod.20261129T020000Z.dump``, ``prod_2026-11-29.backup``.

    >>> is_dump_name("prod.20261129T020000Z.dump", "prod"), is_dump_name("prod.dump.json")
    (True, False)
    >>> is_dump_name("prod_test.20261129.dump", "prod"), is_dump_name("prod-2026.tar", "prod")
    (False, True)
    """
    if not name.endswith(DUMP_SUFFIXES) or name.startswith("."):
        return False
    if not database:
        return True
    stem = name.rsplit(".", 1)[0]
    return stem == database or bool(re.match(re.escape(database) + r"[._-][0-9]", stem))


def verify_dump(path, pg_restore, timeout=VERIFY_TIMEOUT):
    """``(ok, entries, error)``: does ``pg_restore --list`` read *path* back?

    The file is opened with ``O_NOFOLLOW`` and must be a regular file; the
    open descriptor goes to pg_restore (``/dev/fd/3``), not the path.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        return False, 0, "cannot open it: %s" % (exc.strerror or exc)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return False, 0, "not a regular file"
        try:
            proc = subprocess.run(
                [pg_restore, "--list", "/dev/fd/%d" % fd], pass_fds=(fd,),
                stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout, check=False)
        except subprocess.TimeoutExpired:
            return False, 0, "pg_restore --list gave no answer within %d s" % timeout
        except OSError as exc:
            raise BackupCheckError("%s: %s" % (pg_restore, exc.strerror or exc)) from None
    finally:
        os.close(fd)
    out = proc.stdout.decode("utf-8", "replace")
    entries = sum(1 for line in out.splitlines() if line.strip() and not line.startswith(";"))
    if proc.returncode or not entries:
        error = " ".join(proc.stderr.decode("utf-8", "replace").split())[:300]
        return False, entries, "pg_restore --list failed (exit %d): %s" % (
            proc.returncode, error or "no entries")
    return True, entries, ""


def find_pg_restore(given=""):
    """The pg_restore to use: *given*, else on PATH, else the newest PostgreSQL's."""
    import glob
    import shutil

    if given:
        return given
    found = shutil.which("pg_restore")
    if found:
        return found
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_restore"),
                        key=lambda p: [int(x) for x in re.findall(r"\d+", p)] or [0])
    if candidates:
        return candidates[-1]
    raise BackupCheckError("pg_restore not found (install the PostgreSQL client programs)")


def dump_status(folder, database, cache, pg_restore, now=None, max_verify=MAX_VERIFY_PER_RUN):
    """The newest verified dump in *folder*, and the newer ones that failed.

    *cache* (``{path: {"key", "ok", "entries", "error"}}``) holds earlier
    verifications and is updated in place: it keeps the dumps looked at this
    time (the newest down to the first verified one), so it stays small.
    Returns ``{"dumps", "verified": {...} or None, "failed": [...], "pending"}``.
    """
    now = time.time() if now is None else now
    dumps = sorted(((info.st_mtime, name, info) for name, info in _scandir(folder)
                    if stat.S_ISREG(info.st_mode) and is_dump_name(name, database)),
                   reverse=True)
    looked_at = set()
    failed, verified, pending, budget = [], None, 0, max_verify
    for mtime, name, info in dumps:
        path = os.path.join(folder, name)
        looked_at.add(path)
        key = "%d:%d:%d" % (info.st_ino, info.st_size, info.st_mtime_ns)
        known = cache.get(path)
        if not known or known.get("key") != key:
            if budget <= 0:
                pending += 1
                continue
            budget -= 1
            ok, entries, error = verify_dump(path, pg_restore)
            known = cache[path] = {"key": key, "ok": ok, "entries": entries, "error": error,
                                   "at": now}
        item = {"path": path, "name": name, "age_seconds": round(now - mtime),
                "size": info.st_size, "entries": known.get("entries"),
                "error": known.get("error") or ""}
        if known.get("ok"):
            verified = item
            break
        failed.append(item)
    for path in list(cache):
        if path not in looked_at:
            del cache[path]
    return {"dumps": len(dumps), "verified": verified, "failed": failed, "pending": pending}


def filestore_copy_status(copy_dir, live=None, now=None):
    """``{"age_seconds", "newest", "entries", "current"}`` of a filestore copy folder.

    The age is that of the newest entry directly in *copy_dir*. A mirror (two
    hex digit subfolders, like Odoo's filestore) is *current* when it holds
    the live filestore's newest file with the same size.
    """
    now = time.time() if now is None else now
    entries = _scandir(copy_dir)
    newest = max(entries, key=lambda item: item[1].st_mtime, default=None)
    result = {"entries": len(entries), "newest": newest[0] if newest else None,
              "age_seconds": round(now - newest[1].st_mtime) if newest else None,
              "current": False, "live_newest": None}
    mirror = any(_HEX2.match(name) and stat.S_ISDIR(info.st_mode) for name, info in entries)
    if mirror and live and os.path.isdir(live):
        found = newest_live_file(live)
        if found:
            relative, size = found
            result["live_newest"] = relative
            try:
                copy = os.lstat(os.path.join(copy_dir, relative))
            except OSError:
                copy = None
            result["current"] = bool(copy and stat.S_ISREG(copy.st_mode) and
                                     copy.st_size == size)
    return result


def newest_live_file(filestore):
    """``(relative path, size)`` of the newest file in Odoo's filestore, or None.

    Only the subfolder with the newest mtime is listed (a new file changes
    its folder's mtime): 256 stats and one folder, whatever the filestore's size.
    """
    folders = [(info.st_mtime, name) for name, info in _scandir(filestore, 1000)
               if _HEX2.match(name) and stat.S_ISDIR(info.st_mode)]
    if not folders:
        return None
    name = max(folders)[1]
    files = [(info.st_mtime, entry, info.st_size)
             for entry, info in _scandir(os.path.join(filestore, name))
             if stat.S_ISREG(info.st_mode)]
    if not files:
        return None
    _mtime, entry, size = max(files)
    return os.path.join(name, entry), size


@check("backup_stale", settings={
    "backup_dumps_dir": "",  # folder of dumps; empty: the dump check is skipped
    "backup_database": "",  # only the dumps of this database (default: every dump)
    "backup_filestore_dir": "",  # a copy of the filestore; empty: not checked
    "backup_crit_hours": 26,
    "filestore_path": FILESTORE_PATH,  # the live filestore, to compare the copy with
})
def check_backup_stale(cursor=None, settings=None, ctx=None):
    """The age of the newest verified dump and of the filestore copy.

    Needs no database: the watchdog runs it on the host. ``ctx.facts``
    may name the ``pg_restore`` binary (the watchdog's config).
    """
    s = resolve_settings(settings)
    facts = getattr(ctx, "facts", None) or {}
    previous = getattr(ctx, "previous", None) or {}
    counters = getattr(ctx, "counters", None)
    crit = s["backup_crit_hours"] * 3600
    threshold = "a verified dump and a filestore copy younger than %s" % human_duration(crit)
    folder, database = s["backup_dumps_dir"], s["backup_database"]
    copy_dir = s["backup_filestore_dir"]
    if not folder and not copy_dir:
        return _ok("backup_stale", None, threshold,
                   "skipped: no backup folder given (backup_dumps_dir)", "backup",
                   {"skipped": True})
    results = []
    if folder:
        cache = dict(previous.get("backup_verified") or {})
        subject = "backup:%s" % (database or folder)
        todo = ("Run `bin/auto-heal backup --db %s --dest %s` at least daily (a systemd "
                "timer); it keeps a dump only once pg_restore --list reads it back. Look at "
                "its audit log for the last failures." % (database or "NAME", folder))
        try:
            info = os.lstat(folder)
        except OSError as exc:
            info, error = None, exc.strerror or str(exc)
        if info is None or not stat.S_ISDIR(info.st_mode):
            results.append(CheckResult(
                "backup_stale", CRITICAL, None, threshold,
                "the backup folder %s cannot be read (%s): no verified dump" % (
                    folder, error if info is None else "not a folder"),
                {"folder": folder, "what_to_do": todo}, subject))
        else:
            found = dump_status(folder, database, cache, find_pg_restore(
                facts.get("pg_restore") or ""))
            if counters is not None:
                counters["backup_verified"] = cache
            verified = found["verified"]
            details = {"folder": folder, "database": database or None,
                       "dumps": found["dumps"], "verified": verified,
                       "failed": found["failed"][:5], "pending": found["pending"],
                       "what_to_do": todo}
            if verified is None:
                status = CRITICAL
                message = "no dump%s in %s lists with pg_restore --list (%d dump(s)%s)" % (
                    " of %s" % database if database else "", folder, found["dumps"],
                    "; newest: %s" % found["failed"][0]["error"] if found["failed"] else "")
            else:
                age = verified["age_seconds"]
                status = CRITICAL if age >= crit else OK
                message = "the newest verified dump%s is %s old: %s (%d entries)" % (
                    " of %s" % database if database else "", human_duration(age),
                    verified["name"], verified["entries"] or 0)
                if found["failed"]:
                    status = status if status == CRITICAL else WARNING
                    message += "; %d newer dump(s) do not list: %s (%s)" % (
                        len(found["failed"]), found["failed"][0]["name"],
                        found["failed"][0]["error"])
            results.append(CheckResult(
                "backup_stale", status, verified["age_seconds"] if verified else None,
                threshold, message, details, subject))
    if copy_dir:
        subject = "backup:filestore:%s" % copy_dir
        todo = ("Copy the filestore with each dump (a dump without its filestore restores "
                "a database whose attachments are missing): rsync -a the data_dir's "
                "filestore/<db> to %s, or keep a dated archive there." % copy_dir)
        try:
            info = os.lstat(copy_dir)
        except OSError as exc:
            info, error = None, exc.strerror or str(exc)
        if info is None or not stat.S_ISDIR(info.st_mode):
            results.append(CheckResult(
                "backup_stale", CRITICAL, None, threshold,
                "the filestore copy %s cannot be read (%s)" % (
                    copy_dir, error if info is None else "not a folder"),
                {"folder": copy_dir, "what_to_do": todo}, subject))
        else:
            copy = filestore_copy_status(copy_dir, s["filestore_path"] or None)
            age = copy["age_seconds"]
            if copy["current"]:
                status, text = OK, "holds the live filestore's newest file (%s)" % (
                    copy["live_newest"])
            elif age is None:
                status, text = CRITICAL, "is empty"
            else:
                status = CRITICAL if age >= crit else OK
                text = "is %s old (newest entry %s)" % (human_duration(age), copy["newest"])
            results.append(CheckResult(
                "backup_stale", status, 0 if copy["current"] else age, threshold,
                "the filestore copy %s %s" % (copy_dir, text),
                dict(copy, folder=copy_dir, what_to_do=todo), subject))
    return results
