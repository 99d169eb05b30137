"""Log sources: the log files the cron scans, each with its cursor.

The cron ``Auto-Heal: scan logs`` calls :meth:`_cron_scan_logs`. For each
active source, in a savepoint of its own::

    lock the row (FOR NO KEY UPDATE SKIP LOCKED; a locked row is skipped)
      -> engine: scan the bytes after the cursor (final=False)
      -> engine: aggregate findings by fingerprint
      -> incidents: one search, one create, one write per changed incident
      -> patterns: bump counters
      -> save the cursor and the outcome

A missing or unreadable file, or any error while scanning one source, is
recorded on that source and the cron goes on with the others.
"""

import logging
import os
import socket

import psycopg2.errors
from odoo import api, fields, models
from odoo.exceptions import AccessError, ValidationError
from odoo.tools import SQL, config

from ..engine.errors import LogSourceError
from ..engine.incidents import aggregate
from ..engine.reader import Cursor
from ..engine.scanner import Scanner
from ..engine.secrets import mask_secrets

_logger = logging.getLogger(__name__)

DEFAULT_SETTLE_SECONDS = 10.0
DEFAULT_MAX_BYTES = 64 << 20
#: last_scan_bytes is a 32-bit column; one scan never needs more.
MAX_MAX_BYTES = 1 << 30

CURSOR_FIELDS = ("cursor_inode", "cursor_device", "cursor_head_len", "cursor_head_hash",
                 "cursor_offset", "cursor_line")
MANAGER_GROUP = "auto_heal.group_auto_heal_manager"
LOG_FOLDERS_PARAM = "auto_heal.log_folders"
#: Never a log folder: they hold the system's and other users' files.
SYSTEM_FOLDERS = ("/", "/etc", "/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32",
                  "/boot", "/root", "/proc", "/sys", "/dev", "/run", "/home", "/var",
                  "/var/lib", "/opt", "/srv", "/tmp", "/mnt", "/media")


def parse_log_folders(text):
    """The folders of the ``auto_heal.log_folders`` parameter (one per line, or commas).

    >>> parse_log_folders("/var/log/odoo\n /srv/logs/odoo/ , ")
    ['/var/log/odoo', '/srv/logs/odoo']
    """
    folders = []
    for part in (text or "").replace(",", "\n").splitlines():
        part = part.strip()
        if part:
            folders.append(part.rstrip("/") or "/")
    return folders


def log_folder_problem(folder):
    """Why *folder* cannot be a log folder, or None.

    >>> log_folder_problem("/var/log/odoo") is None
    True
    >>> log_folder_problem("logs"), log_folder_problem("/etc")
    ('not an absolute path', 'a system folder')
    """
    if not os.path.isabs(folder):
        return "not an absolute path"
    real = os.path.realpath(folder)
    if real in SYSTEM_FOLDERS or folder in SYSTEM_FOLDERS:
        return "a system folder"
    for name, inside in (("odoo.conf", config.rcfile), ("the data_dir", config.get("data_dir"))):
        if inside and _within(os.path.realpath(inside), real):
            return f"it holds {name} ({inside})"
    return None


def _within(path, folder):
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


class AutoHealLogSource(models.Model):
    _name = "auto_heal.log.source"
    _description = "Auto-Heal Log Source"
    _order = "name, id"

    name = fields.Char(required=True)
    path = fields.Char(required=True, help="Absolute path of the log file on the Odoo server.")
    active = fields.Boolean(default=True)

    # The cursor of engine.reader.Cursor. Inode and device are 64-bit values and
    # offsets pass 2 GiB on big logs: PostgreSQL int4 cannot hold them, so they are
    # kept as text (identities) and numeric (positions).
    cursor_inode = fields.Char(readonly=True, copy=False)
    cursor_device = fields.Char(readonly=True, copy=False)
    cursor_head_len = fields.Integer(readonly=True, copy=False)
    cursor_head_hash = fields.Char(readonly=True, copy=False)
    cursor_offset = fields.Float(digits=(20, 0), readonly=True, copy=False)
    cursor_line = fields.Float(digits=(20, 0), readonly=True, copy=False, default=1)

    last_scan_date = fields.Datetime(readonly=True, copy=False)
    last_scan_state = fields.Selection(
        [("never", "Never scanned"), ("ok", "OK"), ("missing", "Missing"), ("error", "Error")],
        required=True, default="never", readonly=True, copy=False)
    last_scan_message = fields.Text(readonly=True, copy=False)
    last_scan_bytes = fields.Integer(readonly=True, copy=False)
    last_scan_findings = fields.Integer(readonly=True, copy=False)
    incident_ids = fields.One2many("auto_heal.incident", "log_source_id")
    incident_count = fields.Integer(compute="_compute_incident_count")

    _sql_constraints = [
        ("path_uniq", "unique(path)", "This log file is already a log source."),
    ]

    @api.constrains("path")
    def _check_path(self):
        for source in self:
            if not os.path.isabs(source.path or ""):
                raise ValidationError(self.env._(
                    "The path of log source %(name)s must be absolute: %(path)s",
                    name=source.name, path=source.path))
            problem = source._path_problem()
            if problem:
                raise ValidationError(problem)

    @api.model
    def _log_folders(self):
        """The folders log sources may read: Settings > Auto-Heal > Log Folders (a Settings
        administrator's), else the folder of odoo.conf's ``logfile``; symlinks resolved."""
        # sudo: the parameter is only writable by Settings admins, and a Manager's log
        # source is checked against it; reading the folder list gives no power
        text = self.env["ir.config_parameter"].sudo().get_param(LOG_FOLDERS_PARAM) or ""
        folders = parse_log_folders(text)
        if not folders and config.get("logfile"):
            folders = [os.path.dirname(os.path.abspath(config["logfile"]))]
        return tuple(os.path.realpath(folder) for folder in folders
                     if log_folder_problem(folder) is None)

    def _path_problem(self):
        """Why this source may not be read (outside the log folders), or False."""
        self.ensure_one()
        folders = self._log_folders()
        real = os.path.realpath(self.path or "")
        logfile = config.get("logfile")
        if any(_within(real, folder) for folder in folders) or (
                logfile and real == os.path.realpath(logfile)):
            return False  # Odoo's own log file is always allowed
        shown = self.path if real == self.path else f"{self.path} (it resolves to {real})"
        if not folders:
            return self.env._(
                "Log source %(name)s: %(path)s cannot be read: no log folder is allowed. A "
                "Settings administrator sets them in Settings > Auto-Heal > Log Folders (by "
                "default the folder of odoo.conf's logfile, and this Odoo has none).",
                name=self.name, path=shown)
        return self.env._(
            "Log source %(name)s: %(path)s is outside the log folders a Settings "
            "administrator allowed (%(folders)s; Settings > Auto-Heal > Log Folders).",
            name=self.name, path=shown, folders=", ".join(folders))

    def _compute_incident_count(self):
        counts = dict.fromkeys(self.ids, 0)
        if self.ids:
            for source, count in self.env["auto_heal.incident"]._read_group(
                    [("log_source_id", "in", self.ids)], ["log_source_id"], ["__count"]):
                counts[source.id] = count
        for source in self:
            source.incident_count = counts.get(source.id, 0)

    def write(self, vals):
        if "path" in vals:
            changed = self.filtered(lambda source: source.path != vals["path"])
            if changed:
                super(AutoHealLogSource, changed).write(self._reset_cursor_vals())
        return super().write(vals)

    # -- install --------------------------------------------------------------------------

    @api.model
    def _create_default_log_source(self):
        """On install: a source for Odoo's own log file, when Odoo writes one."""
        logfile = config.get("logfile")
        if not logfile:
            return self.browse()
        path = os.path.abspath(logfile)
        if self.with_context(active_test=False).search_count([("path", "=", path)]):
            return self.browse()
        return self.create({"name": self.env._("Odoo server log"), "path": path})

    # -- cursor --------------------------------------------------------------------------

    @api.model
    def _reset_cursor_vals(self):
        return {
            "cursor_inode": False, "cursor_device": False, "cursor_head_len": 0,
            "cursor_head_hash": False, "cursor_offset": 0, "cursor_line": 1,
        }

    def _get_cursor(self):
        """The engine cursor of this source, or None before its first scan."""
        self.ensure_one()
        if not self.cursor_inode:
            return None
        try:
            data = {
                "path": self.path,
                "inode": int(self.cursor_inode),
                "device": int(self.cursor_device or 0),
                "head_len": self.cursor_head_len or 0,
                "head_hash": self.cursor_head_hash or "",
                "offset": int(self.cursor_offset or 0),
                "line": int(self.cursor_line or 1),
            }
        except ValueError:
            raise LogSourceError(f"invalid cursor for {self.path}: reset it") from None
        return Cursor.from_dict(data)

    @api.model
    def _cursor_vals(self, cursor):
        return {
            "cursor_inode": str(cursor.inode),
            "cursor_device": str(cursor.device),
            "cursor_head_len": cursor.head_len,
            "cursor_head_hash": cursor.head_hash or False,
            "cursor_offset": cursor.offset,
            "cursor_line": cursor.line,
        }

    def action_reset_cursor(self):
        """Forget the position: the next scan reads the whole file again."""
        self.write(dict(self._reset_cursor_vals(), last_scan_state="never",
                        last_scan_message=False))
        return True

    def action_scan_now(self):
        if not self.env.user.has_group(MANAGER_GROUP):
            raise AccessError(self.env._("Only Auto-Heal managers may scan log sources now."))
        self._scan_sources()
        return True

    def action_view_incidents(self):
        self.ensure_one()
        action = self.env["ir.actions.act_window"]._for_xml_id(
            "auto_heal.action_auto_heal_incident")
        action["domain"] = [("log_source_id", "=", self.id)]
        action["context"] = {}
        return action

    # -- scanning ------------------------------------------------------------------------

    @api.model
    def _cron_scan_logs(self):
        """Scan every active log source; never raises because of one source."""
        # every active source: a handful of files, each bounded by scan_max_bytes
        return self.search([])._scan_sources()  # pylint: disable=no-search-all

    @api.model
    def _scan_settings(self):
        # sudo: ir.config_parameter is readable by Settings admins only, and an
        # Auto-Heal Manager may press "Scan now"; these two tuning values are no secret.
        params = self.env["ir.config_parameter"].sudo()

        def number(key, default, kind):
            try:
                value = kind(params.get_param(key, default))
            except (TypeError, ValueError):
                _logger.warning("auto_heal: %s is not a number; using %s", key, default)
                return default
            return value if value >= 0 else default

        settle = number("auto_heal.scan_settle_seconds", DEFAULT_SETTLE_SECONDS, float)
        max_bytes = number("auto_heal.scan_max_bytes", DEFAULT_MAX_BYTES, int)
        return settle, min(max_bytes, MAX_MAX_BYTES) or DEFAULT_MAX_BYTES

    def _scan_sources(self):
        """Scan *self*, one savepoint per source. Returns {source id: outcome}.

        The outcome is the source's ``last_scan_state``, or ``skipped`` when
        another worker holds the source.
        """
        if not self:
            return {}
        settle, max_bytes = self._scan_settings()
        scanner = Scanner(self.env["auto_heal.pattern"]._get_scan_patterns())
        host = socket.gethostname()
        return {
            source.id: source._scan_one(scanner, host, settle, max_bytes) for source in self
        }

    def _try_lock(self):
        """Lock this source's row for the transaction, like ir.cron does.

        False when another transaction holds it (it is scanning this file now)
        or changed it since this transaction started.
        """
        self.ensure_one()
        try:
            with self.env.cr.savepoint(flush=False):
                self.env.cr.execute(SQL(
                    "SELECT id FROM auto_heal_log_source WHERE id = %s "
                    "FOR NO KEY UPDATE SKIP LOCKED", self.id))
                locked = bool(self.env.cr.fetchone())
        except (psycopg2.errors.SerializationFailure, psycopg2.errors.LockNotAvailable):
            locked = False
        # Read the cursor as the lock holder sees it, not from an older cache.
        self.invalidate_recordset()
        return locked

    def _scan_one(self, scanner, host, settle, max_bytes):
        self.ensure_one()
        if not self._try_lock():
            _logger.info("auto_heal: log source %s is being scanned by another worker; "
                         "skipped", self.path)
            return "skipped"
        now = fields.Datetime.now()
        refused = self._path_problem()
        if refused:  # the folders changed, or a symlink now points elsewhere
            _logger.warning("auto_heal: %s", refused)
            self._record_failure(now, "error", f"not scanned: {refused}")
            return "error"
        try:
            with self.env.cr.savepoint():
                result = scanner.scan_file(self.path, self._get_cursor(), final=False,
                                           settle_seconds=settle, max_bytes=max_bytes)
                engine_incidents = aggregate(result.findings)
                self.env["auto_heal.incident"]._record_engine_incidents(
                    engine_incidents, log_source=self, host=host)
                self.env["auto_heal.pattern"]._bump_counters(engine_incidents)
                message = "\n".join(result.warnings) or False
                self.write(dict(
                    self._cursor_vals(result.cursor),
                    last_scan_date=now, last_scan_state="ok",
                    last_scan_message=mask_secrets(message) if message else False,
                    last_scan_bytes=min(result.bytes_scanned, 2**31 - 1),
                    last_scan_findings=len(result.findings),
                ))
        except LogSourceError as exc:
            state = "missing" if not os.path.lexists(self.path) else "error"
            _logger.warning("auto_heal: log source %s: %s", self.path, exc)
            self._record_failure(now, state, str(exc))
            return state
        except Exception as exc:  # noqa: BLE001 - one bad source must not stop the cron
            _logger.exception("auto_heal: scanning log source %s failed", self.path)
            self._record_failure(now, "error", f"{type(exc).__name__}: {exc}")
            return "error"
        return "ok"

    def _record_failure(self, now, state, message):
        self.write({
            "last_scan_date": now,
            "last_scan_state": state,
            "last_scan_message": mask_secrets(message),
            "last_scan_bytes": 0,
            "last_scan_findings": 0,
        })
