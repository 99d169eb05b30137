"""The health report behind ``/auto_heal/health`` and the overview.

Each component gives a status (ok, warning, critical) and its figures; the
report's status is the worst of them. The endpoint answers 503 when it is
critical, 200 otherwise::

    database   connect + SELECT 1 on a fresh connection (ms)
    crons      active crons failing now (ir_cron.failure_count), and the cron
               checks of the last database scan (switched off, about to be, stuck)
    modules    modules stuck in 'to install/upgrade/remove' (no cron runs meanwhile)
    disk       free space of data_dir and of the filestore
    log_scan   age of the last successful scan of the log sources
    db_scan    age of the last successful database scan
    backup     age of the last verified dump and filestore copy: what the watchdog
               reported from the host (a hand-over entry of kind health), or the
               database scan's backup_stale check when Odoo watches a folder itself
    incidents  open incidents by severity: an open critical one is critical

Everything is read: the report runs on the request's read-only cursor.
"""

import json
import logging
import os
import time
from contextlib import closing
from datetime import datetime, timezone

import odoo
from odoo import api, fields, models
from odoo.tools import SQL, config

from ..engine.checks import by_thresholds, human_duration, one_line, resolve_settings
from ..engine.health import CRITICAL, OK, WARNING, check_disk, worst

_logger = logging.getLogger(__name__)

HEALTH_DEFAULTS = {
    "db_warn_ms": 1000,
    "db_crit_ms": 5000,
    "disk_warn_percent": 15.0,
    "disk_crit_percent": 5.0,
}
#: A scan is late after this many cron intervals (at least 15 minutes), and
#: critical after the second number.
LATE_INTERVALS = (3, 12)
_INTERVAL_SECONDS = {"minutes": 60, "hours": 3600, "days": 86400, "weeks": 7 * 86400,
                     "months": 30 * 86400}
#: A watchdog backup report older than this (seconds) is itself a warning.
REPORT_STALE = 6 * 3600
CRON_CHECKS = ("cron_failing", "cron_near_deactivation", "cron_switched_off", "cron_stuck",
               "cron_never_run")


def _iso(moment):
    return fields.Datetime.to_string(moment) if moment else None


class AutoHealHealth(models.AbstractModel):
    _name = "auto_heal.health"
    _description = "Auto-Heal Health Report"

    @api.model
    def _health_settings(self):
        # sudo: ir.config_parameter is readable by Settings admins only; the endpoint
        # has no user (auth="none") and the overview is for Auto-Heal users. Thresholds
        # are no secret.
        params = self.env["ir.config_parameter"].sudo()
        settings = {}
        for key, default in HEALTH_DEFAULTS.items():
            raw = params.get_param(f"auto_heal.health_{key}", default)
            try:
                settings[key] = type(default)(float(raw))
            except (TypeError, ValueError):
                settings[key] = default
        return settings

    @api.model
    def _report(self):
        """``{"status", "database", "checked_at", "checks": {name: {"status", ...}}}``."""
        settings = self._health_settings()
        components = (
            ("database", self._health_database),
            ("crons", self._health_crons),
            ("modules", self._health_modules),
            ("disk", self._health_disk),
            ("log_scan", self._health_log_scan),
            ("db_scan", self._health_db_scan),
            ("backup", self._health_backup),
            ("incidents", self._health_incidents),
        )
        checks = {}
        for name, method in components:
            started = time.monotonic()
            try:
                with self.env.cr.savepoint(flush=False):
                    checks[name] = method(settings)
            except Exception as exc:  # noqa: BLE001 - one broken probe is one critical line
                _logger.warning("auto_heal: health check %s failed: %s", name, exc)
                checks[name] = {"status": CRITICAL, "message": one_line(exc)}
            checks[name]["ms"] = round((time.monotonic() - started) * 1000.0, 1)
        return {
            "status": worst(*(check["status"] for check in checks.values())),
            "database": self.env.cr.dbname,
            "checked_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "checks": checks,
        }

    # -- components ----------------------------------------------------------------------

    @api.model
    def _health_database(self, settings):
        started = time.monotonic()
        try:
            with closing(odoo.sql_db.db_connect(self.env.cr.dbname).cursor()) as cr:
                connected = time.monotonic()
                cr.execute("SELECT 1")
                cr.fetchone()
        except Exception as exc:  # noqa: BLE001 - the database is the measure here
            return {"status": CRITICAL, "message": one_line(exc)}
        done = time.monotonic()
        total = (done - started) * 1000.0
        status = by_thresholds(total, settings["db_warn_ms"], settings["db_crit_ms"])
        return {
            "status": status,
            "connect_ms": round((connected - started) * 1000.0, 1),
            "query_ms": round((done - connected) * 1000.0, 1),
            "threshold": "warn >= %d ms, crit >= %d ms" % (settings["db_warn_ms"],
                                                            settings["db_crit_ms"]),
        }

    @api.model
    def _last_scan_lines(self):
        scan = self.env["auto_heal.db.scan"].sudo()._last_scan(successful=True)
        return scan, {line.check: line for line in scan.check_ids}

    @api.model
    def _health_crons(self, settings):
        cr = self.env.cr
        cr.execute(SQL("""
            SELECT count(*) FILTER (WHERE active) AS active,
                   count(*) FILTER (WHERE active AND failure_count > 0) AS failing,
                   count(*) FILTER (WHERE NOT active) AS inactive
              FROM ir_cron"""))
        active, failing, inactive = cr.fetchone()
        # sudo: the endpoint has no user; scan lines hold the checks' own summaries.
        scan, lines = self._last_scan_lines()
        figures = {
            "active": active,
            "failing": failing,
            "inactive": inactive,
            "switched_off": lines["cron_switched_off"].problem_count
            if "cron_switched_off" in lines else None,
            "near_deactivation": lines["cron_near_deactivation"].problem_count
            if "cron_near_deactivation" in lines else None,
            "stuck": lines["cron_stuck"].problem_count if "cron_stuck" in lines else None,
            "from_scan": _iso(scan.date),
        }
        statuses = [WARNING if failing else OK]
        statuses += [line.status for name, line in lines.items()
                     if name in CRON_CHECKS and line.status in (OK, WARNING, CRITICAL)]
        messages = [line.message for name, line in lines.items()
                    if name in CRON_CHECKS and line.status in (WARNING, CRITICAL)]
        figures["status"] = worst(*statuses)
        figures["message"] = messages[0] if messages else (
            "%d active cron(s) failing" % failing if failing else "no cron failing")
        return figures

    @api.model
    def _health_modules(self, settings):
        dbcheck, _bad = self.env["auto_heal.db.scan"]._check_settings()
        try:
            resolved = resolve_settings(dbcheck)
        except ValueError:
            resolved = resolve_settings({})
        warn = resolved["module_stuck_minutes"] * 60.0
        crit = resolved["module_stuck_crit_minutes"] * 60.0
        self.env.cr.execute(SQL("""
            SELECT name, state,
                   EXTRACT(EPOCH FROM (now() AT TIME ZONE 'UTC') - write_date)::float8
              FROM ir_module_module
             WHERE state IN ('to install', 'to upgrade', 'to remove')
             ORDER BY write_date
             LIMIT 20"""))
        rows = self.env.cr.fetchall()
        oldest = max((row[2] or 0.0 for row in rows), default=0.0)
        status = by_thresholds(oldest, warn, crit) if rows else OK
        return {
            "status": status,
            "pending": len(rows),
            "modules": [{"name": name, "state": state, "seconds": round(age or 0.0)}
                        for name, state, age in rows],
            "threshold": "warn >= %s, crit >= %s" % (human_duration(warn),
                                                     human_duration(crit)),
            "message": ("%d module(s) waiting in an install/upgrade/remove state for up to %s;"
                        " no cron runs meanwhile" % (len(rows), human_duration(oldest)))
            if rows else "no module operation pending",
        }

    @api.model
    def _health_disk(self, settings):
        paths = []
        data_dir = config.get("data_dir")
        if data_dir:
            paths.append(data_dir)
        filestore = self.env["ir.attachment"]._filestore()
        if os.path.isdir(filestore):
            paths.append(filestore)
        result = {"status": OK, "paths": []}
        for path in paths:
            check = check_disk(path, settings["disk_warn_percent"], settings["disk_crit_percent"])
            result["paths"].append({"path": path, "status": check.status,
                                    "free_percent": check.value, "message": check.message})
            result["threshold"] = check.threshold
        result["status"] = worst(*(p["status"] for p in result["paths"]))
        return result

    @api.model
    def _late_thresholds(self, xmlid, default_seconds):
        # sudo: ir.cron is readable by Settings admins only; its interval is no secret.
        cron = self.env.ref(xmlid, raise_if_not_found=False)
        cron = cron.sudo() if cron else cron
        interval = default_seconds
        if cron:
            interval = cron.interval_number * _INTERVAL_SECONDS.get(cron.interval_type, 60)
        warn = max(LATE_INTERVALS[0] * interval, 15 * 60)
        crit = max(LATE_INTERVALS[1] * interval, warn)
        return warn, crit, bool(cron and cron.active)

    @api.model
    def _age_status(self, last, warn, crit, cron_active):
        if not last:
            return None, WARNING
        age = max(0.0, (fields.Datetime.now() - last).total_seconds())
        status = by_thresholds(age, warn, crit)
        if not cron_active:
            status = worst(status, WARNING)
        return round(age), status

    @api.model
    def _health_log_scan(self, settings):
        # sudo: the endpoint has no user; only dates and states are reported.
        # all of them: the few configured log files are each reported
        log_sources = self.env["auto_heal.log.source"].sudo()
        sources = log_sources.search([])  # pylint: disable=no-search-all
        warn, crit, cron_active = self._late_thresholds("auto_heal.ir_cron_scan_logs", 300)
        if not sources:  # nothing reads Odoo's log: its failures go unseen
            return {"status": WARNING, "sources": 0, "cron_active": cron_active,
                    "message": "no active log source: no log is scanned (add one in "
                               "Auto-Heal > Configuration > Log Sources)"}
        ok_dates = [s.last_scan_date for s in sources
                    if s.last_scan_state == "ok" and s.last_scan_date]
        last = max(ok_dates) if ok_dates else False
        age, status = self._age_status(last, warn, crit, cron_active)
        failing = sources.filtered(lambda s: s.last_scan_state in ("missing", "error"))
        if failing:
            status = worst(status, WARNING)
        return {
            "status": status,
            "sources": len(sources),
            "failing_sources": len(failing),
            "last_success": _iso(last),
            "age_seconds": age,
            "cron_active": cron_active,
            "threshold": "warn >= %s, crit >= %s" % (human_duration(warn), human_duration(crit)),
            "message": ("last successful scan %s ago" % human_duration(age)) if last
            else "never scanned successfully",
        }

    @api.model
    def _health_db_scan(self, settings):
        Scan = self.env["auto_heal.db.scan"].sudo()  # sudo: as _health_log_scan
        warn, crit, cron_active = self._late_thresholds("auto_heal.ir_cron_scan_database", 900)
        last_ok = Scan._last_scan(successful=True)
        last = Scan._last_scan()
        age, status = self._age_status(last_ok.date, warn, crit, cron_active)
        if last and last.state == "error":
            status = worst(status, WARNING)
        return {
            "status": status,
            "last_success": _iso(last_ok.date),
            "age_seconds": age,
            "last_state": last.state or None,
            "last_duration_seconds": last_ok.duration if last_ok else None,
            "last_problems": last_ok.problem_count if last_ok else None,
            "last_errors": last_ok.error_count if last_ok else None,
            "cron_active": cron_active,
            "threshold": "warn >= %s, crit >= %s" % (human_duration(warn), human_duration(crit)),
            "message": ("last successful scan %s ago" % human_duration(age)) if last_ok
            else "never scanned successfully",
        }

    @api.model
    def _health_backup(self, settings):
        """The backup_stale results: the watchdog's newest report, and the scan's own."""
        results, sources = [], []
        # sudo: the endpoint has no user; hand-over entries are for Auto-Heal users.
        for entry in self.env["auto_heal.handover"].sudo().search(
                [("kind", "=", "health")], limit=20):
            try:
                payload = json.loads(entry.payload or "{}")
            except ValueError:
                continue
            found = [c for c in payload.get("checks") or [] if isinstance(c, dict)
                     and c.get("check") == "backup_stale" and c.get("status") in
                     (OK, WARNING, CRITICAL) and not (c.get("details") or {}).get("skipped")]
            if found:
                age = (fields.Datetime.now() - entry.entry_date).total_seconds() \
                    if entry.entry_date else None
                results += found
                sources.append({"source": "watchdog", "host": entry.host,
                                "reported": _iso(entry.entry_date),
                                "report_age_seconds": round(age) if age is not None else None})
                break
        _scan, lines = self._last_scan_lines()
        line = lines.get("backup_stale")
        if line and line.status in (OK, WARNING, CRITICAL) and line.results:
            try:
                scanned = json.loads(line.results)
            except ValueError:
                scanned = []
            results += [r for r in scanned if isinstance(r, dict)]
            sources.append({"source": "database scan", "reported": _iso(line.scan_date)})
        if not results:
            return {"status": OK, "message": "backups are not watched: no [backup] report "
                                             "from the watchdog, no backup folder set"}
        statuses = [r["status"] for r in results]
        stale = [s for s in sources if (s.get("report_age_seconds") or 0) > REPORT_STALE]
        status = worst(*statuses, *([WARNING] if stale else []))
        worst_result = next((r for r in results if r["status"] == status), results[0])
        message = worst_result.get("message") or ""
        if stale:
            message = "the watchdog's last backup report is %s old; %s" % (
                human_duration(stale[0]["report_age_seconds"]), message)
        return {
            "status": status,
            "message": message,
            "threshold": worst_result.get("threshold"),
            "sources": sources,
            "checks": [{"subject": r.get("subject"), "status": r.get("status"),
                        "age_seconds": r.get("value"), "message": r.get("message")}
                       for r in results],
        }

    @api.model
    def _health_incidents(self, settings):
        Incident = self.env["auto_heal.incident"].sudo()  # sudo: counts only
        counts = dict.fromkeys(("critical", "high", "medium", "low"), 0)
        for severity, count in Incident._read_group(
                [("state", "in", Incident.OPEN_STATES)], ["severity"], ["__count"]):
            counts[severity] = count
        status = CRITICAL if counts["critical"] else WARNING if counts["high"] else OK
        return {
            "status": status,
            "open_critical": counts["critical"],
            "open_high": counts["high"],
            "open_medium": counts["medium"],
            "open_low": counts["low"],
            "open": sum(counts.values()),
            "message": "%d open critical incident(s)" % counts["critical"]
            if counts["critical"] else "no open critical incident",
        }
