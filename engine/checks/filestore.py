"""The filestore: attachments whose file is missing (sampled), and whether it can be written.

``filestore_path`` is ``<data_dir>/filestore/<database>``; empty, both checks
skip. The watchdog runs ``filestore_not_writable`` as Odoo's OS user, without
a database.
"""

import os
import random
import re
import shutil
import tempfile

from .base import CRITICAL, WARNING, CheckResult, _ok, _query, resolve_settings
from .registry import check

#: The setting both checks read (and ``backup_stale``, to compare the copy with it).
FILESTORE_PATH = ""  # <data_dir>/filestore/<database>; empty: filestore checks skip

def filestore_full_path(filestore, store_fname):
    """Where Odoo 18 keeps an attachment's file (``ir.attachment._full_path``).

    Odoo drops every dot and the leading and trailing slashes of
    ``store_fname``, so the path cannot leave the filestore.

    >>> filestore_full_path("/var/lib/odoo/filestore/prod", "3f/3f2a9c")
    '/var/lib/odoo/filestore/prod/3f/3f2a9c'
    >>> filestore_full_path("/fs", "/../../etc/passwd")
    '/fs/etc/passwd'
    """
    path = re.sub("[.]", "", store_fname).strip("/\\")
    return os.path.join(filestore, path)


def sample_starts(min_id, max_id, count, rng=None):
    """*count* distinct random ids in ``[min_id, max_id]``, sorted (all when fewer).

    >>> sample_starts(1, 5, 10)
    [1, 2, 3, 4, 5]
    >>> starts = sample_starts(1, 10 ** 9, 3, random.Random(1))
    >>> len(starts), all(1 <= s <= 10 ** 9 for s in starts), starts == sorted(starts)
    (3, True, True)
    >>> sample_starts(None, None, 3)
    []
    """
    if min_id is None or max_id is None or count <= 0:
        return []
    span = max_id - min_id + 1
    if span <= count:
        return list(range(min_id, max_id + 1))
    rng = rng or random.Random()
    return sorted(rng.sample(range(min_id, max_id + 1), count))



@check("filestore_files_missing", settings={
    "filestore_path": FILESTORE_PATH,
    "filestore_sample_newest": 200,  # newest attachments with a file
    "filestore_sample_random": 200,  # plus this many picked at random ids
    "filestore_missing_crit_percent": 10.0,  # of the sampled files
})
def check_filestore_files_missing(cursor, settings=None, ctx=None, rng=None):
    """Attachments whose file is not in the filestore, on a bounded sample.

    The sample is the newest ``filestore_sample_newest`` attachments with a
    file (a window of the primary key below its maximum) plus
    ``filestore_sample_random`` picked at random ids: each pick is an index
    lookup of the first attachment with a file at or after a random id,
    within a bounded id range. No query reads the whole table.
    """
    s = resolve_settings(settings)
    filestore = s["filestore_path"]
    threshold = "missing files: warn >= 1, crit >= %g%% of the sample" % (
        s["filestore_missing_crit_percent"])
    subject = "filestore:%s" % (filestore or "-")
    if not filestore:
        return _ok("filestore_files_missing", 0, threshold,
                   "skipped: no filestore_path given", subject, {"skipped": True})
    bounds = _query(cursor, "SELECT min(id) AS low, max(id) AS high FROM ir_attachment")[0]
    low, high = bounds["low"], bounds["high"]
    if high is None:
        return _ok("filestore_files_missing", 0, threshold, "no attachment", subject,
                   {"checked": 0})
    newest, picks = s["filestore_sample_newest"], s["filestore_sample_random"]
    columns = "id, store_fname, name, res_model, res_id"
    rows = _query(cursor, f"""
        SELECT {columns} FROM ir_attachment
         WHERE id > %s AND store_fname IS NOT NULL
         ORDER BY id DESC LIMIT %s""", (high - 20 * max(newest, 1), newest))
    span = max(1000, (high - low + 1) // max(picks, 1))
    starts = sample_starts(low, high, picks, rng)
    if starts:
        rows += _query(cursor, f"""
            SELECT a.* FROM unnest(%s::bigint[]) AS g(start)
            CROSS JOIN LATERAL (
                SELECT {columns} FROM ir_attachment
                 WHERE id >= g.start AND id < g.start + %s AND store_fname IS NOT NULL
                 ORDER BY id LIMIT 1) a""", (starts, span))
    sample = {row["id"]: row for row in rows}
    missing = [row for _, row in sorted(sample.items())
               if not os.path.isfile(filestore_full_path(filestore, row["store_fname"]))]
    checked = len(sample)
    percent = round(100.0 * len(missing) / checked, 1) if checked else 0.0
    details = {"checked": checked, "missing": len(missing), "filestore": filestore,
               "examples": [{"id": row["id"], "store_fname": row["store_fname"],
                             "name": row["name"], "res_model": row["res_model"],
                             "res_id": row["res_id"]} for row in missing[:20]]}
    if not missing:
        return _ok("filestore_files_missing", 0, threshold,
                   "%d sampled attachment file(s) all present" % checked, subject, details)
    status = CRITICAL if percent >= s["filestore_missing_crit_percent"] else WARNING
    return [CheckResult(
        "filestore_files_missing", status, len(missing), threshold,
        "%d of %d sampled attachments have no file in %s (%.1f%%), e.g. id %s %s" % (
            len(missing), checked, filestore, percent, missing[0]["id"],
            missing[0]["store_fname"]),
        details, subject)]



@check("filestore_not_writable", settings={"filestore_path": FILESTORE_PATH})
def check_filestore_not_writable(cursor=None, settings=None, ctx=None):
    """Create, write and remove a temporary file in the filestore.

    Needs no database: the watchdog runs it as Odoo's OS user.
    """
    s = resolve_settings(settings)
    filestore = s["filestore_path"]
    subject = "filestore:%s" % (filestore or "-")
    threshold = "a file can be created and removed"
    if not filestore:
        return _ok("filestore_not_writable", None, threshold,
                   "skipped: no filestore_path given", subject, {"skipped": True})
    details = {"filestore": filestore, "uid": os.geteuid()}
    try:
        usage = shutil.disk_usage(filestore)
        details["free_percent"] = round(100.0 * usage.free / usage.total, 1)
    except OSError:
        pass
    step = "create"
    try:
        handle, path = tempfile.mkstemp(dir=filestore, prefix=".auto_heal-probe-")
        try:
            step = "write"
            os.write(handle, b"auto_heal write probe\n")
            os.fsync(handle)
        finally:
            os.close(handle)
            step = "remove"
            os.unlink(path)
    except OSError as exc:
        details.update(step=step, errno=exc.errno, error=exc.strerror or str(exc))
        return [CheckResult(
            "filestore_not_writable", CRITICAL, False, threshold,
            "the filestore %s cannot be written (%s failed: %s, uid %d); new attachments "
            "fail" % (filestore, step, exc.strerror or exc, os.geteuid()),
            details, subject)]
    return _ok("filestore_not_writable", True, threshold,
               "the filestore %s is writable" % filestore, subject, details)
