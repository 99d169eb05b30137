"""The Auto-Heal overview: the dashboard an admin opens first (/odoo/auto-heal).

An OWL client action (static/src/dashboard/) asks :meth:`AutoHealOverview.get_dashboard_data`
for everything at once::

    kpis        open incidents by severity, fix runs waiting, the fix success rate
    attention   open critical and high incidents and the fix runs that wait for a
                person, each with a Review button
    chart       new incidents per day by severity (the last CHART_DAYS days)
    health      the rows of /auto_heal/health
    scans       the log sources and the last database scan

Each figure is shown once; each opens the list behind it.
"""

from datetime import timedelta

from odoo import api, fields, models
from odoo.exceptions import AccessError

from ..engine.health import CRITICAL, OK, WARNING
from ..engine.patterns import SEVERITIES

HEALTH_SELECTION = [(OK, "OK"), (WARNING, "Warning"), (CRITICAL, "Critical")]
#: The success rate counts the fix runs that ended within this many days.
RATE_DAYS = 30
#: Days of the "incidents per day" chart.
CHART_DAYS = 14
#: Rows of the "Needs attention" list at most.
ATTENTION_LIMIT = 30
USER_GROUP = "auto_heal.group_auto_heal_user"
MANAGER_GROUP = "auto_heal.group_auto_heal_manager"
#: Runs a person must act on: approve or reject, plan again, or press Run Now.
QUEUED_STATES = ("draft", "pending", "stale", "approved")


class AutoHealOverview(models.AbstractModel):
    _name = "auto_heal.overview"
    _description = "Auto-Heal Overview"

    def _check_reader(self):
        if not self.env.user.has_group(USER_GROUP):
            raise AccessError(self.env._("The Auto-Heal overview is for Auto-Heal users."))

    @api.model
    def get_dashboard_data(self):
        """Everything the dashboard shows, in one call (see the module docstring)."""
        self._check_reader()
        manager = self.env.user.has_group(MANAGER_GROUP)
        Run = self.env["auto_heal.fix.run"]
        if manager:
            Run._recheck_waiting()  # what is listed as waiting is today's plan
        return {
            "is_manager": manager,
            "kpis": self._kpis(),
            "attention": self._attention(),
            "chart": self._chart(),
            "health": self._health(),
            "scans": self._scans(manager),
            "severities": list(reversed(SEVERITIES)),
        }

    @api.model
    def _kpis(self):
        Incident = self.env["auto_heal.incident"]
        Run = self.env["auto_heal.fix.run"]
        counts = dict.fromkeys(SEVERITIES, 0)
        regressed = 0
        for severity, state, count in Incident._read_group(
                [("state", "in", Incident.OPEN_STATES)], ["severity", "state"], ["__count"]):
            counts[severity] += count
            if state == "regressed":
                regressed += count
        since = fields.Datetime.now() - timedelta(days=RATE_DAYS)
        ended = dict.fromkeys(("done", "failed", "rolled_back"), 0)
        for state, count in Run._read_group(
                [("state", "in", tuple(ended)), ("ended_date", ">=", since)],
                ["state"], ["__count"]):
            ended[state] = count
        total = sum(ended.values())
        return {
            "open": dict(counts, total=sum(counts.values()), regressed=regressed),
            "waiting_approval": Run.search_count([("state", "in", ("pending", "stale"))]),
            "escalated": Run.search_count([("escalated", "=", True),
                                           ("state", "in", ("pending", "approved", "running",
                                                            "failed"))]),
            "fixes_done": ended["done"],
            "fixes_failed": ended["failed"] + ended["rolled_back"],
            "fix_rate": round(100.0 * ended["done"] / total) if total else None,
            "fix_rate_text": f"{round(100.0 * ended['done'] / total)} %" if total else "\u2014",
            "rate_days": RATE_DAYS,
        }

    @api.model
    def _attention(self):
        """Open critical and high incidents, and the fix runs waiting for a person."""
        Incident = self.env["auto_heal.incident"]
        Run = self.env["auto_heal.fix.run"]
        states = dict(Incident._fields["state"]._description_selection(self.env))
        severities = dict(Incident._fields["severity"]._description_selection(self.env))
        run_states = dict(Run._fields["state"]._description_selection(self.env))
        rows = []
        runs = Run.search([("state", "in", QUEUED_STATES)], order="id desc",
                          limit=ATTENTION_LIMIT)
        for run in runs.sorted(lambda r: (-r.incident_id.severity_rank, -r.id)):
            if run.state == "approved" and run.runs_on != "odoo":
                continue  # the watchdog's turn, not a person's
            rows.append({
                "kind": "run", "id": run.id, "name": run.name,
                "severity": run.severity or "medium",
                "severity_label": severities.get(run.severity, ""),
                "state": run.state, "state_label": run_states.get(run.state, run.state),
                "detail": (run.target_label or run.target or "")
                + (" \u2014 " + self.env._("a precondition fails")
                   if run.precondition_failed else ""),
                "blocked": run.precondition_failed,
                "when": fields.Datetime.to_string(run.planned_date or run.create_date),
            })
        incidents = Incident.search([("state", "in", Incident.OPEN_STATES),
                                     ("severity", "in", ("critical", "high"))],
                                    limit=ATTENTION_LIMIT)
        for incident in incidents:
            rows.append({
                "kind": "incident", "id": incident.id, "name": incident.name,
                "severity": incident.severity,
                "severity_label": severities.get(incident.severity, ""),
                "state": incident.state, "state_label": states.get(incident.state, ""),
                "detail": self.env._("%(count)s occurrence(s), fix waiting",
                                     count=incident.count) if incident.fix_waiting
                else self.env._("%(count)s occurrence(s)", count=incident.count),
                "blocked": False,
                "when": fields.Datetime.to_string(incident.last_seen),
            })
        return rows

    @api.model
    def _chart(self):
        """New incidents per day by severity, the last CHART_DAYS days (UTC days)."""
        today = fields.Date.context_today(self)
        first = today - timedelta(days=CHART_DAYS - 1)
        days = [first + timedelta(days=n) for n in range(CHART_DAYS)]
        series = {severity: [0] * CHART_DAYS for severity in SEVERITIES}
        Incident = self.env["auto_heal.incident"]
        for day, severity, count in Incident._read_group(
                [("first_seen", ">=", fields.Datetime.to_datetime(first))],
                ["first_seen:day", "severity"], ["__count"]):
            index = (day.date() if hasattr(day, "date") else day) - first
            if 0 <= index.days < CHART_DAYS and severity in series:
                series[severity][index.days] += count
        return {"labels": [fields.Date.to_string(day) for day in days], "series": series}

    @api.model
    def _health(self):
        report = self.env["auto_heal.health"]._report()
        labels = {
            "database": self.env._("Database"), "crons": self.env._("Scheduled actions"),
            "modules": self.env._("Modules"), "disk": self.env._("Disk"),
            "log_scan": self.env._("Log scan"), "db_scan": self.env._("Database scan"),
            "backup": self.env._("Backups"), "incidents": self.env._("Incidents"),
        }
        status_labels = dict(HEALTH_SELECTION)
        rows = []
        for name, check in report["checks"].items():
            status = check.get("status", CRITICAL)
            detail = check.get("message") or ""
            if name == "database" and "connect_ms" in check:
                detail = self.env._("connect %(connect)s ms, query %(query)s ms",
                                    connect=check["connect_ms"], query=check["query_ms"])
            elif name == "disk":
                detail = "; ".join(path["message"] for path in check.get("paths", []))
            rows.append({"name": name, "label": labels.get(name, name), "status": status,
                         "status_label": status_labels.get(status, status),
                         "detail": str(detail)})
        return {"status": report["status"],
                "status_label": status_labels.get(report["status"], report["status"]),
                "rows": rows}

    @api.model
    def _scans(self, manager):
        # a handful of log sources per database, each shown on the dashboard
        sources = self.env["auto_heal.log.source"].search([])  # pylint: disable=no-search-all
        states = dict(sources._fields["last_scan_state"]._description_selection(self.env))
        scan = self.env["auto_heal.db.scan"].search([], limit=1)
        # sudo: the outbox is for managers only; this only counts it for them
        outbox = self.env["auto_heal.notification.outbox"].sudo().search_count([]) \
            if manager else 0
        return {
            "log_sources": [{
                "id": source.id, "name": source.name, "path": source.path,
                "state": source.last_scan_state,
                "state_label": states.get(source.last_scan_state, ""),
                "date": fields.Datetime.to_string(source.last_scan_date)
                if source.last_scan_date else "",
                "message": source.last_scan_message or "",
            } for source in sources],
            "db_scan": {"id": scan.id, "date": fields.Datetime.to_string(scan.date),
                        "state": scan.state} if scan else False,
            "outbox": outbox,
        }

    # -- buttons of the dashboard ----------------------------------------------------------

    @api.model
    def action_open_incidents(self, severity=None, regressed=False):
        self._check_reader()
        action = self.env["ir.actions.act_window"]._for_xml_id(
            "auto_heal.action_auto_heal_incident")
        domain = [("state", "in", self.env["auto_heal.incident"].OPEN_STATES)]
        if severity:
            domain.append(("severity", "=", severity))
        if regressed:
            domain = [("state", "=", "regressed")]
        action.update(domain=domain, context={})
        return action

    @api.model
    def action_open_review(self, kind, record_id):
        """The Review button of a "Needs attention" row."""
        self._check_reader()
        if kind == "run":
            return self.env["auto_heal.fix.run"].browse(int(record_id)).action_review()
        return {"type": "ir.actions.act_window", "res_model": "auto_heal.incident",
                "res_id": int(record_id), "views": [(False, "form")], "target": "current"}

    @api.model
    def action_open_pending(self):
        return self.env["auto_heal.fix.run"].action_open_waiting()

    @api.model
    def action_open_fix_runs_ended(self):
        self._check_reader()
        action = self.env["ir.actions.act_window"]._for_xml_id(
            "auto_heal.action_auto_heal_fix_run")
        since = fields.Datetime.now() - timedelta(days=RATE_DAYS)
        action.update(domain=[("state", "in", ("done", "failed", "rolled_back")),
                              ("ended_date", ">=", fields.Datetime.to_string(since))],
                      context={})
        return action

    @api.model
    def action_scan_database(self):
        self.env["auto_heal.db.scan"].action_scan_now()
        return True

    @api.model
    def action_scan_logs(self):
        self.env["auto_heal.fix.run"]._check_manager()
        # the button scans every log source, as the cron does
        self.env["auto_heal.log.source"].search([])._scan_sources()  # pylint: disable=no-search-all
        return True
