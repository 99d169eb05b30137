"""Configuration drift: what changed in odoo.conf and friends, and is it usable.

The watchdog keeps a baseline per watched file: the sha256 of the version it
last accepted and that version's copy (kept by :mod:`engine.backup`). Each
cycle, :func:`check` compares; a change becomes a :class:`Drift` with a
unified diff (secrets masked). A config that does not parse, or that Odoo
refused to start with, can be restored from the *last known good* version:
the newest version that Odoo was healthy with (:func:`mark_good`).

>>> import os, tempfile
>>> folder = tempfile.mkdtemp()
>>> conf = os.path.join(folder, "odoo.conf")
>>> _ = open(conf, "w").write("[options]\\ndb_password = s3cret\\nworkers = 2\\n")
>>> versions = os.path.join(folder, "versions")
>>> baseline = {}
>>> check([conf], baseline, versions)       # first sight: the baseline is taken
[]
>>> _ = open(conf, "w").write("[options]\\ndb_password = other\\nworkers = 4\\n")
>>> [drift] = check([conf], baseline, versions)
>>> drift.kind, drift.parse_error
('changed', '')
>>> print(drift.diff.split("\\n@@")[1])
 -1,3 +1,3 @@
 [options]
-db_password = ***
-workers = 2
+db_password = ***
+workers = 4
<BLANKLINE>
>>> check([conf], baseline, versions)       # reported once, then the new baseline
[]
"""

import configparser
import difflib
import os
from dataclasses import dataclass

from . import backup, fsutil
from .secrets import mask_secrets


@dataclass
class Drift:
    """One watched file that is not what it was."""

    path: str
    kind: str                # changed, missing, unreadable
    diff: str = ""
    parse_error: str = ""    # odoo.conf does not parse: restoring is warranted
    previous_sha256: str = ""
    sha256: str = ""


def parse_error(path, data):
    """Why *data* is not a usable Odoo config, or "" when it is.

    >>> parse_error("odoo.conf", b"[options]\\nworkers = 2\\n")
    ''
    >>> parse_error("odoo.conf", b"workers = 2\\n")
    'odoo.conf: File contains no section headers. (line 1)'
    >>> parse_error("odoo.conf", b"[server]\\nx = 1\\n")
    'odoo.conf: no [options] section'
    """
    parser = configparser.RawConfigParser()
    try:
        parser.read_string(data.decode("utf-8"), source=path)
    except UnicodeDecodeError as exc:
        return f"{path}: not UTF-8 ({exc.reason})"
    except configparser.Error as exc:
        first = str(exc).splitlines()[0]
        line = getattr(exc, "lineno", None)
        return f"{path}: {first.split(': ', 1)[0] if 'file' in first else first}" + (
            f" (line {line})" if line else "")
    if not parser.has_section("options"):
        return f"{path}: no [options] section"
    return ""


def masked_diff(path, old, new):
    """A unified diff of two versions of *path*, secrets masked.

    The diff is taken on the real text and masked line by line, so a changed
    password shows as a changed line without showing either value.
    """
    old_lines = old.decode("utf-8", "replace").splitlines(keepends=True)
    new_lines = new.decode("utf-8", "replace").splitlines(keepends=True)
    lines = difflib.unified_diff(old_lines, new_lines, f"a{path}", f"b{path}")
    return "".join(mask_secrets(line) for line in lines)


def _read(path):
    with open(path, "rb") as handle:
        return handle.read()


def check(paths, baseline, versions_dir):
    """Compare *paths* with *baseline* (a dict updated in place); return drifts.

    A new file's first version is taken as its baseline. A changed file is
    reported once with its diff, then becomes the new baseline (kept as a
    version) unless it does not parse: a broken config stays reported until
    it is fixed or restored.
    """
    drifts = []
    for path in paths:
        known = baseline.get(path)
        try:
            data = _read(path)
        except FileNotFoundError:
            if known and known.get("state") != "missing":
                drifts.append(Drift(path, "missing", previous_sha256=known["sha256"]))
                known["state"] = "missing"
            continue
        except OSError as exc:
            drifts.append(Drift(path, "unreadable", parse_error=f"{path}: {exc.strerror}"))
            continue
        digest = fsutil.sha256_bytes(data)
        error = parse_error(path, data) if path.endswith(".conf") else ""
        if known is None:
            version = backup.backup_config(path, versions_dir)
            baseline[path] = {"sha256": digest, "version": version.path, "state": "ok",
                              "good": "" if error else version.path}
            if error:
                drifts.append(Drift(path, "changed", parse_error=error, sha256=digest))
            continue
        if digest == known["sha256"] and known.get("state") == "ok":
            continue
        previous = b""
        if known.get("version") and os.path.exists(known["version"]):
            previous = _read(known["version"])
        drifts.append(Drift(path, "changed", diff=masked_diff(path, previous, data),
                            parse_error=error, previous_sha256=known["sha256"], sha256=digest))
        if error:
            known.update(sha256=digest, state="broken")
        else:
            version = backup.backup_config(path, versions_dir)
            known.update(sha256=digest, version=version.path, state="ok")
    return drifts


def mark_good(path, baseline, versions_dir):
    """Odoo is healthy with *path* as it is now: remember it as last known good."""
    version = backup.backup_config(path, versions_dir)
    entry = baseline.setdefault(path, {})
    entry.update(sha256=version.sha256, version=version.path, state="ok", good=version.path)
    return version


def last_good(path, baseline, versions_dir):
    """The :class:`engine.backup.Version` Odoo was last healthy with, or None."""
    good = (baseline.get(path) or {}).get("good")
    for version in reversed(backup.list_versions(versions_dir, path)):
        if version.path == good:
            return version
    return None


def accept_restored(path, baseline, version, now=None):
    """*path* was restored from *version* (a last known good one): make it the baseline.

    The next :func:`check` then reports nothing for it, and it stays the last
    known good version.

    >>> import os, tempfile
    >>> folder = tempfile.mkdtemp()
    >>> conf = os.path.join(folder, "odoo.conf")
    >>> _ = open(conf, "w").write("[options]\\nworkers = 2\\n")
    >>> versions = os.path.join(folder, "versions")
    >>> baseline = {}
    >>> good = mark_good(conf, baseline, versions)
    >>> _ = open(conf, "w").write("[options\\n")
    >>> [d.parse_error != "" for d in check([conf], baseline, versions)]
    [True]
    >>> backup.restore_version(good)
    >>> accept_restored(conf, baseline, good)
    >>> check([conf], baseline, versions), baseline[conf]["state"]
    ([], 'ok')
    """
    entry = baseline.setdefault(path, {})
    entry.update(sha256=version.sha256, version=version.path, state="ok", good=version.path)
    if now is not None:
        entry["changed_at"] = now
