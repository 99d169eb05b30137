"""The watchdog's state file: log cursors, and what ``monitor`` must not forget.

JSON, written with :func:`engine.fsutil.atomic_write` (mode 0600), so a
crash, a SIGKILL or a Ctrl-C never leaves a half-written state::

    {"version": 1,
     "cursors": {"/var/log/odoo/odoo.log": {"path": ..., "inode": ..., "offset": ...}},
     "watchdog": {"probes": {...}, "restart": {"odoo": {...}, "postgresql": {...}},
                  "drift": {...}, "counters": {...}, ...}}

``detect --state`` uses the cursors only; ``monitor`` keeps everything in the
one file (cursors, restart budgets and escalation, probe counters, config
baselines), so a watchdog started again goes on where the last one stopped.
:class:`StateLock` (``fcntl.flock`` on ``<state>.lock``) keeps a second
watchdog from acting on the same target.

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

import fcntl
import json
import os
import stat
import time

from engine import fsutil, safefs
from engine.errors import EngineError
from engine.reader import Cursor
from engine.secrets import mask_values

VERSION = 1
#: The largest state file read (cursors and the monitor's counters are small).
MAX_BYTES = 64 * 1024 * 1024


class StateError(EngineError):
    """A state file that exists but cannot be used."""


def _key(log_path):
    return os.path.abspath(log_path)


class State:
    """Cursors per log path, loaded from and saved to one JSON file."""

    def __init__(self, path, cursors=None, watchdog=None):
        self.path = path
        self.cursors = dict(cursors or {})
        #: The monitor's own section (JSON-able), see host/monitor.py.
        self.watchdog = dict(watchdog or {})

    @classmethod
    def load(cls, path):
        """Read *path*; a missing file is an empty state.

        A symlink, a FIFO, a folder or a file over :data:`MAX_BYTES` is refused
        (one line); a state written by a newer auto_heal is refused rather than
        rewritten in an older format.
        """
        if not os.path.lexists(path):
            return cls(path)
        try:
            raw = safefs.read_regular(path, "state file", MAX_BYTES)
        except EngineError as exc:
            raise StateError(str(exc)) from None
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
        version = data.get("version", VERSION)
        if not isinstance(version, int) or version > VERSION:
            raise StateError("state file %s has version %r, written by a newer auto_heal (this "
                             "one knows version %d): refused, not rewritten" % (
                                 path, version, VERSION))
        cursors = {}
        for key, value in data.get("cursors", {}).items():
            if not isinstance(value, dict):
                raise StateError("state file %s: cursor of %s is not an object" % (path, key))
            try:
                cursors[key] = Cursor.from_dict(value)
            except EngineError as exc:
                raise StateError("state file %s: %s" % (path, exc)) from None
        watchdog = data.get("watchdog", {})
        if not isinstance(watchdog, dict):
            raise StateError("state file %s: watchdog must be an object" % path)
        return cls(path, cursors, watchdog)

    def cursor(self, log_path):
        return self.cursors.get(_key(log_path))

    def set_cursor(self, log_path, cursor):
        if cursor is not None:
            self.cursors[_key(log_path)] = cursor

    def to_dict(self):
        data = {
            "version": VERSION,
            "cursors": {k: c.to_dict() for k, c in sorted(self.cursors.items())},
        }
        if self.watchdog:
            data["watchdog"] = self.watchdog
        return data

    def save(self):
        data = (json.dumps(mask_values(self.to_dict()), indent=2) + "\n").encode()
        folder = os.path.dirname(os.path.abspath(self.path))
        try:
            os.makedirs(folder, exist_ok=True)
            fsutil.atomic_write(self.path, data, mode=None if os.path.exists(self.path) else 0o600)
        except OSError as exc:
            raise StateError(
                "cannot write state file %s: %s" % (self.path, exc.strerror or exc)
            ) from None


class LockedError(EngineError):
    """Another watchdog holds the lock of this state file."""


class StateLock:
    """An exclusive ``fcntl.flock`` on ``<state>.lock``, held while a watchdog runs.

    The lock file holds the pid of its holder, to name it in the error. The
    kernel drops the lock when the holder dies, even by SIGKILL: no stale lock.

    >>> import tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "state.json")
    >>> first = StateLock(path).acquire()
    >>> try:
    ...     StateLock(path).acquire()
    ... except LockedError as exc:
    ...     print(str(exc).split(":")[0])  # doctest: +ELLIPSIS
    another watchdog (pid ...) already acts on this target
    >>> first.release(); StateLock(path).acquire().release()
    """

    def __init__(self, state_path):
        self.path = state_path + ".lock"
        self._fd = None

    def acquire(self, blocking=False, timeout=0.0, who="another watchdog"):
        """Take the lock; wait up to *timeout* seconds (or for ever if *blocking*).

        The lock file is opened without following a symlink and must be a
        regular file: a link planted in a shared folder never makes root
        truncate its target.
        """
        folder = os.path.dirname(os.path.abspath(self.path))
        os.makedirs(folder, exist_ok=True)
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
                         | os.O_NONBLOCK, 0o600)
        except OSError as exc:
            raise LockedError("cannot open the lock %s: %s (a symlink is refused)"
                              % (self.path, exc.strerror or exc)) from None
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise LockedError("the lock %s is not a regular file; refused" % self.path)
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
                break
            except BlockingIOError:
                if time.monotonic() < deadline:
                    time.sleep(0.05)
                    continue
                holder = ""
                try:
                    holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
                except OSError:
                    pass
                os.close(fd)
                waited = " (waited %gs)" % timeout if timeout else ""
                raise LockedError(
                    "%s (pid %s) already acts on this target: %s is locked%s"
                    % (who, holder or "?", self.path, waited)) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, b"%d\n" % os.getpid(), 0)
        self._fd = fd
        return self

    def release(self):
        if self._fd is not None:
            os.close(self._fd)  # closing drops the flock
            self._fd = None

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()
