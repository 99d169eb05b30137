"""The spool: what the watchdog finds and does while Odoo is down, kept for Odoo.

Entries are JSON lines appended with ``O_APPEND`` and fsynced, each with an
``id`` of its own. A small cursor file (``<spool>.sent``) holds the byte offset
Odoo has acknowledged::

    spool.jsonl   {"id": "a1", ...}\\n{"id": "b2", ...}\\n{"id": "c3", ...}\\n
                  ^-- acknowledged --^^---------- pending ------------^
    spool.jsonl.sent   {"offset": 23}

Hand-over is at least once from this side (a watchdog killed after Odoo
stored a batch but before the cursor moved sends that batch again) and
exactly once in effect, because Odoo keeps the ids it has stored and ignores
an id it has seen. Nothing is lost: the cursor only moves after Odoo answered.

>>> import os, tempfile
>>> spool = Spool(os.path.join(tempfile.mkdtemp(), "spool.jsonl"))
>>> first = spool.append({"kind": "incident", "pattern": "db_connection_failed"})
>>> second = spool.append({"kind": "restart", "service": "postgresql"})
>>> [e["kind"] for e in spool.pending()]
['incident', 'restart']
>>> batch = spool.pending(limit=1)
>>> spool.acknowledge(batch)
>>> [e["id"] for e in spool.pending()] == [second["id"]]
True
"""

import json
import os
import uuid
from datetime import datetime, timezone

from .errors import EngineError
from .fsutil import atomic_write, locked
from .secrets import mask_values


class SpoolError(EngineError):
    """The spool cannot be written or read."""


#: The spool's default cap: past it the oldest pending entries are dropped, counted.
DEFAULT_MAX_BYTES = 64 * 1024 * 1024
#: What the spool keeps of its cap when it drops the oldest entries (room to grow).
KEEP_FRACTION = 0.75
#: How much of the spool's end :meth:`Spool.recent_ids` reads.
TAIL_BYTES = 1024 * 1024


def overflow_entry(dropped, first, last, max_bytes):
    """The entry that tells Odoo the spool dropped *dropped* entries (never silent)."""
    return {"kind": "alert", "alert": "spool_overflow", "dropped": dropped,
            "first_dropped": first, "last_dropped": last,
            "message": f"the watchdog's spool passed its cap of {max_bytes} bytes: the "
                       f"{dropped} oldest entries (from {first or '?'} to {last or '?'}) "
                       "were dropped before Odoo could take them"}


class Spool:
    """An append-only JSON-lines spool with an acknowledged offset and a cap.

    When an entry would make the pending part pass *max_bytes*, the oldest
    pending entries are dropped (down to :data:`KEEP_FRACTION` of the cap),
    counted in ``<spool>.dropped``, and an entry saying so
    (*on_overflow(dropped, first, last, max_bytes)*, default
    :func:`overflow_entry`) takes their place at the head.

    >>> import os, tempfile
    >>> spool = Spool(os.path.join(tempfile.mkdtemp(), "spool.jsonl"), max_bytes=2000)
    >>> for n in range(40):
    ...     _ = spool.append({"kind": "incident", "n": n, "pad": "x" * 40})
    >>> entries = spool.pending()
    >>> entries[0]["alert"], entries[0]["dropped"] == spool.dropped(), entries[-1]["n"]
    ('spool_overflow', True, 39)
    >>> os.path.getsize(spool.path) <= 2000, spool.count() == len(entries)
    (True, True)
    """

    def __init__(self, path, max_bytes=DEFAULT_MAX_BYTES, on_overflow=overflow_entry):
        self.path = path
        self.cursor_path = path + ".sent"
        self.lock_path = path + ".lock"
        self.dropped_path = path + ".dropped"
        self.max_bytes = max_bytes
        self.on_overflow = on_overflow
        self._counted = None  # (inode, acknowledged offset, counted up to, count)

    def append(self, entry):
        """Store *entry* (secrets masked) with a new ``id`` and ``time``; return it."""
        entry = dict(mask_values(entry))
        entry.setdefault("id", uuid.uuid4().hex)
        entry.setdefault("time", datetime.now(timezone.utc).isoformat(timespec="seconds"))
        line = json.dumps(entry, sort_keys=True, default=str).encode("utf-8") + b"\n"
        try:
            with locked(self.lock_path):
                try:
                    size = os.path.getsize(self.path)
                except FileNotFoundError:
                    size = 0
                if size - min(self._acknowledged(), size) + len(line) > self.max_bytes:
                    self._drop_oldest(len(line))
                self._write(line)
        except OSError as exc:
            raise SpoolError(f"cannot write the spool {self.path}: {exc.strerror or exc}") from None
        return entry

    def _drop_oldest(self, incoming):
        """Keep the newest pending lines within the cap; count and announce the rest."""
        offset = self._acknowledged()
        with open(self.path, "rb") as handle:
            handle.seek(offset)
            lines = [raw for raw in handle if raw.endswith(b"\n")]
        reserve = min(1024, self.max_bytes // 4)  # room for the notice
        budget = int(self.max_bytes * KEEP_FRACTION) - incoming - reserve
        kept, used = [], 0
        for raw in reversed(lines):
            if used + len(raw) > budget:
                break
            kept.append(raw)
            used += len(raw)
        kept.reverse()
        gone = lines[:len(lines) - len(kept)]
        count, first, last, dropped_now = 0, None, None, 0
        for raw in gone:  # an earlier notice dropped in turn passes its count on
            try:
                entry = json.loads(raw)
            except ValueError:
                count, dropped_now = count + 1, dropped_now + 1
                continue
            if entry.get("alert") == "spool_overflow":
                count += int(entry.get("dropped") or 0)
                first = first or entry.get("first_dropped")
                last = entry.get("last_dropped") or last
            else:
                count, dropped_now = count + 1, dropped_now + 1
                first = first or entry.get("time")
                last = entry.get("time") or last
        notice = dict(mask_values(self.on_overflow(count, first, last, self.max_bytes)))
        notice.setdefault("id", uuid.uuid4().hex)
        notice.setdefault("time", datetime.now(timezone.utc).isoformat(timespec="seconds"))
        head = json.dumps(notice, sort_keys=True, default=str).encode("utf-8") + b"\n"
        # cursor first: a crash in between resends the old spool, which Odoo ignores
        atomic_write(self.cursor_path, b'{"offset": 0}\n', mode=0o600)
        atomic_write(self.path, head + b"".join(kept), mode=0o600)
        atomic_write(self.dropped_path, json.dumps(
            {"dropped": self.dropped() + dropped_now}).encode() + b"\n", mode=0o600)
        self._counted = None

    def dropped(self):
        """How many entries the cap has dropped in this spool's life."""
        try:
            with open(self.dropped_path, encoding="utf-8") as handle:
                return int(json.load(handle)["dropped"])
        except (OSError, ValueError, KeyError, TypeError):
            return 0

    def _write(self, line):
        descriptor = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(descriptor, line)
            os.fsync(descriptor)
        finally:
            os.close(descriptor)

    def _acknowledged(self):
        try:
            with open(self.cursor_path, encoding="utf-8") as handle:
                return int(json.load(handle)["offset"])
        except FileNotFoundError:
            return 0
        except (OSError, ValueError, KeyError, TypeError):
            # A damaged cursor: sending again is safe (Odoo ignores ids it has).
            return 0

    def pending(self, limit=None):
        """Entries not yet acknowledged, oldest first, each with its ``_end`` offset."""
        offset = self._acknowledged()
        try:
            if offset > os.path.getsize(self.path):
                offset = 0  # the spool was replaced under the cursor: resend all
        except FileNotFoundError:
            return []
        entries = []
        try:
            with open(self.path, "rb") as handle:
                handle.seek(offset)
                for raw in handle:
                    offset += len(raw)
                    if not raw.endswith(b"\n"):
                        break  # a line still being written
                    try:
                        entry = json.loads(raw)
                    except ValueError:
                        continue  # a torn line from a crash: skip it, keep the rest
                    entry["_end"] = offset
                    entries.append(entry)
                    if limit and len(entries) >= limit:
                        break
        except FileNotFoundError:
            return []
        return entries

    def acknowledge(self, entries):
        """Move the cursor past *entries* (a prefix of :meth:`pending`)."""
        if not entries:
            return
        end = max(entry["_end"] for entry in entries)
        with locked(self.lock_path):
            atomic_write(self.cursor_path, json.dumps({"offset": end}).encode() + b"\n",
                         mode=0o600)
            # Start an empty spool once everything in it was acknowledged.
            try:
                drained = os.path.getsize(self.path) == end
            except FileNotFoundError:
                drained = False
            if drained:
                # Cursor first: a crash in between resends, which Odoo ignores;
                # the other order could skip entries appended later.
                atomic_write(self.cursor_path, b'{"offset": 0}\n', mode=0o600)
                atomic_write(self.path, b"", mode=0o600)

    def count(self):
        """How many entries wait for Odoo, counted incrementally (not re-parsed each call)."""
        offset = self._acknowledged()
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return 0
        cached = self._counted
        if cached and cached[0] == st.st_ino and cached[1] == offset and cached[2] <= st.st_size:
            start, count = cached[2], cached[3]
        else:
            start, count = min(offset, st.st_size), 0
        with open(self.path, "rb") as handle:
            handle.seek(start)
            position = start
            while True:
                chunk = handle.read(1 << 20)
                if not chunk:
                    break
                last = chunk.rfind(b"\n")
                if last < 0:
                    break  # a line still being written: counted when it is whole
                count += chunk.count(b"\n", 0, last + 1)
                position += last + 1
                handle.seek(position)
        self._counted = (st.st_ino, offset, position, count)
        return count

    def recent_ids(self):
        """The ids of the entries in the spool's last :data:`TAIL_BYTES` (cheap)."""
        try:
            with open(self.path, "rb") as handle:
                size = os.fstat(handle.fileno()).st_size
                handle.seek(max(0, size - TAIL_BYTES))
                data = handle.read()
        except FileNotFoundError:
            return set()
        lines = data.split(b"\n")
        if size > TAIL_BYTES:
            lines = lines[1:]  # the first one is cut
        ids = set()
        for raw in lines:
            try:
                ids.add(json.loads(raw)["id"])
            except (ValueError, KeyError, TypeError):
                continue
        return ids

    def __len__(self):
        return self.count()
