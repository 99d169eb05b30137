"""The watchdog's hand-over: what it found and did while Odoo was down.

``bin/auto-heal monitor`` keeps a spool of JSON entries while Odoo does not
answer (engine/spool.py) and, once Odoo answers, calls
:meth:`AutoHealHandover.watchdog_handover` over JSON-RPC as an Auto-Heal
Manager with batches of entries::

    {"id": "3f2a...", "kind": "restart" | "incident" | "fix_run" | "drift" |
                              "escalation" | "alert" | "health",
     "host": "erp1", "time": "2026-11-29T14:40:19+00:00",
     "incident": {engine Incident.to_dict()},          # optional
     "record": {engine FixAttempt.to_dict()}, ...}      # optional

A ``health`` entry carries the results of the checks the watchdog runs on the
host (``"checks": [CheckResult.to_dict()]``: the backup age, the deployment
configuration); the health report shows the newest (``_health_backup``).

Each entry id is stored once (a unique constraint, and ``INSERT ... ON
CONFLICT DO NOTHING``, so two deliveries racing each other cannot both win).
New entries become incidents (``auto_heal.incident._record_engine_incidents``)
and fix runs in their final state, linked to their incident by fingerprint. An
id already stored is ignored: a watchdog killed after Odoo committed a batch
but before it moved its acknowledged offset sends the batch again, and nothing
counts twice.
"""

import json
import logging
from datetime import datetime, timezone

from odoo import api, fields, models
from odoo.exceptions import AccessError, UserError
from odoo.tools import SQL

from ..engine.actions import FixAttempt
from ..engine.incidents import Incident as EngineIncident
from ..engine.patterns import SEVERITIES, UNKNOWN
from ..engine.secrets import mask_secrets, mask_values
from .auto_heal_fix_run import MANAGER_GROUP, OPEN_STATES, RunAudit, transition

_logger = logging.getLogger(__name__)

KINDS = [
    ("incident", "Incident"),
    ("fix_run", "Fix Run"),
    ("restart", "Restart"),
    ("drift", "Config Drift"),
    ("escalation", "Escalation"),
    ("alert", "Alert"),
    ("health", "Host Checks"),
    ("other", "Other"),
]
#: At most this many entries per call (the watchdog sends 100 by default).
MAX_BATCH = 1000
#: Fix runs the watchdog reports that are still waiting on Odoo's side are taken over.
_TAKE_OVER_STATES = ("draft", "pending", "stale", "approved")


def _when(text):
    """An ISO timestamp (aware or naive UTC) as Odoo stores it, or None."""
    if not text or not isinstance(text, str):
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo:
        moment = moment.astimezone(timezone.utc).replace(tzinfo=None)
    return moment.replace(microsecond=0)


def _text(value, limit=None):
    text = mask_secrets(str(value or "")).replace("\x00", "")
    return text[:limit] if limit else text


def engine_incident(data):
    """An :class:`engine.incidents.Incident` from its ``to_dict()`` (validated)."""
    if not isinstance(data, dict) or not data.get("fingerprint"):
        raise ValueError("an incident without a fingerprint")
    source = data.get("source") if isinstance(data.get("source"), dict) else {}
    captures = data.get("captures") if isinstance(data.get("captures"), dict) else {}
    severity = data.get("severity") if data.get("severity") in SEVERITIES else "medium"
    try:
        count = max(1, int(data.get("count") or 1))
        line = max(0, int(source.get("line") or 0))
    except (TypeError, ValueError):
        count, line = 1, 0
    return EngineIncident(
        fingerprint=_text(data["fingerprint"], 64), pattern=_text(data.get("pattern"), 64)
        or UNKNOWN, severity=severity, signature=_text(data.get("signature")),
        message=_text(data.get("message")), count=count,
        first_seen=_when(data.get("first_seen")), last_seen=_when(data.get("last_seen")),
        sample=_text(data.get("sample")), source_path=_text(source.get("path"), 1024),
        source_line=line, database=_text(data.get("database"), 128) or None,
        exception=_text(data.get("exception"), 256),
        captures={str(k): _text(v) for k, v in captures.items()})


class AutoHealHandover(models.Model):
    _name = "auto_heal.handover"
    _description = "Auto-Heal Watchdog Hand-over Entry"
    _order = "id desc"
    _rec_name = "entry_id"

    entry_id = fields.Char(string="Entry ID", required=True, readonly=True, index=True,
                           help="The id the watchdog gave the entry; stored once.")
    kind = fields.Selection(KINDS, required=True, default="other", readonly=True)
    host = fields.Char(readonly=True, help="The watchdog's host.")
    entry_date = fields.Datetime(string="Happened On", readonly=True)
    summary = fields.Char(readonly=True)
    payload = fields.Text(readonly=True, help="The entry as the watchdog sent it (masked).")
    incident_id = fields.Many2one("auto_heal.incident", ondelete="set null", readonly=True)
    fix_run_id = fields.Many2one("auto_heal.fix.run", ondelete="set null", readonly=True)

    _sql_constraints = [
        ("entry_id_uniq", "unique(entry_id)", "The watchdog hands each entry over once."),
    ]

    def _check_manager(self):
        if not self.env.user.has_group(MANAGER_GROUP):
            raise AccessError(self.env._(
                "Only Auto-Heal managers may hand watchdog findings over to Odoo."))

    @api.model
    def _claim(self, entries):
        """Insert the rows of *entries* whose id is new; ``{entry id: row id}`` of those.

        ``ON CONFLICT DO NOTHING``: a concurrent delivery of the same id waits for
        the first one's transaction and then finds the id taken.
        """
        self.env.flush_all()
        uid, now = self.env.uid, fields.Datetime.now()
        claimed = {}
        for entry in entries:
            kind = entry.get("kind") if entry.get("kind") in dict(KINDS) else "other"
            self.env.cr.execute(SQL(
                """INSERT INTO auto_heal_handover
                       (entry_id, kind, host, entry_date, payload,
                        create_uid, create_date, write_uid, write_date)
                   VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)
                   ON CONFLICT (entry_id) DO NOTHING
                   RETURNING id""",
                entry["id"], kind, _text(entry.get("host"), 128) or None,
                _when(entry.get("time")) or now,
                _text(json.dumps(mask_values(entry), sort_keys=True, default=str)), uid, now,
                uid, now))
            row = self.env.cr.fetchone()
            if row:
                claimed[entry["id"]] = row[0]
        return claimed

    @api.model
    @transition  # it records what the watchdog did as fix runs (their state, their plan)
    def watchdog_handover(self, entries):
        """Store the watchdog's *entries*; ``{"stored": [ids], "ignored": [ids], ...}``.

        ``stored``: ids new to this database, now incidents and fix runs;
        ``ignored``: ids it already had (sent again after a crash). The watchdog
        acknowledges both.
        """
        self._check_manager()
        if not isinstance(entries, list) or len(entries) > MAX_BATCH:
            raise UserError(self.env._("The hand-over takes a list of at most %(n)s entries.",
                                       n=MAX_BATCH))
        valid, seen = [], set()
        for entry in entries:
            if not isinstance(entry, dict) or not isinstance(entry.get("id"), str) or \
                    not entry["id"].strip() or len(entry["id"]) > 64:
                raise UserError(self.env._("Each hand-over entry needs a string id."))
            if entry["id"] not in seen:
                seen.add(entry["id"])
                valid.append(entry)
        claimed = self._claim(valid)
        new = [entry for entry in valid if entry["id"] in claimed]
        rows = {entry["id"]: self.browse(claimed[entry["id"]]) for entry in new}
        incidents = self._hand_over_incidents(new, rows)
        runs, refused = self._hand_over_runs(new, rows)
        for entry in new:
            summary = self._summary(entry)
            if entry["id"] in refused:
                summary = _text(f"refused: {refused[entry['id']]} | {summary}", 250)
            rows[entry["id"]].summary = summary
        if new:
            _logger.info("auto_heal: watchdog hand-over: %d new entr(y/ies), %d already "
                         "stored, %d incident(s), %d fix run(s)", len(new),
                         len(valid) - len(new), len(incidents), len(runs))
        return {"stored": [entry["id"] for entry in new],
                "ignored": [entry["id"] for entry in valid if entry["id"] not in claimed],
                "incidents": len(incidents), "fix_runs": len(runs), "refused": len(refused)}

    @api.model
    def _summary(self, entry):
        incident = entry.get("incident") if isinstance(entry.get("incident"), dict) else {}
        record = entry.get("record") if isinstance(entry.get("record"), dict) else {}
        parts = [entry.get("kind") or "entry"]
        if entry.get("service"):
            parts.append(str(entry["service"]))
        if record:
            parts.append(f"{record.get('action')} {record.get('state')}")
        checks = entry.get("checks") if isinstance(entry.get("checks"), list) else []
        if checks:
            parts.append(", ".join(f"{c.get('check')} {c.get('status')}" for c in checks[:10]
                                   if isinstance(c, dict)))
        if incident:
            parts.append(f"{incident.get('pattern')}: "
                         f"{str(incident.get('message') or '').splitlines()[0][:120]}"
                         if incident.get("message") else str(incident.get("pattern")))
        return _text(" | ".join(parts), 250)

    @api.model
    def _hand_over_incidents(self, entries, rows):
        Incident = self.env["auto_heal.incident"]
        by_host = {}
        for entry in entries:
            # a fix run entry names its incident for the link only: it is no new occurrence
            if isinstance(entry.get("incident"), dict) and entry.get("kind") != "fix_run":
                try:
                    engine = engine_incident(entry["incident"])
                except ValueError:  # an entry without a fingerprint is stored, not recorded
                    continue
                by_host.setdefault(_text(entry.get("host"), 128) or False, []).append(engine)
        records = Incident.browse()
        for host, batch in by_host.items():
            created, updated = Incident._record_engine_incidents(batch, host=host or None,
                                                                 source="watchdog")
            records |= created | updated
        found = {incident.fingerprint: incident for incident in records}
        for entry in entries:
            data = entry.get("incident")
            if isinstance(data, dict) and data.get("fingerprint") in found:
                rows[entry["id"]].incident_id = found[data["fingerprint"]]
        return records

    @api.model
    def _hand_over_runs(self, entries, rows):
        """Fix runs in their final state, for the records the watchdog ran.

        Bound to the entry's host: a record about another host's incident is
        refused (not stored as a run), and only an open run whose target host
        is this host is taken over. Returns the runs and ``{entry id: reason}``
        of the refused entries.
        """
        Run = self.env["auto_heal.fix.run"]
        Incident = self.env["auto_heal.incident"]
        runs, refused = Run.browse(), {}
        for entry in entries:
            data = entry.get("record")
            if not isinstance(data, dict) or not data.get("action") or not data.get("state"):
                continue
            record = FixAttempt.from_dict(data)
            if not isinstance(record.durations, dict):
                record.durations = {}
            if not isinstance(record.params, dict):
                record.params = {}
            if record.state in ("planned",):
                continue
            if record.state == "refused" and not record.escalate:
                # the watchdog waited (a growing delay): nothing ran
                record.state, record.error = "blocked", f"not run: {record.error}"
            host = _text(entry.get("host"), 128) or "watchdog"
            fingerprint = record.incident or (entry.get("incident") or {}).get("fingerprint")
            incident = Incident.search([("fingerprint", "=", fingerprint)], limit=1) \
                if fingerprint else Incident.browse()
            if incident.host and incident.host.lower() != host.lower():
                refused[entry["id"]] = (f"{record.action} on incident {incident.fingerprint} "
                                        f"of host {incident.host}, reported by {host}")
                _logger.warning("auto_heal: hand-over from %s (user %s): %s", host,
                                self.env.user.login, refused[entry["id"]])
                continue
            if not incident:  # the incident it names, else one that says what ran
                data = entry.get("incident") if isinstance(entry.get("incident"), dict) and \
                    entry["incident"].get("fingerprint") == fingerprint else {
                        "fingerprint": fingerprint or f"watchdog-run-{record.run_id}",
                        "pattern": "watchdog_fix", "severity": "medium",
                        "message": f"{record.action} on {record.target or '-'} (run by the "
                                   f"watchdog on {host})",
                        "first_seen": record.started, "last_seen": record.ended}
                created, updated = Incident._record_engine_incidents(
                    [engine_incident(data)], host=host, source="watchdog")
                incident = (created | updated)[:1]
            run = Run.search([("incident_id", "=", incident.id), ("action", "=", record.action),
                              ("state", "in", _TAKE_OVER_STATES)]).filtered(
                lambda r, h=host: (r.target_host or "").lower() == h.lower())[:1]
            vals = {"claimed_by": host, "runs_on": "host",
                    "started_date": _when(record.started) or fields.Datetime.now()}
            handed_over = not run
            if run:  # planned by a scan meanwhile: the watchdog has done it
                run.write(dict(vals, state=run._next_state("take_over")))
            else:
                # created closed, then given its final state: never a second open run
                run = Run.create(dict(vals, incident_id=incident.id, action=record.action,
                                      state="failed", params=json.dumps(
                                          record.params, sort_keys=True, default=str)))
            audit = RunAudit()
            audit.record(f"{record.action}.handover", record.target or run.target or "",
                         record.state, 0.0, actor=f"odoo:{self.env.user.login}", host=host,
                         run_id=record.run_id, incident=incident.fingerprint)
            run._store_record(record, audit, source="watchdog", handed_over=handed_over)
            rows[entry["id"]].write({"fix_run_id": run.id, "incident_id": incident.id})
            runs |= run
        return runs, refused

    @api.model
    def watchdog_patterns(self):
        """The patterns as the engine reads them, admins' edits included (Managers).

        The watchdog keeps them in ``<state_dir>/patterns.json`` for when Odoo
        and its database are down.
        """
        self._check_manager()
        # every pattern, by design: the watchdog needs the whole database (about a hundred)
        patterns = self.env["auto_heal.pattern"].with_context(  # pylint: disable=no-search-all
            active_test=False).search([], order="id")
        return [pattern._to_entry() for pattern in patterns]


assert not set(_TAKE_OVER_STATES) - set(OPEN_STATES)
