"""The Auto-Heal overview: one page with what an admin looks at first.

A transient record whose fields are computed when it is read: open incidents
by severity, fix runs waiting for approval, the fix success rate, the health
report, the last scans of the log sources and of the database. The menu runs
:meth:`AutoHealOverview.action_open`, which makes a fresh record and opens it.
"""

import html
from datetime import timedelta

from odoo import api, fields, models

from ..engine.health import CRITICAL, OK, WARNING

HEALTH_SELECTION = [(OK, "OK"), (WARNING, "Warning"), (CRITICAL, "Critical")]
_BADGE = {OK: "text-bg-success", WARNING: "text-bg-warning", CRITICAL: "text-bg-danger"}
#: The success rate counts the fix runs that ended within this many days.
RATE_DAYS = 30


class AutoHealOverview(models.TransientModel):
    _name = "auto_heal.overview"
    _description = "Auto-Heal Overview"

    name = fields.Char(default="Overview")
    open_critical_count = fields.Integer(string="Critical", compute="_compute_incidents")
    open_high_count = fields.Integer(string="High", compute="_compute_incidents")
    open_medium_count = fields.Integer(string="Medium", compute="_compute_incidents")
    open_low_count = fields.Integer(string="Low", compute="_compute_incidents")
    open_count = fields.Integer(string="Open Incidents", compute="_compute_incidents")
    regressed_count = fields.Integer(string="Regressed", compute="_compute_incidents")
    pending_approval_count = fields.Integer(string="Waiting Approval",
                                            compute="_compute_fix_runs")
    escalated_count = fields.Integer(
        string="Escalated", compute="_compute_fix_runs",
        help="Fix runs escalated to a person, among the open and failed ones.")
    fix_done_count = fields.Integer(string="Fixes Done", compute="_compute_fix_runs")
    fix_failed_count = fields.Integer(string="Fixes Failed", compute="_compute_fix_runs",
                                      help="Failed or rolled back.")
    fix_success_rate = fields.Float(
        string="Fix Success Rate (%)", compute="_compute_fix_runs", digits=(16, 1),
        help=f"Done runs among the fix runs that ended in the last {RATE_DAYS} days.")
    pending_approval_ids = fields.Many2many(
        "auto_heal.fix.run", string="Fix Runs Waiting for Approval",
        compute="_compute_fix_runs")
    health_status = fields.Selection(HEALTH_SELECTION, compute="_compute_health")
    health_html = fields.Html(string="Health", compute="_compute_health", sanitize=False)
    last_db_scan_date = fields.Datetime(string="Last Database Scan", compute="_compute_scans")
    db_scan_ids = fields.Many2many("auto_heal.db.scan", string="Last Database Scans",
                                   compute="_compute_scans")
    log_source_ids = fields.Many2many("auto_heal.log.source", string="Log Sources",
                                      compute="_compute_scans")
    outbox_count = fields.Integer(string="Notifications Waiting", compute="_compute_scans")

    @api.model
    def action_open(self):
        overview = self.create({})
        # A new record may get empty x2many values in the cache at create; the figures
        # are computed when read, so start from a clean cache.
        overview.invalidate_recordset()
        return {
            "type": "ir.actions.act_window",
            "name": self.env._("Overview"),
            "res_model": self._name,
            "res_id": overview.id,
            "view_mode": "form",
            "target": "current",
            "context": {"form_view_initial_mode": "readonly"},
        }

    def action_refresh(self):
        return self.action_open()

    def _compute_incidents(self):
        Incident = self.env["auto_heal.incident"]
        counts = dict.fromkeys(("critical", "high", "medium", "low"), 0)
        regressed = 0
        for severity, state, count in Incident._read_group(
                [("state", "in", Incident.OPEN_STATES)], ["severity", "state"], ["__count"]):
            counts[severity] += count
            if state == "regressed":
                regressed += count
        for overview in self:
            overview.open_critical_count = counts["critical"]
            overview.open_high_count = counts["high"]
            overview.open_medium_count = counts["medium"]
            overview.open_low_count = counts["low"]
            overview.open_count = sum(counts.values())
            overview.regressed_count = regressed

    def _compute_fix_runs(self):
        Run = self.env["auto_heal.fix.run"]
        pending = Run.search([("state", "=", "pending")], order="id desc", limit=20)
        pending_count = Run.search_count([("state", "=", "pending")])
        escalated = Run.search_count([("escalated", "=", True),
                                      ("state", "in", ("pending", "approved", "running",
                                                       "failed"))])
        since = fields.Datetime.now() - timedelta(days=RATE_DAYS)
        ended = dict.fromkeys(("done", "failed", "rolled_back"), 0)
        for state, count in Run._read_group(
                [("state", "in", tuple(ended)), ("ended_date", ">=", since)],
                ["state"], ["__count"]):
            ended[state] = count
        failed = ended["failed"] + ended["rolled_back"]
        total = ended["done"] + failed
        for overview in self:
            overview.pending_approval_ids = pending
            overview.pending_approval_count = pending_count
            overview.escalated_count = escalated
            overview.fix_done_count = ended["done"]
            overview.fix_failed_count = failed
            overview.fix_success_rate = (100.0 * ended["done"] / total) if total else 0.0

    def _compute_health(self):
        report = self.env["auto_heal.health"]._report()
        rows = []
        for name, check in report["checks"].items():
            status = check.get("status", CRITICAL)
            label = {
                "database": self.env._("Database"), "crons": self.env._("Crons"),
                "modules": self.env._("Modules"), "disk": self.env._("Disk"),
                "log_scan": self.env._("Log scan"), "db_scan": self.env._("Database scan"),
                "backup": self.env._("Backups"), "incidents": self.env._("Incidents"),
            }.get(name, name)
            detail = check.get("message") or ""
            if name == "database" and "connect_ms" in check:
                detail = self.env._("connect %(connect)s ms, query %(query)s ms",
                                    connect=check["connect_ms"], query=check["query_ms"])
            elif name == "disk":
                detail = "; ".join(path["message"] for path in check.get("paths", []))
            rows.append(
                '<tr><td>%s</td><td><span class="badge rounded-pill %s">%s</span></td>'
                "<td>%s</td></tr>" % (html.escape(label), _BADGE.get(status, ""),
                                      html.escape(status), html.escape(str(detail))))
        table = ('<table class="table table-sm o_auto_heal_health"><tbody>%s</tbody></table>'
                 % "".join(rows))
        for overview in self:
            overview.health_status = report["status"]
            overview.health_html = table

    def _compute_scans(self):
        scans = self.env["auto_heal.db.scan"].search([], limit=10)
        sources = self.env["auto_heal.log.source"].search([])
        outbox = self.env["auto_heal.notification.outbox"].sudo().search_count([]) \
            if self.env.user.has_group("auto_heal.group_auto_heal_manager") else 0
        for overview in self:
            overview.db_scan_ids = scans
            overview.last_db_scan_date = scans[:1].date
            overview.log_source_ids = sources
            overview.outbox_count = outbox

    # -- buttons -------------------------------------------------------------------------

    def action_open_incidents(self):
        action = self.env["ir.actions.act_window"]._for_xml_id(
            "auto_heal.action_auto_heal_incident")
        domain = [("state", "in", self.env["auto_heal.incident"].OPEN_STATES)]
        severity = self.env.context.get("severity")
        if severity:
            domain.append(("severity", "=", severity))
        if self.env.context.get("regressed"):
            domain = [("state", "=", "regressed")]
        action["domain"] = domain
        action["context"] = {}
        return action

    def action_open_pending(self):
        return self.env["ir.actions.act_window"]._for_xml_id(
            "auto_heal.action_auto_heal_fix_run_pending")

    def action_open_escalated(self):
        action = self.env["ir.actions.act_window"]._for_xml_id(
            "auto_heal.action_auto_heal_fix_run")
        action["domain"] = [("escalated", "=", True)]
        action["context"] = {}
        return action

    def action_open_fix_runs_ended(self):
        action = self.env["ir.actions.act_window"]._for_xml_id(
            "auto_heal.action_auto_heal_fix_run")
        since = fields.Datetime.now() - timedelta(days=RATE_DAYS)
        action["domain"] = [("state", "in", ("done", "failed", "rolled_back")),
                            ("ended_date", ">=", fields.Datetime.to_string(since))]
        action["context"] = {}
        return action

    def action_open_db_scans(self):
        return self.env["ir.actions.act_window"]._for_xml_id(
            "auto_heal.action_auto_heal_db_scan")

    def action_open_outbox(self):
        return self.env["ir.actions.act_window"]._for_xml_id(
            "auto_heal.action_auto_heal_notification_outbox")

    def action_scan_database(self):
        self.env["auto_heal.db.scan"].action_scan_now()
        return self.action_open()

    def action_scan_logs(self):
        self.env["auto_heal.fix.run"]._check_manager()
        self.env["auto_heal.log.source"].search([])._scan_sources()
        return self.action_open()
