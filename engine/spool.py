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


class Spool:
    """An append-only JSON-lines spool with an acknowledged offset."""

    def __init__(self, path):
        self.path = path
        self.cursor_path = path + ".sent"
        self.lock_path = path + ".lock"

    def append(self, entry):
        """Store *entry* (secrets masked) with a new ``id`` and ``time``; return it."""
        entry = dict(mask_values(entry))
        entry.setdefault("id", uuid.uuid4().hex)
        entry.setdefault("time", datetime.now(timezone.utc).isoformat(timespec="seconds"))
        line = json.dumps(entry, sort_keys=True, default=str).encode("utf-8") + b"\n"
        try:
            with locked(self.lock_path):
                self._write(line)
        except OSError as exc:
            raise SpoolError(f"cannot write the spool {self.path}: {exc.strerror or exc}") from None
        return entry

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

    def __len__(self):
        return len(self.pending())
