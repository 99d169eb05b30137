"""The watchdog's ``--state`` file: one log cursor per log file.

JSON, written with :func:`engine.fsutil.atomic_write` (mode 0600), so a
crash or a Ctrl-C never leaves a half-written state::

    {"version": 1,
     "cursors": {"/var/log/odoo/odoo.log": {"path": ..., "inode": ..., "offset": ...}}}

>>> import os, tempfile
>>> from engine.reader import Cursor
>>> path = os.path.join(tempfile.mkdtemp(), "state.json")
>>> state = State.load(path)
>>> state.cursor("/var/log/odoo/odoo.log") is None
True
>>> state.set_cursor("/var/log/odoo/odoo.log", Cursor("/var/log/odoo/odoo.log", offset=42))
>>> state.save()
>>> State.load(path).cursor("/var/log/odoo/odoo.log").offset
42
"""

import json
import os

from engine import fsutil
from engine.errors import EngineError
from engine.reader import Cursor

VERSION = 1


class StateError(EngineError):
    """A state file that exists but cannot be used."""


def _key(log_path):
    return os.path.abspath(log_path)


class State:
    """Cursors per log path, loaded from and saved to one JSON file."""

    def __init__(self, path, cursors=None):
        self.path = path
        self.cursors = dict(cursors or {})

    @classmethod
    def load(cls, path):
        """Read *path*; a missing file is an empty state."""
        try:
            with open(path, "rb") as fh:
                raw = fh.read()
        except FileNotFoundError:
            return cls(path)
        except IsADirectoryError:
            raise StateError("state file %s is a folder" % path) from None
        except OSError as exc:
            raise StateError(
                "cannot read state file %s: %s" % (path, exc.strerror or exc)
            ) from None
        if not raw.strip():
            return cls(path)
        try:
            data = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as exc:
            raise StateError(
                "state file %s is not valid JSON: %s" % (path, str(exc).split("\n")[0])
            ) from None
        if not isinstance(data, dict) or not isinstance(data.get("cursors", {}), dict):
            raise StateError('state file %s must hold {"version": 1, "cursors": {...}}' % path)
        cursors = {}
        for key, value in data.get("cursors", {}).items():
            if not isinstance(value, dict):
                raise StateError("state file %s: cursor of %s is not an object" % (path, key))
            try:
                cursors[key] = Cursor.from_dict(value)
            except EngineError as exc:
                raise StateError("state file %s: %s" % (path, exc)) from None
        return cls(path, cursors)

    def cursor(self, log_path):
        return self.cursors.get(_key(log_path))

    def set_cursor(self, log_path, cursor):
        if cursor is not None:
            self.cursors[_key(log_path)] = cursor

    def to_dict(self):
        return {
            "version": VERSION,
            "cursors": {k: c.to_dict() for k, c in sorted(self.cursors.items())},
        }

    def save(self):
        data = (json.dumps(self.to_dict(), indent=2) + "\n").encode()
        folder = os.path.dirname(os.path.abspath(self.path))
        try:
            os.makedirs(folder, exist_ok=True)
            fsutil.atomic_write(self.path, data, mode=None if os.path.exists(self.path) else 0o600)
        except OSError as exc:
            raise StateError(
                "cannot write state file %s: %s" % (self.path, exc.strerror or exc)
            ) from None
