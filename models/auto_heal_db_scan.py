"""Database scans: the "Auto-Heal: scan database" cron and the record of each scan.

The checks live in :mod:`engine.checks`; this model feeds them and keeps what
they found::

    ir.config_parameter auto_heal.dbcheck.<key>  --split_settings--> settings
    active patterns with a check                 --> the checks to run
    ir.attachment._filestore()                   --> filestore_path
    the previous scan's counters                 --> previous
    odoo.tools.config, the host's CPUs and RAM   --> facts (the deployment checks)
          |
          v
    engine.checks.run_checks(env.cr, ...)     each check bounded, in a savepoint
          |  results, errors, counters, stats
          v
    to_findings -> aggregate -> auto_heal.incident._record_engine_incidents(source="database")
          |                      (fix runs planned as for log findings)
          v
    auto_heal.db.scan + one auto_heal.db.scan.check line per check

A bad setting stops only the checks that read it (and is reported); a bad
timeout or row limit falls back to its default. A failing check records its
error on its line and the others still run. The cron never raises.

An open incident of a database check whose check ran without error and no
longer reports its subject is resolved by the scan (``auto_heal.
dbcheck_auto_resolve``, on by default): a past condition must not keep the
health endpoint critical. If it comes back, it is a regression.
"""

import importlib.util
import json
import logging
import os
import socket
import time
from datetime import timedelta

import odoo
from odoo import api, fields, models
from odoo.tools import config

from ..engine.checks import (
    CHECKS,
    COMMON_SETTINGS,
    DEFAULTS,
    blocked_checks,
    run_checks,
    split_settings,
    status_of,
    to_findings,
)
from ..engine.checks.deployment_facts import OPTION_KEYS, host_resources
from ..engine.incidents import aggregate
from ..engine.secrets import mask_secrets

_logger = logging.getLogger(__name__)

PARAM_PREFIX = "auto_heal.dbcheck."
STATUS_SELECTION = [
    ("ok", "OK"),
    ("warning", "Warning"),
    ("critical", "Critical"),
]
#: Results kept per check line (the incidents hold the rest).
MAX_RESULTS_PER_CHECK = 50
DEFAULT_KEEP_DAYS = 30


def _json(value, limit=20000):
    text = json.dumps(value, sort_keys=True, default=str, ensure_ascii=False)
    return text if len(text) <= limit else text[:limit] + "..."


class AutoHealDbScan(models.Model):
    _name = "auto_heal.db.scan"
    _description = "Auto-Heal Database Scan"
    _order = "date desc, id desc"

    name = fields.Char(compute="_compute_name")
    date = fields.Datetime(required=True, readonly=True, default=fields.Datetime.now,
                           index=True)
    trigger = fields.Selection([("cron", "Scheduled"), ("manual", "Manual")],
                               required=True, default="cron", readonly=True)
    state = fields.Selection(
        STATUS_SELECTION + [("error", "Failed")], required=True, default="ok", readonly=True,
        help="The worst status of the checks; Failed when the scan could not run at all.")
    duration = fields.Float(
        string="Checks (s)", readonly=True, digits=(16, 3),
        help="Seconds the checks took (engine.checks.run_checks).")
    total_duration = fields.Float(
        string="Total (s)", readonly=True, digits=(16, 3),
        help="Seconds the whole scan took: settings, checks, incidents and this record.")
    statements = fields.Integer(
        readonly=True, help="SQL statements the checks sent, savepoints and timeouts included.")
    queries = fields.Integer(
        string="All Queries", readonly=True,
        help="SQL statements of the whole scan, incidents and this record included.")
    check_count = fields.Integer(string="Checks", readonly=True)
    problem_count = fields.Integer(string="Problems", readonly=True,
                                   help="Results that are not ok.")
    error_count = fields.Integer(string="Errors", readonly=True)
    errors = fields.Text(string="Error Lines", readonly=True)
    counters = fields.Text(
        readonly=True, help="What the next scan compares with (JSON): the deadlock counter, "
                            "the database size, when running crons were first seen locked.")
    finding_count = fields.Integer(string="Findings", readonly=True)
    incident_created_count = fields.Integer(string="New Incidents", readonly=True)
    incident_updated_count = fields.Integer(string="Updated Incidents", readonly=True)
    incident_resolved_count = fields.Integer(
        string="Resolved Incidents", readonly=True,
        help="Open incidents of database checks that this scan found ok again.")
    check_ids = fields.One2many("auto_heal.db.scan.check", "scan_id", string="Check Lines",
                                readonly=True)

    @api.depends("date", "state")
    def _compute_name(self):
        for scan in self:
            scan.name = self.env._("Database scan %(date)s",
                                   date=fields.Datetime.to_string(scan.date) or "")

    # -- buttons -------------------------------------------------------------------------

    def action_scan_now(self):
        """Run a scan now (managers) and open it."""
        self.env["auto_heal.fix.run"]._check_manager()
        scan = self._scan_database(trigger="manual")
        return {
            "type": "ir.actions.act_window",
            "res_model": self._name,
            "res_id": scan.id,
            "view_mode": "form",
            "target": "current",
        }

    def action_view_incidents(self):
        self.ensure_one()
        action = self.env["ir.actions.act_window"]._for_xml_id(
            "auto_heal.action_auto_heal_incident")
        action["domain"] = [("source", "=", "database")]
        action["context"] = {"search_default_open": 1}
        return action

    # -- inputs --------------------------------------------------------------------------

    @api.model
    def _check_settings(self):
        """``(settings, bad)``: the ``auto_heal.dbcheck.*`` parameters, checked one by one.

        *bad* maps a key to its error line. A bad common setting (timeouts,
        row limit) is left out so its default applies.
        """
        # sudo: ir.config_parameter is readable by Settings admins only, and the cron
        # or a manager's "Scan now" needs the thresholds; they are no secret.
        rows = self.env["ir.config_parameter"].sudo().search_read(
            [("key", "=like", PARAM_PREFIX + "%")], ["key", "value"])
        raw = {row["key"][len(PARAM_PREFIX):]: row["value"] for row in rows
               if row["key"].startswith(PARAM_PREFIX)}
        raw.pop("filestore_path", None)  # always Odoo's own filestore
        settings, bad = split_settings(raw)
        return settings, bad

    @api.model
    def _filestore_path(self):
        path = self.env["ir.attachment"]._filestore()
        if not os.path.isdir(path):
            # Odoo creates it at the first file it stores; so does the check's probe,
            # which would otherwise report a fresh database's filestore as unwritable.
            try:
                os.makedirs(path, exist_ok=True)
            except OSError as exc:
                _logger.warning("auto_heal: filestore %s cannot be created: %s", path, exc)
        return path

    @api.model
    def _check_patterns(self):
        """The active patterns that name a check: (engine patterns, check names)."""
        records = self.env["auto_heal.pattern"].search(
            [("active", "=", True), ("check", "!=", False)])
        patterns, errors = records._engine_patterns()
        for record, error in errors.items():
            _logger.warning("auto_heal: check pattern %s skipped: %s", record.type, error)
        names = list(dict.fromkeys(p.check for p in patterns if p.check))
        return patterns, names

    @api.model
    def _deployment_facts(self):
        """What the deployment checks read outside the database: this server's options.

        ``odoo.tools.config`` is the running server's configuration (odoo.conf and
        its command line). ``admin_passwd`` is in it only for the master password
        check, which reports weakness, never the value; facts are not stored.
        """
        cpus, memory = host_resources()
        # Under Odoo's test runner outside an HttpCase, the loading thread holds the
        # registry lock: this server cannot answer a request, a probe would time out.
        testing = odoo.modules.module.current_test and self.env.registry.test_cr is None
        return {
            "no_http_probes": bool(testing),
            "source": "odoo",
            "options": {key: config.get(key) for key in OPTION_KEYS},
            "cpu_count": cpus,
            "memory_bytes": memory,
            "gevent": importlib.util.find_spec("gevent") is not None,
            "environment": self.env["res.config.settings"]._auto_heal_settings()["environment"],
            "databases": [self.env.cr.dbname],
        }

    @api.model
    def _previous_counters(self):
        last = self.search([("counters", "!=", False)], limit=1)
        try:
            counters = json.loads(last.counters or "{}")
        except ValueError:
            counters = {}
        return counters if isinstance(counters, dict) else {}

    # -- the scan ------------------------------------------------------------------------

    @api.model
    def _cron_scan_database(self):
        """The "scan database" cron; never raises (a raising cron gets switched off)."""
        try:
            with self.env.cr.savepoint():
                return self._scan_database(trigger="cron")
        except Exception as exc:  # noqa: BLE001 - recorded, the cron goes on
            _logger.exception("auto_heal: the database scan failed")
            try:
                with self.env.cr.savepoint():
                    return self.create({
                        "trigger": "cron", "state": "error", "error_count": 1,
                        "errors": mask_secrets(f"(scan): {type(exc).__name__}: {exc}"),
                    })
            except Exception:  # noqa: BLE001 - not even the record: the log has it
                _logger.exception("auto_heal: the failed database scan could not be recorded")
                return self.browse()

    @api.model
    def _scan_database(self, trigger="cron"):
        """Run the checks of the active check patterns on this database; the scan record."""
        started = time.monotonic()
        cr = self.env.cr
        queries_before = cr.sql_log_count
        now = fields.Datetime.now()
        settings, bad = self._check_settings()
        patterns, names = self._check_patterns()
        blocked = blocked_checks(bad, names)
        settings["filestore_path"] = self._filestore_path()
        errors = ["(settings): %s; the default %s is used" % (bad[key], DEFAULTS[key])
                  for key in COMMON_SETTINGS if key in bad]
        to_run = [name for name in names if name not in blocked]
        # The checks read through the same cursor: what the ORM holds must be in it.
        self.env.flush_all()
        run = run_checks(cr, to_run, settings, self._previous_counters(),
                         facts=self._deployment_facts())
        errors += run.errors

        findings = to_findings(run.results, patterns, database=cr.dbname)
        engine_incidents = aggregate(findings)
        created = updated = resolved = self.env["auto_heal.incident"]
        try:
            with cr.savepoint():
                created, updated = self.env["auto_heal.incident"]._record_engine_incidents(
                    engine_incidents, host=socket.gethostname(), source="database")
                self.env["auto_heal.pattern"]._bump_counters(engine_incidents)
                resolved = self._resolve_recovered(run, settings, now)
        except Exception as exc:  # noqa: BLE001 - the scan record says why
            _logger.exception("auto_heal: recording the database check incidents failed")
            errors.append("(incidents): %s: %s" % (type(exc).__name__, exc))

        lines = self._check_lines(names, run, blocked)
        if run.results:
            state = status_of(run.results)
        else:
            state = "error" if (errors or names) else "ok"
        scan = self.create({
            "date": now,
            "trigger": trigger,
            "state": state,
            "duration": run.stats.get("seconds", 0.0),
            "statements": run.stats.get("statements", 0),
            "check_count": len(names),
            "problem_count": sum(1 for r in run.results if r.status != "ok"),
            "error_count": len(errors) + sum(len(v) for v in blocked.values()),
            "errors": mask_secrets("\n".join(
                errors + ["%s: %s (not run)" % (name, "; ".join(lines_))
                          for name, lines_ in blocked.items()])) or False,
            "counters": _json(run.counters),
            "finding_count": len(findings),
            "incident_created_count": len(created),
            "incident_updated_count": len(updated),
            "incident_resolved_count": len(resolved),
            "check_ids": [(0, 0, vals) for vals in lines],
        })
        self._prune()
        scan.write({
            "total_duration": round(time.monotonic() - started, 3),
            "queries": cr.sql_log_count - queries_before + 1,  # + this write
        })
        _logger.info(
            "auto_heal: database scan: %d checks, %d problem(s), %d error(s), %d new and %d "
            "updated incident(s); checks %.3f s in %d statements, scan %.3f s in %d queries",
            scan.check_count, scan.problem_count, scan.error_count, len(created), len(updated),
            scan.duration, scan.statements, scan.total_duration, scan.queries)
        return scan

    @api.model
    def _auto_resolve(self):
        # sudo: see _check_settings.
        value = self.env["ir.config_parameter"].sudo().get_param(
            "auto_heal.dbcheck_auto_resolve", "1")
        return str(value).strip().lower() not in ("0", "false", "no", "off", "")

    @api.model
    def _resolve_recovered(self, run, settings, now):
        """Resolve the open incidents of checks that ran cleanly and no longer see them.

        A check that failed, or whose problems reached ``max_rows`` (the list
        may be cut), resolves nothing.
        """
        Incident = self.env["auto_heal.incident"]
        if not self._auto_resolve():
            return Incident
        failed = {line.partition(": ")[0] for line in run.errors}
        try:
            max_rows = int(float(settings.get("max_rows") or DEFAULTS["max_rows"]))
        except (TypeError, ValueError):
            max_rows = DEFAULTS["max_rows"]
        ran, problems = set(), {}
        for result in run.results:
            ran.add(result.check)
            if result.status != "ok":
                problems.setdefault(result.check, set()).add(mask_secrets(result.subject or "-"))
        clean = {name for name in ran - failed if len(problems.get(name, ())) < max_rows}
        if not clean:
            return Incident
        resolved = Incident
        for incident in Incident.search([("source", "=", "database"),
                                         ("state", "in", Incident.OPEN_STATES)]):
            try:
                captures = json.loads(incident.captures or "{}")
            except ValueError:
                continue
            check, subject = captures.get("check"), captures.get("subject")
            if check in clean and subject and subject not in problems.get(check, ()):
                resolved |= incident
        if resolved:
            resolved.with_context(mail_notrack=True).write({"state": "resolved"})
            for incident in resolved:
                incident._message_log(body=self.env._(
                    "Resolved by the database scan of %(date)s UTC: the check %(check)s no "
                    "longer reports %(subject)s.", date=fields.Datetime.to_string(now),
                    check=json.loads(incident.captures)["check"],
                    subject=json.loads(incident.captures)["subject"]))
        return resolved

    @api.model
    def _check_lines(self, names, run, blocked):
        """One line per check: status, figures, its error."""
        by_check = {}
        for result in run.results:
            by_check.setdefault(result.check, []).append(result)
        errors = {}
        for line in run.errors:
            name, _sep, text = line.partition(": ")
            if name in CHECKS or name in names:
                errors.setdefault(name, []).append(text)
        per_check = run.stats.get("checks", {})
        lines = []
        for sequence, name in enumerate(names):
            results = by_check.get(name, [])
            problems = [r for r in results if r.status != "ok"]
            error = errors.get(name) or blocked.get(name)
            if error:
                status = "error"
            elif results and all(r.details.get("skipped") for r in results):
                status = "skipped"  # e.g. queue_job not installed, no backup folder set
            elif results:
                status = status_of(results)
            else:
                status = "skipped"
            shown = problems or results
            lines.append({
                "sequence": sequence,
                "check": name,
                "status": status,
                "problem_count": len(problems),
                "statements": per_check.get(name, {}).get("statements", 0),
                "seconds": per_check.get(name, {}).get("seconds", 0.0),
                "message": mask_secrets(shown[0].message) if shown else False,
                "error": mask_secrets("\n".join(error)) if error else False,
                "results": _json([r.to_dict() for r in shown[:MAX_RESULTS_PER_CHECK]])
                if shown else False,
            })
        return lines

    @api.model
    def _prune(self):
        """Forget scans older than ``auto_heal.db_scan_keep_days`` (30); keep the newest."""
        # sudo: see _check_settings; a number of days, no secret.
        raw = self.env["ir.config_parameter"].sudo().get_param(
            "auto_heal.db_scan_keep_days", DEFAULT_KEEP_DAYS)
        try:
            days = max(1, int(raw))
        except (TypeError, ValueError):
            days = DEFAULT_KEEP_DAYS
        newest = self.search([], limit=1)
        old = self.search([("date", "<", fields.Datetime.now() - timedelta(days=days)),
                           ("id", "!=", newest.id)])
        if old:
            old.unlink()
        self.env["auto_heal.http.origin"]._prune()

    @api.model
    def _last_scan(self, successful=False):
        domain = [("state", "!=", "error")] if successful else []
        return self.search(domain, limit=1)


class AutoHealDbScanCheck(models.Model):
    _name = "auto_heal.db.scan.check"
    _description = "Auto-Heal Database Scan: One Check"
    _order = "scan_id desc, sequence, id"
    _rec_name = "check"

    scan_id = fields.Many2one("auto_heal.db.scan", required=True, ondelete="cascade",
                              index=True, readonly=True)
    scan_date = fields.Datetime(related="scan_id.date", string="Scanned On")
    sequence = fields.Integer(default=10)
    check = fields.Char(required=True, readonly=True)
    status = fields.Selection(
        STATUS_SELECTION + [("error", "Error"), ("skipped", "Skipped")], required=True,
        readonly=True)
    problem_count = fields.Integer(string="Problems", readonly=True)
    statements = fields.Integer(readonly=True)
    seconds = fields.Float(readonly=True, digits=(16, 4))
    message = fields.Text(readonly=True, help="The first problem, or what the check found ok.")
    error = fields.Text(readonly=True)
    results = fields.Text(readonly=True, help="The check's results (JSON), problems first.")
