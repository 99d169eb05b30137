"""Read a log file incrementally, in blocks of whole records.

A :class:`Cursor` remembers where the last scan stopped, fail2ban style: the
path, the file's device and inode, a hash of its first bytes, the byte offset
and the line number there. :func:`read_blocks` turns a file and a cursor into
:class:`Block` objects, each a run of complete records, and leaves the updated
cursor on the reader::

    odoo.log  |rec|rec|rec .......|rec|rec|rec (growing)|
              ^cursor.offset      ^block boundaries     ^held back, read next time

The rules (readme/DEVELOP.md, "Reading logs"):

* Only new bytes are read.
* A record is complete when the next record starts, or when its file was
  rotated away. An incremental scan (``final=False``) holds back the last
  record while it may still grow: while it lacks its final newline or the file
  changed less than ``settle_seconds`` ago. A one-shot scan (``final=True``)
  reads to the end.
* Rotation (the path now names another inode): the old file is finished first
  when it can still be found next to the path (``odoo.log.1``,
  ``odoo.log-20261129``), then the new file is read from 0.
* Truncation (copytruncate: same inode, smaller than the offset, or different
  first bytes): read again from 0.

So no record is read twice and none is skipped.

>>> import os, tempfile
>>> folder = tempfile.mkdtemp()
>>> path = os.path.join(folder, "odoo.log")
>>> with open(path, "wb") as f:
...     _ = f.write(b"2026-11-29 10:00:00,000 7 INFO db a: one\\n"
...                 b"2026-11-29 10:00:01,000 7 ERROR db a: two\\n")
>>> reader = LogReader(path, final=False, settle_seconds=3600)
>>> [b.data for b in reader.blocks()]
[b'2026-11-29 10:00:00,000 7 INFO db a: one\\n']
>>> reader.cursor.offset, reader.cursor.line
(41, 2)
>>> with open(path, "ab") as f:
...     _ = f.write(b"Traceback (most recent call last):\\n"
...                 b"2026-11-29 10:00:02,000 7 INFO db a: three\\n")
>>> reader = LogReader(path, reader.cursor, final=False, settle_seconds=3600)
>>> [(b.line, b.data.count(b"\\n")) for b in reader.blocks()]
[(2, 2)]
"""

import hashlib
import os
import stat as stat_module
import time
from dataclasses import asdict, dataclass

from .errors import LogSourceError
from .records import HEADER_START

#: How much of the head of a file identifies it (fail2ban hashes the first line).
HEAD_BYTES = 1024
#: Bytes read per system call.
BLOCK_SIZE = 1 << 20
#: A run of text with no record header longer than this is cut and passed on
#: anyway, so binary junk or a giant line cannot hold memory forever.
MAX_PENDING = 8 << 20


@dataclass
class Cursor:
    """Where the last scan of one log file stopped.

    >>> c = Cursor("/var/log/odoo/odoo.log", inode=12, device=2049, offset=500, line=9)
    >>> Cursor.from_dict(c.to_dict()) == c
    True
    >>> try:
    ...     Cursor.from_dict({"path": "/x", "offset": "bad"})
    ... except LogSourceError as exc:
    ...     print(exc)
    invalid cursor for /x: offset must be an integer >= 0
    """

    path: str
    inode: int = 0
    device: int = 0
    head_len: int = 0
    head_hash: str = ""
    offset: int = 0
    line: int = 1

    def to_dict(self):
        return asdict(self)

    @classmethod
    def from_dict(cls, data):
        path = str(data.get("path", ""))
        values = {"path": path, "head_hash": str(data.get("head_hash") or "")}
        for name, minimum in (("inode", 0), ("device", 0), ("head_len", 0),
                              ("offset", 0), ("line", 1)):
            value = data.get(name, minimum)
            if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
                raise LogSourceError(
                    f"invalid cursor for {path}: {name} must be an integer >= {minimum}")
            values[name] = value
        return cls(**values)


@dataclass(slots=True)
class Block:
    """Complete records read from *path*, starting at byte *offset*, line *line*.

    ``continued``: the block starts inside a record that the block before it
    had to cut (longer than MAX_PENDING with no header in between).
    """

    path: str
    data: bytes
    offset: int
    line: int
    continued: bool = False


def _head_hash(handle, length):
    handle.seek(0)
    return hashlib.sha1(handle.read(length)).hexdigest()


def _open(path):
    """Open a regular file for reading, or raise a one-line LogSourceError."""
    try:
        # stat first: opening a FIFO would block until a writer shows up.
        if not stat_module.S_ISREG(os.stat(path).st_mode):
            if os.path.isdir(path):
                raise LogSourceError(f"log path is a directory, not a file: {path}")
            raise LogSourceError(f"log path is not a regular file: {path}")
        handle = open(path, "rb")  # noqa: SIM115 - closed by the caller
        return handle, os.fstat(handle.fileno())
    except FileNotFoundError:
        raise LogSourceError(f"log file not found: {path}") from None
    except PermissionError:
        raise LogSourceError(f"log file not readable (permission denied): {path}") from None
    except OSError as exc:
        raise LogSourceError(f"cannot open log file {path}: {exc.strerror or exc}") from None


_COMPRESSED = (".gz", ".bz2", ".xz", ".zst", ".lz4", ".zip")


def _siblings(path):
    """Rotated copies next to *path*: (name, stat) of readable plain files."""
    folder = os.path.dirname(path) or "."
    base = os.path.basename(path)
    try:
        names = sorted(os.listdir(folder))
    except OSError:
        return []
    found = []
    for name in names:
        if name == base or not name.startswith(base) or name.endswith(_COMPRESSED):
            continue
        candidate = os.path.join(folder, name)
        try:
            stat = os.stat(candidate)
        except OSError:
            continue
        if stat_module.S_ISREG(stat.st_mode):
            found.append((candidate, stat))
    return found


def find_rotated(path, device, inode):
    """The file next to *path* that still has the old *device* and *inode*.

    logrotate renames ``odoo.log`` to ``odoo.log.1`` or ``odoo.log-DATE``; a
    compressed copy is a different inode and cannot be read on, so it is not
    found.
    """
    for candidate, stat in _siblings(path):
        if stat.st_ino == inode and stat.st_dev == device:
            return candidate
    return None


def rotated_since(path, old_stat, current_stat):
    """Files rotated after the old one: written after it, before the current one.

    When the log rotated more than once between two scans, these hold the
    records in between; oldest first.
    """
    skip = {(old_stat.st_dev, old_stat.st_ino), (current_stat.st_dev, current_stat.st_ino)}
    between = [(stat.st_mtime, candidate) for candidate, stat in _siblings(path)
               if (stat.st_dev, stat.st_ino) not in skip and stat.st_mtime > old_stat.st_mtime]
    return [candidate for _, candidate in sorted(between)]


class LogReader:
    """Yield :class:`Block` objects of new complete records of one log file.

    After :meth:`blocks` is exhausted, :attr:`cursor` holds the new position,
    :attr:`bytes_read` what was read, :attr:`held_back` the bytes of a last
    record left for the next scan, and :attr:`warnings` what a person should
    know (a rotation, a truncation, a rotated file that could not be found).
    ``max_bytes`` bounds one scan; the rest is read by the next one.
    """

    def __init__(self, path, cursor=None, *, final=True, settle_seconds=10.0,
                 max_bytes=None, block_size=BLOCK_SIZE):
        self.path = path
        self.cursor = cursor if cursor is not None and cursor.path == path else Cursor(path)
        self.final = final
        self.settle_seconds = settle_seconds
        self.max_bytes = max_bytes
        self.block_size = block_size
        self.bytes_read = 0
        self.blocks_read = 0
        self.held_back = 0
        self.warnings = []
        self.rotated = False
        self.truncated = False

    def blocks(self):
        handle, stat = _open(self.path)
        with handle:
            cursor = self.cursor
            same_file = (stat.st_ino, stat.st_dev) == (cursor.inode, cursor.device)
            if cursor.inode and not same_file:
                self.rotated = True
                finished = yield from self._finish_rotated(cursor, stat)
                if not finished:
                    return
                start, line = 0, 1
            elif cursor.inode and self._was_truncated(handle, stat):
                self.truncated = True
                self.warnings.append(f"{self.path} was truncated or replaced; "
                                     "reading it from the start")
                start, line = 0, 1
            else:
                start, line = cursor.offset, cursor.line
            offset, line, _ = yield from self._read_file(
                handle, self.path, start, line, final=self.final, stat=stat)
            self.cursor = _cursor_at(handle, self.path, stat, offset, line)

    def _was_truncated(self, handle, stat):
        cursor = self.cursor
        if stat.st_size < cursor.offset:
            return True
        return bool(cursor.head_len) and _head_hash(handle, cursor.head_len) != cursor.head_hash

    def _finish_rotated(self, cursor, current_stat):
        """Read the rest of the rotated-away file, then any file rotated since.

        Returns False when the scan budget ran out inside the old file.
        """
        old_path = find_rotated(self.path, cursor.device, cursor.inode)
        if old_path is None:
            self.warnings.append(
                f"{self.path} was rotated and the old file was not found next to it; "
                "records written to it after the last scan could not be read")
            return True
        try:
            old_handle, old_stat = _open(old_path)
        except LogSourceError as exc:
            self.warnings.append(f"rotated file {old_path} could not be read: {exc}")
            return True
        with old_handle:
            self.warnings.append(f"{self.path} was rotated; finished {old_path} first")
            offset, line, budget_hit = yield from self._read_file(
                old_handle, old_path, cursor.offset, cursor.line, final=True, stat=old_stat)
            if budget_hit:
                # Keep pointing at the old inode: the next scan finds it again.
                self.cursor = _cursor_at(old_handle, self.path, old_stat, offset, line)
                return False
        for between_path in rotated_since(self.path, old_stat, current_stat):
            try:
                handle, stat = _open(between_path)
            except LogSourceError as exc:
                self.warnings.append(f"rotated file {between_path} could not be read: {exc}")
                continue
            with handle:
                self.warnings.append(f"{self.path} rotated more than once; read {between_path}")
                yield from self._read_file(handle, between_path, 0, 1, final=True, stat=stat)
        return True

    def _read_file(self, handle, path, offset, line, *, final, stat):
        """Yield blocks from *offset*; return (offset, line, budget_hit) reached."""
        handle.seek(offset)
        pending = bytearray()  # starts at a record boundary: file offset `offset`
        checked = 0            # lines starting before this were already examined
        budget_hit = False
        continued = False      # pending starts inside a record cut at MAX_PENDING
        while True:
            # Stop at the budget, but only once a block went out: a single
            # record larger than the budget must not stall the cursor forever.
            if (self.max_bytes is not None and self.bytes_read >= self.max_bytes
                    and self.blocks_read):
                budget_hit = True
                break
            chunk = handle.read(self.block_size)
            if not chunk:
                break
            self.bytes_read += len(chunk)
            pending += chunk
            del chunk  # a long line must not cost its bytes twice
            # A header starting the last (even partial) line closes the record
            # before it.
            cut = _last_record_start(pending, checked, len(pending))
            last_newline = pending.rfind(b"\n", checked)
            if last_newline < 0 and checked:
                last_newline = checked - 1
            checked = last_newline + 1
            cut_inside = False
            if cut == 0 and len(pending) > MAX_PENDING:
                cut = last_newline + 1 if last_newline >= 0 else len(pending)
                cut_inside = True
            if cut:
                with memoryview(pending) as view:
                    data = bytes(view[:cut])
                    # A new buffer for the rest: the old one, as long as the
                    # longest line, is freed now.
                    pending = bytearray(view[cut:])
                block = Block(path, data, offset, line, continued)
                del data
                line += block.data.count(b"\n")
                offset += cut
                checked = max(0, checked - cut)
                continued = cut_inside
                self.blocks_read += 1
                yield block
                del block
        pending = bytes(pending)
        # Bytes after the budget were not read, so the last record may go on.
        if pending and not budget_hit and (final or self._settled(pending, stat)):
            yield Block(path, pending, offset, line, continued)
            line += pending.count(b"\n")
            offset += len(pending)
        elif pending:
            self.held_back += len(pending)
        if budget_hit:
            self.warnings.append(
                f"{path}: stopped after {self.bytes_read} bytes (scan budget); "
                "the rest is read by the next scan")
        return offset, line, budget_hit

    def _settled(self, pending, stat):
        """A last record is complete once it ends a line and the file is quiet."""
        if not pending.endswith(b"\n"):
            return False
        return time.time() - stat.st_mtime >= self.settle_seconds


def _cursor_at(handle, path, stat, offset, line):
    head_len = min(offset, HEAD_BYTES)
    return Cursor(
        path=path,
        inode=stat.st_ino,
        device=stat.st_dev,
        head_len=head_len,
        head_hash=_head_hash(handle, head_len) if head_len else "",
        offset=offset,
        line=line,
    )


def _last_record_start(data, low, high):
    """Offset of the last header line starting in ``data[low:high]`` (0 if none).

    Only lines at or after *low* are examined: earlier ones were already.
    """
    position = high
    while position > low:
        start = data.rfind(b"\n", 0, position - 1) + 1
        if start < low:
            break
        if start and HEADER_START.match(data, start):
            return start
        if start == 0:
            break
        position = start
    return 0
