"""Where the watchdog keeps its run records: one JSON file per run.

``bin/auto-heal rollback RUN_ID`` reads a record back; the budget of an action
on a target comes from the start times of the runs that changed something,
kept in a small index next to the records as they are saved.
"""

import json
import os
import re
import time
from datetime import datetime

from ..errors import EngineError
from ..fsutil import atomic_write, locked, prune_backups
from ..safefs import read_regular
from .runner import FixAttempt

_RUN_ID = re.compile(r"^[0-9a-f]{6,32}$")
#: Runs that touched the target: they count against its budget.
APPLIED_STATES = ("done", "rolled_back", "failed")
#: Retention: run records (and file backups) are kept this many days...
KEEP_DAYS = 90
#: ... and at most this many records.
KEEP_MAX = 5000
#: Seconds between two prunes (a save checks).
PRUNE_EVERY = 3600
MAX_RECORD_BYTES = 64 * 1024 * 1024


class RunStore:
    """Run records as ``<folder>/<run_id>.json`` (mode 0600: plans show paths).

    The budget history (when each action last changed each target) is kept in
    ``<folder>/.budget.json``, updated as records are saved, so a budget check
    reads one small file, not every record. Records older than *keep_days*,
    or past the *keep_max* newest, are pruned (and, with *backups_dir*, the
    file backups older than *keep_days*): a done run older than that cannot
    be rolled back any more.

    >>> import tempfile
    >>> from engine.actions.runner import FixAttempt
    >>> store = RunStore(tempfile.mkdtemp())
    >>> _ = store.save(FixAttempt("a1b2c3d4", "fix_permissions", "/srv/x", "cli",
    ...                          state="done", started="2026-12-01T10:00:00+00:00"))
    >>> store.history("fix_permissions", "/srv/x")
    [1796119200.0]
    """

    def __init__(self, folder, keep_days=KEEP_DAYS, keep_max=KEEP_MAX, backups_dir=None):
        self.folder = folder
        self.keep_days = keep_days
        self.keep_max = keep_max
        self.backups_dir = backups_dir
        self.index_path = os.path.join(folder, ".budget.json")

    def _path(self, run_id):
        if not _RUN_ID.match(run_id or ""):
            raise EngineError(f"not a run id: {run_id!r}")
        return os.path.join(self.folder, f"{run_id}.json")

    def save(self, record):
        os.makedirs(self.folder, mode=0o700, exist_ok=True)
        data = json.dumps(record.to_dict(), indent=1, sort_keys=True, default=str)
        with locked(os.path.join(self.folder, ".lock")):
            atomic_write(self._path(record.run_id), data.encode() + b"\n", mode=0o600)
            index = self._index()
            if record.state in APPLIED_STATES and record.started:
                key = _key(record.action, record.target)
                index["runs"].setdefault(key, {})[record.run_id] = \
                    datetime.fromisoformat(record.started).timestamp()
            now = time.time()
            if now - index.get("pruned_at", 0) >= PRUNE_EVERY:
                self._prune(index, now)
            atomic_write(self.index_path, json.dumps(index, sort_keys=True).encode() + b"\n",
                         mode=0o600)
        return record

    def load(self, run_id):
        path = self._path(run_id)
        try:
            data = read_regular(path, "run record", MAX_RECORD_BYTES)
            return FixAttempt.from_dict(json.loads(data))
        except EngineError as exc:
            if not os.path.lexists(path):
                raise EngineError(f"no run {run_id} in {self.folder}") from None
            raise EngineError(f"run record {path} is unreadable: {exc}") from None
        except (ValueError, TypeError) as exc:
            raise EngineError(f"run record {path} is unreadable: {exc}") from None

    def _names(self):
        if not os.path.isdir(self.folder):
            return []
        return sorted(name for name in os.listdir(self.folder)
                      if name.endswith(".json") and _RUN_ID.match(name[:-5]))

    def records(self):
        found = []
        for name in self._names():
            try:
                found.append(self.load(name[:-5]))
            except EngineError:
                continue  # a foreign or damaged file does not hide the others
        return found

    def _index(self):
        """The budget index; built once from the records when it is missing."""
        try:
            index = json.loads(read_regular(self.index_path, "budget index", 16 << 20))
            if isinstance(index, dict) and isinstance(index.get("runs"), dict):
                return index
        except (EngineError, ValueError):
            pass
        runs = {}
        for record in self.records():
            if record.state in APPLIED_STATES and record.started:
                runs.setdefault(_key(record.action, record.target), {})[record.run_id] = \
                    datetime.fromisoformat(record.started).timestamp()
        return {"runs": runs, "pruned_at": 0}

    def history(self, action, target):
        """Start times (epoch seconds) of earlier runs that changed *target*."""
        return sorted(self._index()["runs"].get(_key(action, target), {}).values())

    def _prune(self, index, now):
        """Drop records and budget entries past the retention, and old backups."""
        horizon = now - self.keep_days * 86400
        for key in list(index["runs"]):
            kept = {rid: t for rid, t in index["runs"][key].items() if t >= horizon}
            if kept:
                index["runs"][key] = kept
            else:
                del index["runs"][key]
        names = self._names()
        for position, name in enumerate(names):
            path = os.path.join(self.folder, name)
            try:
                old = os.stat(path).st_mtime < horizon
            except FileNotFoundError:
                continue
            if old or position < len(names) - self.keep_max:
                os.unlink(path)
        if self.backups_dir:
            prune_backups(self.backups_dir, horizon)
        index["pruned_at"] = now


def _key(action, target):
    return f"{action}\t{target}"
