"""Versioned copies of a configuration file (odoo.conf), with checksums.

``backup_config("/etc/odoo/odoo.conf", "/var/lib/odoo_auto_heal/config")``
keeps::

    odoo.conf.20261129T144019Z.3f2a9c1d          the exact bytes (mode 0600)
    odoo.conf.20261129T144019Z.3f2a9c1d.json     sha256, size, mode, owner,
                                                  source path, time

A version identical to the latest one of the same file is not written again;
only the *keep* newest versions of a file are kept. ``restore --config
VERSION`` (a later issue) puts one back with :func:`restore_version`, through
:func:`engine.fsutil.atomic_write`, mode and owner included.

>>> import os, tempfile
>>> d = tempfile.mkdtemp()
>>> conf = os.path.join(d, "odoo.conf")
>>> with open(conf, "w") as fh:
...     _ = fh.write("[options]\\nworkers = 2\\n")
>>> v1 = backup_config(conf, os.path.join(d, "versions"))
>>> v1.created, v1.sha256[:8] in v1.name
(True, True)
>>> backup_config(conf, os.path.join(d, "versions")).created   # unchanged: no new copy
False
>>> with open(conf, "w") as fh:
...     _ = fh.write("[options]\\nworkers = 4\\n")
>>> v2 = backup_config(conf, os.path.join(d, "versions"))
>>> [v.sha256 for v in list_versions(os.path.join(d, "versions"))] == [v1.sha256, v2.sha256]
True
>>> restore_version(v1)
>>> open(conf).read()
'[options]\\nworkers = 2\\n'
"""

import datetime
import json
import os
from dataclasses import asdict, dataclass, field

from . import fsutil, safefs
from .errors import EngineError

__all__ = [
    "BackupConfigError",
    "Version",
    "backup_config",
    "find_version",
    "list_versions",
    "read_version",
    "restore_version",
]

DEFAULT_KEEP = 20


class BackupConfigError(EngineError):
    """A config file that cannot be copied, or a version that cannot be used."""


@dataclass
class Version:
    """One kept copy of a config file."""

    name: str  # file name of the copy in the destination folder
    path: str  # full path of the copy
    source: str  # real path of the config file it was taken from
    sha256: str
    size: int
    mode: int
    uid: int
    gid: int
    created_at: str  # ISO 8601 UTC, microseconds
    created: bool = field(default=True, compare=False)  # False: the latest was reused

    @property
    def metadata_path(self):
        return self.path + ".json"

    def to_dict(self):
        data = asdict(self)
        data.pop("created")
        data["owner"] = "%d:%d" % (self.uid, self.gid)
        return data

    @classmethod
    def from_dict(cls, data, folder):
        try:
            return cls(
                name=str(data["name"]),
                path=os.path.join(folder, str(data["name"])),
                source=str(data["source"]),
                sha256=str(data["sha256"]),
                size=int(data["size"]),
                mode=int(data["mode"]),
                uid=int(data["uid"]),
                gid=int(data["gid"]),
                created_at=str(data["created_at"]),
                created=False,
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise BackupConfigError("bad version metadata: %s" % exc) from None


def _now():
    return datetime.datetime.now(datetime.timezone.utc)


def list_versions(dest_dir, source=None):
    """Versions kept in *dest_dir*, oldest first; only those of *source* if given.

    Metadata files that cannot be read are skipped.
    """
    if not os.path.isdir(dest_dir):
        return []
    real_source = os.path.realpath(source) if source else None
    versions = []
    for entry in os.listdir(dest_dir):
        if not entry.endswith(".json"):
            continue
        meta = os.path.join(dest_dir, entry)
        try:
            with open(meta, "rb") as fh:
                data = json.loads(fh.read().decode("utf-8"))
            version = Version.from_dict(data, os.path.abspath(dest_dir))
        except (OSError, ValueError, BackupConfigError):
            continue
        if real_source and version.source != real_source:
            continue
        if not os.path.isfile(version.path):
            continue
        versions.append(version)
    versions.sort(key=lambda v: (v.created_at, v.name))
    return versions


def find_version(dest_dir, ident):
    """The version whose file name, or sha256 prefix (8+ hex), is *ident*."""
    matches = [
        v
        for v in list_versions(dest_dir)
        if ident in (v.name, v.path) or (len(ident) >= 8 and v.sha256.startswith(ident.lower()))
    ]
    if not matches:
        raise BackupConfigError("no version %r in %s" % (ident, dest_dir))
    if len({v.sha256 for v in matches}) > 1:
        raise BackupConfigError(
            "%r matches several versions in %s; use the file name" % (ident, dest_dir)
        )
    return matches[-1]


def backup_config(path, dest_dir, keep=DEFAULT_KEEP, now=None):
    """Keep a version of the config file *path* in *dest_dir*; return it.

    When the latest version of this file already has these bytes, it is
    returned with ``created=False`` and nothing is written. Afterwards only
    the *keep* newest versions of this file remain.
    """
    if keep < 1:
        raise BackupConfigError("keep must be at least 1, not %r" % keep)
    folder, name = fsutil.split_root(path)
    real = os.path.join(folder, name)
    try:
        data, snap = safefs.read(folder, name)
    except FileNotFoundError:
        raise BackupConfigError("%s: no such file" % path) from None
    except EngineError as exc:
        raise BackupConfigError(str(exc)) from None
    except OSError as exc:
        raise BackupConfigError("%s: cannot read: %s" % (path, exc.strerror or exc)) from None
    digest = fsutil.sha256_bytes(data)
    versions = list_versions(dest_dir, real)
    if versions and versions[-1].sha256 == digest:
        latest = versions[-1]
        _prune(versions, keep)
        return latest
    try:
        os.makedirs(dest_dir, mode=0o700, exist_ok=True)
    except OSError as exc:
        raise BackupConfigError("%s: cannot create: %s" % (dest_dir, exc.strerror or exc)) from None
    moment = now or _now()
    base = "%s.%s.%s" % (os.path.basename(real), moment.strftime("%Y%m%dT%H%M%SZ"), digest[:8])
    name, n = base, 1
    while os.path.lexists(os.path.join(dest_dir, name)) or os.path.lexists(
        os.path.join(dest_dir, name + ".json")
    ):
        n += 1
        name = "%s.%d" % (base, n)
    version = Version(
        name=name,
        path=os.path.join(os.path.abspath(dest_dir), name),
        source=real,
        sha256=digest,
        size=len(data),
        mode=snap.mode,
        uid=snap.uid,
        gid=snap.gid,
        created_at=moment.isoformat(),
    )
    try:
        fsutil.atomic_write(version.path, data, mode=0o600)
        with open(version.path, "rb") as fh:
            if fsutil.sha256_bytes(fh.read()) != digest:  # pragma: no cover - disk trouble
                raise BackupConfigError("%s: copy does not match its checksum" % version.path)
        fsutil.atomic_write(
            version.metadata_path,
            (json.dumps(version.to_dict(), indent=2, sort_keys=True) + "\n").encode(),
            mode=0o600,
        )
    except OSError as exc:
        raise BackupConfigError("%s: cannot write: %s" % (dest_dir, exc.strerror or exc)) from None
    _prune(versions + [version], keep)
    return version


def _prune(versions, keep):
    for old in versions[:-keep] if len(versions) > keep else []:
        for p in (old.metadata_path, old.path):  # metadata first: no orphan listed
            try:
                os.unlink(p)
            except FileNotFoundError:
                pass


def read_version(version):
    """The bytes of *version*, checked against its sha256."""
    try:
        data = safefs.read_regular(version.path, "config version", version.size + (1 << 20))
    except EngineError as exc:
        raise BackupConfigError(str(exc)) from None
    if fsutil.sha256_bytes(data) != version.sha256:
        raise BackupConfigError(
            "%s: does not match its recorded sha256, not restoring" % version.path
        )
    return data


def restore_version(version, path=None, current=None):
    """Write *version* back to its source (or *path*), with its mode and owner.

    The copy is checked against its sha256 first. The file is replaced on
    descriptors (:func:`engine.safefs.replace`), only if it still is
    *current* (a :class:`engine.safefs.Snapshot`; read here when None, or
    None for a file that is gone).
    """
    data = read_version(version)
    folder, name = fsutil.split_root(path or version.source)
    if current is None:
        try:
            _, current = safefs.read(folder, name)
        except FileNotFoundError:
            current = None
        except EngineError as exc:
            raise BackupConfigError(str(exc)) from None
    safefs.replace(folder, name, current, data, mode=version.mode, uid=version.uid,
                   gid=version.gid)
