"""Safety primitives for every fix that touches a file (safety rules 2 and 3).

Every file change made by auto_heal goes through this module:

- :func:`resolve_inside` refuses a path, or a symlink, that escapes the
  configured roots;
- :func:`backup_file` keeps the exact bytes, mode and owner of the file, with
  their sha256, in a backup folder plus a JSON sidecar;
- :func:`atomic_write` writes through a temporary file in the same folder,
  fsyncs it, gives it the original mode and owner, renames it over the target
  and fsyncs the folder, so a crash leaves either the old or the new file,
  never half of one;
- :func:`restore_backup` puts the bytes, mode and owner back exactly.

A whole round trip::

    backup --> atomic_write --> verify --ok--> done
                                   |
                                   +--failed--> restore_backup

>>> import os, tempfile
>>> root = tempfile.mkdtemp()
>>> target = os.path.join(root, "cron.xml")
>>> atomic_write(target, b"<odoo/>\\n", mode=0o640)
>>> oct(os.stat(target).st_mode & 0o7777)
'0o640'
>>> record = backup_file(target, os.path.join(root, "backups"))
>>> record.sha256 == sha256_bytes(b"<odoo/>\\n")
True
>>> atomic_write(target, b"broken")
>>> restore_backup(record)
>>> open(target, "rb").read()
b'<odoo/>\\n'
>>> sorted(os.listdir(root))   # no temporary file left behind
['backups', 'cron.xml']
"""

import contextlib
import datetime
import errno
import fcntl
import hashlib
import json
import os
import stat
import tempfile
from dataclasses import asdict, dataclass

from .errors import EngineError

__all__ = [
    "BackupError",
    "BackupRecord",
    "PathEscapeError",
    "atomic_write",
    "backup_file",
    "load_backup_record",
    "locked",
    "resolve_inside",
    "restore_backup",
    "sha256_bytes",
]


class PathEscapeError(EngineError):
    """A path (or a symlink on its way) resolves outside the allowed roots."""


class BackupError(EngineError):
    """A backup that cannot be written, read or trusted (checksum mismatch)."""


def sha256_bytes(data):
    """Hex sha256 of *data*.

    >>> sha256_bytes(b"")[:12]
    'e3b0c44298fc'
    """
    return hashlib.sha256(data).hexdigest()


def _fsync_dir(directory):
    """fsync a folder so a rename inside it survives a crash."""
    try:
        fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    except OSError as exc:  # pragma: no cover - some filesystems refuse it
        if exc.errno not in (errno.EINVAL, errno.EBADF):
            raise
    finally:
        os.close(fd)


def _current_umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write(path, data, mode=None, uid=None, gid=None):
    """Replace the content of *path* with *data* (bytes), atomically.

    The new content is written to a temporary file in the same folder, flushed
    and fsynced, given the mode and owner of the file it replaces, renamed over
    it, and the folder is fsynced. If *path* is a symlink, the file it points
    to is replaced and the symlink is kept.

    *mode*, *uid* and *gid* override what is kept from the existing file (used
    by :func:`restore_backup`). A new file gets *mode* or ``0o666 & ~umask``.
    If the owner cannot be kept (not root, file owned by someone else) nothing
    is changed and :class:`PermissionError` is raised: a fix must not silently
    hand a file to another user.

    >>> import os, tempfile
    >>> d = tempfile.mkdtemp()
    >>> p = os.path.join(d, "f.txt")
    >>> atomic_write(p, b"one")
    >>> os.chmod(p, 0o600)
    >>> atomic_write(p, b"two")
    >>> open(p, "rb").read(), oct(os.stat(p).st_mode & 0o777)
    (b'two', '0o600')
    >>> os.listdir(d)
    ['f.txt']
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError("atomic_write() needs bytes, not %s" % type(data).__name__)
    target = os.path.realpath(path)
    directory = os.path.dirname(target) or "."
    try:
        st = os.stat(target)
    except FileNotFoundError:
        st = None
    if st is not None and not stat.S_ISREG(st.st_mode):
        raise IsADirectoryError(errno.EISDIR, "not a regular file", path)
    if mode is None:
        mode = stat.S_IMODE(st.st_mode) if st else (0o666 & ~_current_umask())
    if uid is None:
        uid = st.st_uid if st else -1
    if gid is None:
        gid = st.st_gid if st else -1

    fd, tmp = tempfile.mkstemp(
        dir=directory, prefix=".%s." % os.path.basename(target), suffix=".tmp"
    )
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fchmod(fh.fileno(), mode)
            tmp_st = os.fstat(fh.fileno())
            want_uid = tmp_st.st_uid if uid == -1 else uid
            want_gid = tmp_st.st_gid if gid == -1 else gid
            if (want_uid, want_gid) != (tmp_st.st_uid, tmp_st.st_gid):
                try:
                    os.fchown(fh.fileno(), want_uid, want_gid)
                except PermissionError as exc:
                    raise PermissionError(
                        exc.errno,
                        "cannot keep owner %s:%s (running as uid %s)"
                        % (want_uid, want_gid, os.geteuid()),
                        path,
                    ) from None
            # chown may clear set-id bits: set the mode again afterwards.
            os.fchmod(fh.fileno(), mode)
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    _fsync_dir(directory)


def resolve_inside(path, roots):
    """Return the real path of *path* if it lies inside one of *roots*.

    Symlinks and ``..`` are resolved first, on both sides, so neither a
    ``../`` nor a symlink pointing elsewhere can lead a fix outside the
    configured roots.

    >>> import os, tempfile
    >>> root = os.path.realpath(tempfile.mkdtemp())
    >>> inside = resolve_inside(os.path.join(root, "a", "..", "b.xml"), [root])
    >>> inside == os.path.join(root, "b.xml")
    True
    >>> def refused(path):
    ...     try:
    ...         resolve_inside(path, [root])
    ...     except PathEscapeError as exc:
    ...         return "outside the allowed roots" in str(exc)
    >>> refused(os.path.join(root, "..", "etc"))
    True
    >>> os.symlink("/etc/passwd", os.path.join(root, "link"))
    >>> refused(os.path.join(root, "link"))
    True
    """
    if isinstance(roots, (str, bytes, os.PathLike)):
        roots = [roots]
    roots = [os.fspath(r) for r in roots]
    if not roots:
        raise PathEscapeError("%s: no allowed root configured" % (path,))
    real = os.path.realpath(path)
    real_roots = []
    for root in roots:
        real_root = os.path.realpath(root)
        real_roots.append(real_root)
        if real == real_root or real.startswith(real_root.rstrip(os.sep) + os.sep):
            return real
    via = "" if real == os.path.abspath(path) else " (resolves to %s)" % real
    raise PathEscapeError(
        "%s%s is outside the allowed roots: %s" % (path, via, ", ".join(real_roots))
    )


@dataclass
class BackupRecord:
    """What :func:`restore_backup` needs to put a file back exactly.

    Stored as JSON next to the copy (``<copy>.json``).
    """

    path: str  # the real path of the file that was backed up
    backup_path: str  # the copy of its bytes
    sha256: str
    size: int
    mode: int  # permission bits, e.g. 0o644 == 420
    uid: int
    gid: int
    created: str  # ISO 8601 UTC
    sidecar: str = ""

    def to_dict(self):
        return asdict(self)

    @classmethod
    def from_dict(cls, data):
        fields = cls.__dataclass_fields__
        return cls(**{k: v for k, v in data.items() if k in fields})


def _utcnow():
    return datetime.datetime.now(datetime.timezone.utc)


def backup_file(path, backup_dir):
    """Copy *path* into *backup_dir* with its mode, owner and sha256.

    The copy is ``<backup_dir>/<name>.<UTC time>.<sha8>`` (mode 0600, the
    folder 0700: a config can hold passwords), its sidecar is the same name
    plus ``.json``. The copy is read back and checked against the sha256
    before this returns. Returns a :class:`BackupRecord`.
    """
    real = os.path.realpath(path)
    with open(real, "rb") as fh:
        st = os.fstat(fh.fileno())
        if not stat.S_ISREG(st.st_mode):
            raise BackupError("%s: not a regular file" % path)
        data = fh.read()
    digest = sha256_bytes(data)
    os.makedirs(backup_dir, mode=0o700, exist_ok=True)
    now = _utcnow()
    stem = "%s.%s.%s" % (
        os.path.basename(real),
        now.strftime("%Y%m%dT%H%M%S.%fZ"),
        digest[:8],
    )
    copy_path = os.path.join(os.path.abspath(backup_dir), stem)
    n = 1
    while os.path.exists(copy_path) or os.path.exists(copy_path + ".json"):
        n += 1
        copy_path = os.path.join(os.path.abspath(backup_dir), "%s.%d" % (stem, n))
    atomic_write(copy_path, data, mode=0o600)
    with open(copy_path, "rb") as fh:
        if sha256_bytes(fh.read()) != digest:  # pragma: no cover - disk trouble
            raise BackupError("%s: backup copy does not match its checksum" % copy_path)
    record = BackupRecord(
        path=real,
        backup_path=copy_path,
        sha256=digest,
        size=len(data),
        mode=stat.S_IMODE(st.st_mode),
        uid=st.st_uid,
        gid=st.st_gid,
        created=now.isoformat(),
        sidecar=copy_path + ".json",
    )
    atomic_write(
        record.sidecar,
        (json.dumps(record.to_dict(), indent=2, sort_keys=True) + "\n").encode(),
        mode=0o600,
    )
    return record


def load_backup_record(sidecar):
    """Read a :class:`BackupRecord` back from its JSON sidecar."""
    try:
        with open(sidecar, "rb") as fh:
            data = json.loads(fh.read().decode("utf-8"))
        record = BackupRecord.from_dict(data)
    except (OSError, ValueError, TypeError) as exc:
        raise BackupError("%s: unusable backup record: %s" % (sidecar, exc)) from None
    record.sidecar = os.path.abspath(sidecar)
    return record


def restore_backup(record):
    """Put the bytes, mode and owner of *record* back on its file, atomically.

    The copy is checked against the recorded sha256 first; a copy that does
    not match is refused (:class:`BackupError`) and the file is left alone.
    """
    if isinstance(record, (str, os.PathLike)):
        record = load_backup_record(record)
    try:
        with open(record.backup_path, "rb") as fh:
            data = fh.read()
    except OSError as exc:
        raise BackupError(
            "%s: cannot read backup: %s" % (record.backup_path, exc.strerror)
        ) from None
    if sha256_bytes(data) != record.sha256:
        raise BackupError(
            "%s: backup does not match its recorded sha256, not restoring" % record.backup_path
        )
    atomic_write(record.path, data, mode=record.mode, uid=record.uid, gid=record.gid)
    st = os.stat(record.path)
    if (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid) != (record.mode, record.uid, record.gid):
        raise BackupError(
            "%s: restored, but mode or owner differ" % record.path
        )  # pragma: no cover


@contextlib.contextmanager
def locked(lock_path):
    """Hold an exclusive ``flock`` on *lock_path* (created 0600) for the block.

    Writers of one JSON-lines file (the spool, the notification outbox) take
    it so that appends, rewrites and compaction never interleave.
    """
    os.makedirs(os.path.dirname(os.path.abspath(lock_path)), exist_ok=True)
    descriptor = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX)
        yield
    finally:
        os.close(descriptor)
