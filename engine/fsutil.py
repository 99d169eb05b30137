"""Safety primitives for every fix that touches a file (safety rules 2 and 3).

Every file change made by auto_heal goes through this module:

- :func:`resolve_inside` refuses a path, or a symlink, that escapes the
  configured roots (a plan-time check; the change itself walks on
  descriptors, :mod:`engine.safefs`);
- :func:`backup_file` keeps the exact bytes, mode and owner of the file, with
  their sha256 and inode, in a backup folder plus a JSON sidecar;
- :func:`atomic_write` writes auto_heal's own files through a temporary file
  in the same folder's descriptor, fsyncs it, gives it the original mode and
  owner, renames it over the target and fsyncs the folder, so a crash leaves
  either the old or the new file, never half of one;
- :func:`restore_backup` puts the bytes, mode and owner back exactly, on
  descriptors, only over the file it was told about.

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
True
>>> open(target, "rb").read()
b'<odoo/>\\n'
>>> sorted(os.listdir(root))   # no temporary file left behind
['backups', 'cron.xml']
"""

import contextlib
import datetime
import difflib
import errno
import fcntl
import hashlib
import json
import os
import re
import stat
from dataclasses import asdict, dataclass

from . import safefs
from .errors import EngineError

__all__ = [
    "BackupError",
    "BackupRecord",
    "PathEscapeError",
    "atomic_write",
    "backup_bytes",
    "backup_file",
    "current_state",
    "load_backup_record",
    "locked",
    "prune_backups",
    "read_backup",
    "resolve_inside",
    "restore_backup",
    "split_lines",
    "split_root",
    "unified_diff",
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


def _current_umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write(path, data, mode=None, uid=None, gid=None):
    """Replace the content of *path* with *data* (bytes), atomically.

    For auto_heal's own files (state, run records, backups, spool): the new
    content is written to a temporary file created in the folder's
    descriptor, flushed and fsynced, given the mode and owner of the file it
    replaces, renamed over it relative to that descriptor, and the folder is
    fsynced. A symlink, or anything but a regular file, at *path* is refused
    (:class:`engine.safefs.UnsafeFileError`): a link planted where a state
    file should be must not make root write its target.

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
    path = os.path.abspath(os.fspath(path))
    directory, name = os.path.split(path)
    dir_fd = os.open(directory or ".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        st = safefs.stat_entry(dir_fd, name)
        if st is not None and stat.S_ISLNK(st.st_mode):
            raise safefs.UnsafeFileError(f"{path} is a symlink; refused (auto_heal writes its "
                                         "own files only where no link stands)")
        if st is not None and not stat.S_ISREG(st.st_mode):
            raise IsADirectoryError(errno.EISDIR, "not a regular file", path)
        if mode is None:
            mode = stat.S_IMODE(st.st_mode) if st else (0o666 & ~_current_umask())
        if uid is None:
            uid = st.st_uid if st else -1
        if gid is None:
            gid = st.st_gid if st else -1
        tmp = safefs._write_temp(dir_fd, name, bytes(data), mode, uid, gid, path)
        try:
            os.rename(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
        except BaseException:
            try:
                os.unlink(tmp, dir_fd=dir_fd)
            except FileNotFoundError:
                pass
            raise
        safefs._fsync(dir_fd)
    finally:
        os.close(dir_fd)


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

    Stored as JSON next to the copy (``<copy>.json``). ``root`` and ``rel``
    say where the file lies (the restore walks there on descriptors);
    ``dev``, ``ino`` and ``mtime_ns`` are what it was when it was copied.
    """

    path: str  # root/rel: the file that was backed up
    backup_path: str  # the copy of its bytes
    sha256: str
    size: int
    mode: int  # permission bits, e.g. 0o644 == 420
    uid: int
    gid: int
    created: str  # ISO 8601 UTC
    sidecar: str = ""
    root: str = ""
    rel: str = ""
    dev: int = 0
    ino: int = 0
    mtime_ns: int = 0

    def to_dict(self):
        return asdict(self)

    @classmethod
    def from_dict(cls, data):
        fields = cls.__dataclass_fields__
        return cls(**{k: v for k, v in data.items() if k in fields})

    @property
    def snapshot(self):
        """The :class:`engine.safefs.Snapshot` of the file when it was copied."""
        return safefs.Snapshot(self.dev, self.ino, self.size, self.mtime_ns, self.mode,
                               self.uid, self.gid, self.sha256)

    def where(self):
        """``(root, rel)``; a record without a root names its file's own folder."""
        if self.root:
            return self.root, self.rel
        return os.path.split(self.path)


def _utcnow():
    return datetime.datetime.now(datetime.timezone.utc)


def split_root(path):
    """``(folder, name)`` of a single file named by the operator, the folder at
    its real path, so that a file can be its own root.

    >>> split_root("/etc/odoo/../odoo/odoo.conf")
    ('/etc/odoo', 'odoo.conf')
    """
    path = os.path.abspath(os.fspath(path))
    return os.path.realpath(os.path.dirname(path)), os.path.basename(path)


def backup_file(path, backup_dir, *, root=None, max_bytes=safefs.DEFAULT_MAX_BYTES):
    """Copy *path* (inside *root*, or its own folder) into *backup_dir*.

    The file is read on descriptors (:func:`engine.safefs.read`): a symlink, a
    hard link or a non-regular file is refused. The copy is
    ``<backup_dir>/<name>.<UTC time>.<sha8>`` (mode 0600, the folder 0700: a
    config can hold passwords), its sidecar is the same name plus ``.json``.
    The copy is read back and checked against the sha256 before this
    returns. Returns a :class:`BackupRecord`; callers compare its
    :attr:`BackupRecord.snapshot` with the one they planned.
    """
    if root is None:
        root, rel = split_root(path)
    else:
        root, rel = safefs.locate(path, [root])
    data, snap = safefs.read(root, rel, max_bytes)
    return backup_bytes(data, snap, root, rel, backup_dir)


def backup_bytes(data, snap, root, rel, backup_dir):
    """Keep *data*, read as *snap* from *root*/*rel*, in *backup_dir*."""
    digest = sha256_bytes(data)
    if digest != snap.sha256:
        raise BackupError(f"{root}/{rel}: the bytes to keep are not the ones read")
    os.makedirs(backup_dir, mode=0o700, exist_ok=True)
    now = _utcnow()
    stem = "%s.%s.%s" % (os.path.basename(rel) or "file", now.strftime("%Y%m%dT%H%M%S.%fZ"),
                         digest[:8])
    copy_path = os.path.join(os.path.abspath(backup_dir), stem)
    n = 1
    while os.path.lexists(copy_path) or os.path.lexists(copy_path + ".json"):
        n += 1
        copy_path = os.path.join(os.path.abspath(backup_dir), "%s.%d" % (stem, n))
    atomic_write(copy_path, data, mode=0o600)
    if sha256_bytes(safefs.read_regular(copy_path, "backup copy", len(data))) != digest:
        raise BackupError(  # pragma: no cover - disk trouble
            "%s: backup copy does not match its checksum" % copy_path)
    record = BackupRecord(
        path=os.path.join(root, rel), backup_path=copy_path, sha256=digest, size=len(data),
        mode=snap.mode, uid=snap.uid, gid=snap.gid, created=now.isoformat(),
        sidecar=copy_path + ".json", root=root, rel=rel, dev=snap.dev, ino=snap.ino,
        mtime_ns=snap.mtime_ns,
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
        data = json.loads(safefs.read_regular(sidecar, "backup record", 1 << 20).decode("utf-8"))
        record = BackupRecord.from_dict(data)
    except (OSError, ValueError, TypeError, EngineError) as exc:
        raise BackupError("%s: unusable backup record: %s" % (sidecar, exc)) from None
    record.sidecar = os.path.abspath(sidecar)
    return record


def read_backup(record):
    """The bytes of *record*'s copy, checked against its sha256."""
    try:
        data = safefs.read_regular(record.backup_path, "backup copy",
                                   max(record.size, 0) + (1 << 20))
    except EngineError as exc:
        raise BackupError("%s: cannot read backup: %s" % (record.backup_path, exc)) from None
    if sha256_bytes(data) != record.sha256:
        raise BackupError(
            "%s: backup does not match its recorded sha256, not restoring" % record.backup_path
        )
    return data


def current_state(record):
    """``(bytes, Snapshot)`` of *record*'s file now, or ``(None, None)`` when it is gone."""
    root, rel = record.where()
    try:
        return safefs.read(root, rel)
    except FileNotFoundError:
        return None, None


def restore_backup(record, current=None):
    """Put the bytes, mode and owner of *record* back on its file, atomically.

    The copy is checked against the recorded sha256 first; a copy that does
    not match is refused (:class:`BackupError`) and the file is left alone.
    The file is replaced on descriptors, only if it still is *current* (the
    :class:`engine.safefs.Snapshot` the caller looked at; read here when
    None). A file that already holds the recorded bytes, mode and owner is
    left alone. Returns True when the file was written, False when it
    already was as recorded.
    """
    if isinstance(record, (str, os.PathLike)):
        record = load_backup_record(record)
    data = read_backup(record)
    root, rel = record.where()
    if current is None:
        _, current = current_state(record)
    if current is not None and (current.sha256, current.mode, current.uid, current.gid) == \
            (record.sha256, record.mode, record.uid, record.gid):
        return False
    safefs.replace(root, rel, current, data, mode=record.mode, uid=record.uid, gid=record.gid)
    return True


def prune_backups(backup_dir, older_than):
    """Delete the backup copies (and their sidecars) made before *older_than* (epoch)."""
    try:
        names = os.listdir(backup_dir)
    except FileNotFoundError:
        return 0
    removed = 0
    for name in names:
        if not name.endswith(".json"):
            continue
        sidecar = os.path.join(backup_dir, name)
        try:
            if os.lstat(sidecar).st_mtime >= older_than:
                continue
        except FileNotFoundError:
            continue
        for path in (sidecar[:-5], sidecar):  # the copy first: no sidecar without its copy
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass
        removed += 1
    return removed


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


def split_lines(text):
    """Lines of *text* with their endings (\\n, \\r\\n or \\r), the last one without."""
    return re.findall(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+$", text)


def unified_diff(old, new, path, encoding="utf-8"):
    """Unified diff of two byte strings, decoded with *encoding*.

    >>> print(unified_diff(b"a\\nb\\n", b"a\\n", "f.xml"), end="")
    --- a/f.xml
    +++ b/f.xml
    @@ -1,2 +1 @@
     a
    -b
    """
    old_lines = split_lines(old.decode(encoding, "replace"))
    new_lines = split_lines(new.decode(encoding, "replace"))
    label = path.lstrip("/")
    out = []
    for line in difflib.unified_diff(old_lines, new_lines, "a/" + label, "b/" + label):
        if line.startswith(("---", "+++")):
            out.append(line.rstrip("\r\n") + "\n")
        elif line.endswith(("\n", "\r")):
            out.append(line)
        else:
            out.append(line + "\n\\ No newline at end of file\n")
    return "".join(out)
