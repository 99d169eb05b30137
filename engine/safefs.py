"""File access on descriptors, never on a path resolved twice (readme/SECURITY.md).

The watchdog runs as root, and the folders it fixes (custom addons, the data
dir, often odoo.conf's) belong to the ``odoo`` user, who can swap any entry in
them for a symlink or a hard link at any moment. So every change a fix makes
to a file under a root goes through this module::

    "/" --O_DIRECTORY|O_NOFOLLOW--> each folder of the root --> the root
        (same device and inode as when planned)
          \\--O_DIRECTORY|O_NOFOLLOW--> each folder below --> dir fd
                \\--O_NOFOLLOW|O_NONBLOCK--> the file: fstat
                     regular? one link? within the size cap?
                     Snapshot(dev, ino, size, mtime, mode, owner, sha256)

    replace(root, rel, expected, data):
        walk to the dir fd; open the file; still the expected snapshot?
        temporary file O_CREAT|O_EXCL in the dir fd: write, fchown, fchmod, fsync
        right before the rename: the name still leads to the same inode, which
        has the same size and mtime
        rename(tmp, name, src_dir_fd=dir, dst_dir_fd=dir); fsync(dir)

A rename never follows a symlink at its destination, and the dir fd is the
folder that was checked, wherever it has been moved since: whatever an
attacker swaps in at the last moment, the file root replaces is an entry in a
folder that lies inside the root, never the target of a link.

>>> import os, tempfile
>>> root = tempfile.mkdtemp()
>>> os.mkdir(os.path.join(root, "data"))
>>> _ = open(os.path.join(root, "data", "cron.xml"), "wb").write(b"<odoo/>")
>>> data, snap = read(root, "data/cron.xml")
>>> data, snap.size
(b'<odoo/>', 7)
>>> new = replace(root, "data/cron.xml", snap, b"<odoo></odoo>")
>>> read(root, "data/cron.xml")[0]
b'<odoo></odoo>'
>>> replace(root, "data/cron.xml", snap, b"again")  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
engine.safefs.FileChangedError: .../cron.xml changed since it was planned (inode ...); plan again
>>> os.symlink("/etc/passwd", os.path.join(root, "data", "link.xml"))
>>> read(root, "data/link.xml")  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
engine.safefs.UnsafeFileError: .../link.xml is a symlink; auto_heal never follows one below a root
"""

import errno
import hashlib
import os
import stat
from dataclasses import asdict, dataclass

from .errors import EngineError

__all__ = [
    "DEFAULT_MAX_BYTES",
    "FileChangedError",
    "Snapshot",
    "UnsafeFileError",
    "locate",
    "open_dir",
    "read",
    "read_regular",
    "replace",
    "set_owner_mode",
    "stat_entry",
]

#: The largest file a fix reads (an Odoo data XML, odoo.conf): 64 MiB.
DEFAULT_MAX_BYTES = 64 * 1024 * 1024
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


class UnsafeFileError(EngineError):
    """A path auto_heal refuses to touch: a symlink, a hard link, not a regular
    file, too big, or outside the roots."""


class FileChangedError(UnsafeFileError):
    """The file is no longer the one that was planned."""


@dataclass(frozen=True)
class Snapshot:
    """What a file was when it was read: compared again before it is replaced."""

    dev: int
    ino: int
    size: int
    mtime_ns: int
    mode: int  # permission bits
    uid: int
    gid: int
    sha256: str

    def to_dict(self):
        return asdict(self)

    @classmethod
    def from_dict(cls, data):
        return cls(**{k: data[k] for k in cls.__dataclass_fields__})

    def differences(self, other):
        """What differs from *other*, for a reason a person can read.

        >>> a = Snapshot(1, 2, 3, 4, 0o644, 0, 0, "ab")
        >>> a.differences(Snapshot(1, 9, 3, 4, 0o644, 0, 0, "ab"))
        ['inode 2 -> 9']
        """
        labels = {"dev": "device", "ino": "inode", "size": "size", "mtime_ns": "mtime",
                  "sha256": "sha256"}
        out = []
        for key, label in labels.items():
            before, after = getattr(self, key), getattr(other, key)
            if before != after:
                if key == "sha256":
                    before, after = before[:12], after[:12]
                out.append(f"{label} {before} -> {after}")
        return out


def _split(rel):
    """The components of a relative path; refuses absolute paths and ``..``.

    >>> _split("a/b.xml"), _split(""), _split("./a//b")
    (['a', 'b.xml'], [], ['a', 'b'])
    >>> _split("a/../b")
    Traceback (most recent call last):
    ...
    engine.safefs.UnsafeFileError: a/../b: '..' is not allowed below a root
    """
    rel = os.fspath(rel)
    if os.path.isabs(rel):
        raise UnsafeFileError(f"{rel}: must be relative to its root")
    parts = [p for p in rel.split(os.sep) if p not in ("", ".")]
    if ".." in parts:
        raise UnsafeFileError(f"{rel}: '..' is not allowed below a root")
    return parts


def locate(path, roots):
    """``(root, rel)``: the configured root holding *path*, and the path below it.

    Purely lexical (``..`` collapsed, no symlink resolved): the walk from the
    root then refuses every symlink on the way. A root is matched as given
    and as its real path, so a root configured through a symlink still
    holds the paths a log names through it. The longest root wins.

    >>> locate("/srv/addons/m/data/cron.xml", ["/srv", "/srv/addons"])
    ('/srv/addons', 'm/data/cron.xml')
    >>> locate("/etc/passwd", ["/srv/addons"])
    Traceback (most recent call last):
    ...
    engine.safefs.UnsafeFileError: /etc/passwd is outside the allowed roots: /srv/addons
    """
    path = os.path.normpath(os.path.abspath(os.fspath(path)))
    best = None
    for root in roots:
        root = os.fspath(root)
        for form in dict.fromkeys((os.path.normpath(os.path.abspath(root)),
                                   os.path.realpath(root))):
            if path == form or path.startswith(form.rstrip(os.sep) + os.sep):
                if best is None or len(form) > len(best[1]):
                    best = (os.path.realpath(root), form)
    if best is None:
        raise UnsafeFileError("%s is outside the allowed roots: %s" % (
            path, ", ".join(os.fspath(r) for r in roots) or "none configured"))
    real_root, form = best
    return real_root, os.path.relpath(path, form) if path != form else ""


def _open_walk(start_fd, parts, shown):
    """Open *parts* below *start_fd* as folders, never through a symlink."""
    fd = start_fd
    try:
        for part in parts:
            try:
                nfd = os.open(part, _DIR_FLAGS, dir_fd=fd)
            except OSError as exc:
                if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                    raise UnsafeFileError(f"{shown}: {part!r} on the way is a symlink or not "
                                          "a folder; auto_heal never follows one") from None
                raise
            os.close(fd)
            fd = nfd
    except BaseException:
        os.close(fd)
        raise
    return fd


def open_dir(root, rel_dir="", expect=None):
    """A descriptor of the folder *root*/*rel_dir*, walked from ``/`` without
    following any symlink, the root's own folders included: *root* is the real
    path :func:`locate` gave when the change was planned, never resolved again.

    *expect*: ``(dev, ino)`` the root must still have.
    """
    real = os.path.normpath(os.fspath(root))
    if not os.path.isabs(real):
        raise UnsafeFileError(f"{root}: a root must be an absolute path")
    fd = os.open("/", _DIR_FLAGS)
    fd = _open_walk(fd, _split(real.lstrip(os.sep)), real)
    if expect is not None:
        st = os.fstat(fd)
        if (st.st_dev, st.st_ino) != tuple(expect):
            os.close(fd)
            raise FileChangedError(f"{real}: the root is no longer the folder that was "
                                   "planned (replaced or moved); plan again")
    return _open_walk(fd, _split(rel_dir), os.path.join(real, os.fspath(rel_dir)))


def stat_entry(dir_fd, name):
    """lstat of *name* in *dir_fd*, or None when it does not exist."""
    try:
        return os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return None


def _check_regular(st, shown, max_bytes):
    if stat.S_ISLNK(st.st_mode):
        raise UnsafeFileError(f"{shown} is a symlink; auto_heal never follows one below a root")
    if not stat.S_ISREG(st.st_mode):
        raise UnsafeFileError(f"{shown} is not a regular file")
    if st.st_nlink > 1:
        raise UnsafeFileError(f"{shown} has {st.st_nlink} hard links; refused (it could be "
                              "another file's name)")
    if max_bytes is not None and st.st_size > max_bytes:
        raise UnsafeFileError(f"{shown} is {st.st_size} bytes, over the {max_bytes}-byte cap")


def _read_fd(fd, shown, max_bytes):
    chunks, total = [], 0
    limit = max_bytes if max_bytes is not None else float("inf")
    while True:
        chunk = os.read(fd, 1 << 20)
        if not chunk:
            break
        total += len(chunk)
        if total > limit:
            raise UnsafeFileError(f"{shown} grew over the {max_bytes}-byte cap while read")
        chunks.append(chunk)
    return b"".join(chunks)


def _snapshot(st, data):
    return Snapshot(st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, stat.S_IMODE(st.st_mode),
                    st.st_uid, st.st_gid, hashlib.sha256(data).hexdigest())


def _open_file(dir_fd, name, shown, max_bytes):
    """``(fd, stat)`` of a regular file with one link, checked before and after open."""
    st = stat_entry(dir_fd, name)
    if st is None:
        raise FileNotFoundError(errno.ENOENT, "No such file", shown)
    _check_regular(st, shown, max_bytes)  # a FIFO or device is never opened
    try:
        fd = os.open(name, _FILE_FLAGS, dir_fd=dir_fd)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise UnsafeFileError(f"{shown} is a symlink; auto_heal never follows one "
                                  "below a root") from None
        raise
    fst = os.fstat(fd)
    try:
        _check_regular(fst, shown, max_bytes)
        if (fst.st_dev, fst.st_ino) != (st.st_dev, st.st_ino):
            raise FileChangedError(f"{shown} was swapped while it was opened; plan again")
    except BaseException:
        os.close(fd)
        raise
    return fd, fst


def read(root, rel, max_bytes=DEFAULT_MAX_BYTES, expect_root=None):
    """``(bytes, Snapshot)`` of the regular file *root*/*rel*, read on descriptors."""
    parts = _split(rel)
    if not parts:
        raise UnsafeFileError(f"{root}: a root is a folder, not a file to read")
    shown = os.path.join(os.fspath(root), *parts)
    dir_fd = open_dir(root, os.path.join(*parts[:-1]) if parts[:-1] else "", expect_root)
    try:
        fd, st = _open_file(dir_fd, parts[-1], shown, max_bytes)
        try:
            data = _read_fd(fd, shown, max_bytes)
            after = os.fstat(fd)
            if (after.st_size, after.st_mtime_ns) != (st.st_size, st.st_mtime_ns) or \
                    len(data) != st.st_size:
                raise FileChangedError(f"{shown} changed while it was read; plan again")
            return data, _snapshot(st, data)
        finally:
            os.close(fd)
    finally:
        os.close(dir_fd)


def read_regular(path, what="file", max_bytes=DEFAULT_MAX_BYTES, follow=False):
    """The bytes of one file named by a parameter or the config, type- and size-checked.

    A FIFO, a device, a folder, a file over *max_bytes* and, unless
    *follow*, a symlink as the last component are refused with one line
    naming *what* and the path; nothing blocks (``O_NONBLOCK``).

    >>> read_regular("/dev/zero", "patterns file")
    Traceback (most recent call last):
    ...
    engine.safefs.UnsafeFileError: patterns file /dev/zero is not a regular file
    """
    path = os.fspath(path)
    flags = os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | (0 if follow else os.O_NOFOLLOW)
    try:
        st = os.stat(path, follow_symlinks=follow)
    except FileNotFoundError:
        raise UnsafeFileError(f"{what} not found: {path}") from None
    except OSError as exc:
        raise UnsafeFileError(f"{what} {path}: {exc.strerror or exc}") from None
    shown = f"{what} {path}"
    if stat.S_ISLNK(st.st_mode):
        raise UnsafeFileError(f"{shown} is a symlink; refused (name the file itself)")
    if not stat.S_ISREG(st.st_mode):
        raise UnsafeFileError(f"{shown} is not a regular file")
    if st.st_size > max_bytes:
        raise UnsafeFileError(f"{shown} is {st.st_size} bytes, over the {max_bytes}-byte cap")
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise UnsafeFileError(f"{shown} is a symlink; refused (name the file itself)") \
                from None
        raise UnsafeFileError(f"{shown}: {exc.strerror or exc}") from None
    try:
        fst = os.fstat(fd)
        if not stat.S_ISREG(fst.st_mode):
            raise UnsafeFileError(f"{shown} is not a regular file")
        return _read_fd(fd, shown, max_bytes)
    finally:
        os.close(fd)


def replace(root, rel, expected, data, *, mode=None, uid=None, gid=None, expect_root=None):
    """Replace *root*/*rel* with *data*, atomically, only if it still is *expected*.

    *expected* is the :class:`Snapshot` taken when the change was planned, or
    None for a file that must not exist yet. Mode and owner are kept from the
    file unless given. Returns the :class:`Snapshot` of the new file.
    Raises :class:`FileChangedError` (nothing written) when anything differs.
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError("replace() needs bytes, not %s" % type(data).__name__)
    data = bytes(data)
    parts = _split(rel)
    if not parts:
        raise UnsafeFileError(f"{root}: a root is a folder, not a file to replace")
    name = parts[-1]
    shown = os.path.join(os.fspath(root), *parts)
    dir_fd = open_dir(root, os.path.join(*parts[:-1]) if parts[:-1] else "", expect_root)
    fd = None
    try:
        if expected is None:
            if stat_entry(dir_fd, name) is not None:
                raise FileChangedError(f"{shown} exists now, but was planned as missing; "
                                       "plan again")
            keep_mode, keep_uid, keep_gid = 0o600, os.geteuid(), os.getegid()
        else:
            fd, st = _open_file(dir_fd, name, shown, None)
            now = Snapshot(st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns,
                           stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid, expected.sha256)
            changed = expected.differences(now)
            if not changed:  # same inode, size and mtime: now the bytes themselves
                now = _snapshot(st, _read_fd(fd, shown, expected.size))
                changed = expected.differences(now)
            if changed:
                raise FileChangedError(f"{shown} changed since it was planned "
                                       f"({', '.join(changed)}); plan again")
            keep_mode, keep_uid, keep_gid = now.mode, now.uid, now.gid
        mode = keep_mode if mode is None else mode
        uid = keep_uid if uid is None else uid
        gid = keep_gid if gid is None else gid
        tmp = _write_temp(dir_fd, name, data, mode, uid, gid, shown)
        try:
            # the last look before the rename: same inode, same size and mtime
            if expected is not None:
                entry = stat_entry(dir_fd, name)
                fst = os.fstat(fd)
                if entry is None or (entry.st_dev, entry.st_ino) != (expected.dev, expected.ino) \
                        or (fst.st_size, fst.st_mtime_ns) != (expected.size, expected.mtime_ns):
                    raise FileChangedError(f"{shown} was swapped or written just before the "
                                           "rename; nothing replaced; plan again")
            elif stat_entry(dir_fd, name) is not None:
                raise FileChangedError(f"{shown} appeared just before the rename; plan again")
            os.rename(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
            tmp = None
        finally:
            if tmp is not None:
                try:
                    os.unlink(tmp, dir_fd=dir_fd)
                except FileNotFoundError:
                    pass
        _fsync(dir_fd)
        new_st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        return _snapshot(new_st, data)
    finally:
        if fd is not None:
            os.close(fd)
        os.close(dir_fd)


def _write_temp(dir_fd, name, data, mode, uid, gid, shown):
    """A temporary file in *dir_fd* holding *data* with *mode* and owner; its name."""
    for _attempt in range(100):
        tmp = ".%s.%s.auto_heal.tmp" % (name[:100], os.urandom(6).hex())
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                         0o600, dir_fd=dir_fd)
            break
        except FileExistsError:
            continue
    else:  # pragma: no cover - 100 collisions of 48 random bits
        raise UnsafeFileError(f"{shown}: cannot create a temporary file next to it")
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        st = os.fstat(fd)
        want_uid = st.st_uid if uid == -1 else uid
        want_gid = st.st_gid if gid == -1 else gid
        if (want_uid, want_gid) != (st.st_uid, st.st_gid):
            try:
                os.fchown(fd, want_uid, want_gid)
            except PermissionError as exc:
                raise PermissionError(exc.errno, "cannot keep owner %s:%s (running as uid %s)"
                                      % (want_uid, want_gid, os.geteuid()), shown) from None
        os.fchmod(fd, mode)  # after chown: chown may clear set-id bits
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        try:
            os.unlink(tmp, dir_fd=dir_fd)
        except FileNotFoundError:
            pass
        raise
    os.close(fd)
    return tmp


def _fsync(fd):
    try:
        os.fsync(fd)
    except OSError as exc:  # pragma: no cover - some filesystems refuse it on folders
        if exc.errno not in (errno.EINVAL, errno.EBADF):
            raise


def set_owner_mode(root, rel, expect, uid, gid, mode, kind):
    """chown then chmod *root*/*rel* on its descriptor, if it is still *expect*.

    *expect* is ``(dev, ino)``; *kind* ``"dir"`` or ``"file"``. A symlink, a
    file with several hard links or another inode is refused. Returns the
    ``(mode, uid, gid)`` it had.
    """
    parts = _split(rel)
    shown = os.path.join(os.fspath(root), *parts)
    if kind == "dir":
        fd = open_dir(root, rel)
    else:
        if not parts:
            raise UnsafeFileError(f"{root}: a root is a folder")
        dir_fd = open_dir(root, os.path.join(*parts[:-1]) if parts[:-1] else "")
        try:
            fd, _ = _open_file(dir_fd, parts[-1], shown, None)
        finally:
            os.close(dir_fd)
    try:
        st = os.fstat(fd)
        if (st.st_dev, st.st_ino) != tuple(expect):
            raise FileChangedError(f"{shown} is no longer the file that was planned "
                                   "(replaced or moved); plan again")
        before = (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid)
        if (st.st_uid, st.st_gid) != (uid, gid):
            os.fchown(fd, uid, gid)
        os.fchmod(fd, mode)
        return before
    finally:
        os.close(fd)
