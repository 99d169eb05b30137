"""Where the watchdog keeps its run records: one JSON file per run.

``bin/auto-heal rollback RUN_ID`` reads a record back; the budget of an action
on a target is derived from the records (start times of the runs that
changed something), so there is no second ledger to keep in step.
"""

import json
import os
import re
from datetime import datetime

from ..errors import EngineError
from ..fsutil import atomic_write
from .runner import RunRecord

_RUN_ID = re.compile(r"^[0-9a-f]{6,32}$")
#: Runs that touched the target: they count against its budget.
APPLIED_STATES = ("done", "rolled_back", "failed")


class RunStore:
    """Run records as ``<folder>/<run_id>.json`` (mode 0600: plans show paths)."""

    def __init__(self, folder):
        self.folder = folder

    def _path(self, run_id):
        if not _RUN_ID.match(run_id or ""):
            raise EngineError(f"not a run id: {run_id!r}")
        return os.path.join(self.folder, f"{run_id}.json")

    def save(self, record):
        os.makedirs(self.folder, mode=0o700, exist_ok=True)
        data = json.dumps(record.to_dict(), indent=1, sort_keys=True, default=str)
        atomic_write(self._path(record.run_id), data.encode() + b"\n", mode=0o600)
        return record

    def load(self, run_id):
        path = self._path(run_id)
        try:
            with open(path, encoding="utf-8") as handle:
                return RunRecord.from_dict(json.load(handle))
        except FileNotFoundError:
            raise EngineError(f"no run {run_id} in {self.folder}") from None
        except (OSError, ValueError, TypeError) as exc:
            raise EngineError(f"run record {path} is unreadable: {exc}") from None

    def records(self):
        if not os.path.isdir(self.folder):
            return []
        found = []
        for name in sorted(os.listdir(self.folder)):
            if name.endswith(".json"):
                try:
                    found.append(self.load(name[:-5]))
                except EngineError:
                    continue  # a foreign or damaged file does not hide the others
        return found

    def history(self, action, target):
        """Start times (epoch seconds) of earlier runs that changed *target*."""
        times = []
        for record in self.records():
            if (record.action, record.target) == (action, target) and \
                    record.state in APPLIED_STATES and record.started:
                times.append(datetime.fromisoformat(record.started).timestamp())
        return sorted(times)
