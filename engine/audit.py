"""Audit log: one JSON line per automated change (safety rule 6).

Each line says when, who or what (``actor``), what (``action``, ``target``),
the outcome (``result``) and how long it took (``duration``, seconds), plus
free details. Text is masked with :func:`engine.secrets.mask_secrets`.
Lines are appended with ``O_APPEND`` and fsynced, so concurrent writers
(the CLI, a systemd timer) never interleave inside a line.

Where the log goes, first match wins (:func:`default_audit_log`):

1. ``$AUTO_HEAL_HOME/audit.jsonl`` when ``AUTO_HEAL_HOME`` is set;
2. ``/var/log/odoo_auto_heal/audit.jsonl`` when that folder exists (or can be
   created) and is writable;
3. ``$XDG_STATE_HOME/auto_heal/audit.jsonl`` (``~/.local/state/auto_heal``).

>>> import json, os, tempfile
>>> log = AuditLog(os.path.join(tempfile.mkdtemp(), "audit.jsonl"), actor="cli:alice")
>>> entry = log.record("fix-cron", "/srv/addons/x/data/cron.xml", "applied", 0.0123,
...                    removed=["numbercall", "doall"], note="dsn postgresql://u:pw@db/x")
>>> line = json.loads(open(log.path).read())
>>> line["actor"], line["action"], line["result"], line["details"]["note"]
('cli:alice', 'fix-cron', 'applied', 'dsn postgresql://u:***@db/x')
"""

import datetime
import getpass
import json
import os
import time
from contextlib import contextmanager

from .errors import EngineError
from .secrets import mask_secrets, mask_values

SYSTEM_DIR = "/var/log/odoo_auto_heal"
FILE_NAME = "audit.jsonl"


class AuditError(EngineError):
    """The audit log cannot be written (and so the change must not happen)."""


def current_user():
    """The login name of the process owner, or ``uid<N>``."""
    try:
        return getpass.getuser()
    except Exception:  # no passwd entry, no LOGNAME (containers)
        return "uid%d" % os.getuid()


def default_actor(kind="cli"):
    return "%s:%s" % (kind, current_user())


def _writable_dir(path):
    """Whether *path* is a writable folder, or could be created as one."""
    if os.path.isdir(path):
        return os.access(path, os.W_OK | os.X_OK)
    parent = os.path.dirname(path.rstrip(os.sep))
    return os.path.isdir(parent) and os.access(parent, os.W_OK | os.X_OK)


def default_audit_log(environ=None):
    """Where the audit log goes when no ``--audit-log`` is given (see module doc)."""
    environ = os.environ if environ is None else environ
    home = environ.get("AUTO_HEAL_HOME")
    if home:
        return os.path.join(home, FILE_NAME)
    if _writable_dir(SYSTEM_DIR):
        return os.path.join(SYSTEM_DIR, FILE_NAME)
    state = environ.get("XDG_STATE_HOME") or os.path.join(
        os.path.expanduser("~"), ".local", "state"
    )
    return os.path.join(state, "auto_heal", FILE_NAME)


def audit_entry(action, target, result, duration, actor, details=None):
    """One audit entry: the same fields wherever it is kept (a file, a fix run in Odoo).

    >>> entry = audit_entry("fix-cron", "/x", "applied", 0.1234567, "odoo:admin",
    ...                     {"note": "password=hunter2", "when": datetime.date(2026, 1, 2)})
    >>> entry["duration"], entry["details"]
    (0.123457, {'note': 'password=***', 'when': '2026-01-02'})
    """
    entry = {
        "time": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="milliseconds"),
        "actor": actor,
        "action": action,
        "target": mask_secrets(str(target)),
        "result": result,
        "duration": round(float(duration), 6),
        "pid": os.getpid(),
    }
    if details:  # JSON values first, so that masking sees every string
        entry["details"] = mask_values(json.loads(json.dumps(details, default=str)))
    return entry


def entry_line(entry):
    """An entry as its one JSON line (without the newline)."""
    return json.dumps(entry, sort_keys=False, default=str, ensure_ascii=False)


class MemoryAudit:
    """An audit log kept in memory, e.g. on a fix run in Odoo; :meth:`written` sees each line.

    >>> audit = MemoryAudit()
    >>> _ = audit.record("reactivate_cron.plan", "ir_cron#7", "planned", 0.0, actor="odoo:bob")
    >>> json.loads(audit.text())["actor"]
    'odoo:bob'
    """

    default_actor = "odoo"

    def __init__(self):
        self.lines = []

    def record(self, action, target, result, duration, actor=None, **details):
        entry = audit_entry(action, target, result, duration, actor or self.default_actor,
                            details)
        line = entry_line(entry)
        self.lines.append(line)
        self.written(line)
        return entry

    def written(self, line):
        """Called with each new line; nothing by default."""

    def text(self):
        return "\n".join(self.lines)


class AuditLog:
    """Append-only JSON-lines audit log."""

    def __init__(self, path, actor=None):
        self.path = os.path.abspath(path)
        self.actor = actor or default_actor()

    def check_writable(self):
        """Raise :class:`AuditError` now rather than after a change was made."""
        folder = os.path.dirname(self.path)
        try:
            os.makedirs(folder, mode=0o750, exist_ok=True)
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
            os.close(fd)
        except OSError as exc:
            raise AuditError(
                "audit log %s is not writable: %s" % (self.path, exc.strerror or exc)
            ) from None

    def record(self, action, target, result, duration, actor=None, **details):
        """Append one entry and return it (as a dict)."""
        entry = audit_entry(action, target, result, duration, actor or self.actor, details)
        line = (entry_line(entry) + "\n").encode("utf-8")
        self.check_writable()
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
        try:
            os.write(fd, line)
            os.fsync(fd)
        except OSError as exc:
            raise AuditError("audit log %s: %s" % (self.path, exc.strerror or exc)) from None
        finally:
            os.close(fd)
        return entry

    @contextmanager
    def action(self, action, target, **details):
        """Time a block and record it: ``result`` is set by the block.

        >>> import os, tempfile, json
        >>> log = AuditLog(os.path.join(tempfile.mkdtemp(), "a.jsonl"), actor="test")
        >>> with log.action("backup", "/etc/odoo/odoo.conf") as entry:
        ...     entry["result"] = "created"
        >>> json.loads(open(log.path).read())["result"]
        'created'

        An exception records ``result="failed"`` with its message, then propagates.
        """
        entry = {"result": "ok", "details": dict(details)}
        start = time.monotonic()
        try:
            yield entry
        except BaseException as exc:
            entry["result"] = "failed"
            entry["details"]["error"] = " ".join(str(exc).split()) or exc.__class__.__name__
            self.record(
                action, target, entry["result"], time.monotonic() - start, **entry["details"]
            )
            raise
        self.record(action, target, entry["result"], time.monotonic() - start, **entry["details"])
