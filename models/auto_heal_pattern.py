"""Known error signatures, loaded from data/patterns.json and editable by admins.

The engine decides; this model keeps the patterns, their counters and the
bookkeeping that lets an upgrade refresh the defaults without overwriting an
admin's edits::

    data/patterns.json --_load_default_patterns()--> auto_heal.pattern
                                                     | upstream_hash: hash of the values
                                                     |   last loaded from the file
                                                     | upstream_values: the file's version

On each install or upgrade, for every valid entry of the file:

* no pattern of that type yet: create it;
* the pattern's values still hash to ``upstream_hash`` (nobody edited it):
  take the file's new values;
* the pattern was edited: keep it, and flag ``upstream_changed`` when the file
  now differs from what was last loaded, so an admin sees an update is
  available and can take it with a button.

Why one module of ~640 lines: the pattern and its runbook are loaded from data
files by the same upsert rules (kept when edited, flagged when upstream changed).
"""

import hashlib
import json
import logging
import os

from markupsafe import Markup
from odoo import api, fields, models
from odoo.exceptions import UserError, ValidationError

from ..engine.errors import PatternError
from ..engine.patterns import SEVERITIES, PatternFileError, read_entries, validate_entry
from ..engine.policy import consecutive_failures, should_demote

_logger = logging.getLogger(__name__)

#: The pattern database shipped with the addon.
DEFAULT_PATTERNS_FILE = os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "data", "patterns.json")
#: The runbooks: what a person does about each pattern's incidents (keyed by type).
DEFAULT_RUNBOOKS_FILE = os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "data", "runbooks.json")
RUNBOOK_FIELDS = ("runbook_symptoms", "runbook_cause", "runbook_steps")
#: The largest runbook file read (it is a few dozen KiB).
MAX_RUNBOOKS_BYTES = 2 << 20

SEVERITY_SELECTION = [
    ("low", "Low"),
    ("medium", "Medium"),
    ("high", "High"),
    ("critical", "Critical"),
]
assert tuple(code for code, _label in SEVERITY_SELECTION) == SEVERITIES

#: The fields that come from the file; their values make the upstream hash.
FILE_FIELDS = ("name", "regex", "severity", "auto_fix", "fix_script", "description",
               "levels", "generic", "fingerprint_fields", "check", "active")
#: The fields the engine validates; editing one re-runs the engine's checks.
ENGINE_FIELDS = ("type",) + FILE_FIELDS


def _join_names(names):
    return ",".join(names)


def _split_names(text):
    return [part.strip() for part in (text or "").split(",") if part.strip()]


def values_hash(values):
    """A stable hash of the FILE_FIELDS of *values* (a dict of field values)."""
    canonical = {
        "name": values.get("name") or "",
        "regex": values.get("regex") or "",
        "severity": values.get("severity") or "",
        "auto_fix": bool(values.get("auto_fix")),
        "fix_script": values.get("fix_script") or "",
        "description": values.get("description") or "",
        "levels": _join_names(_split_names(values.get("levels"))),
        "generic": bool(values.get("generic")),
        "fingerprint_fields": _join_names(_split_names(values.get("fingerprint_fields"))),
        "check": values.get("check") or "",
        "active": bool(values.get("active", True)),
    }
    text = json.dumps(canonical, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def values_from_engine(pattern):
    """Field values of an engine :class:`~engine.patterns.Pattern`."""
    return {
        "type": pattern.type,
        "name": pattern.name or pattern.type,
        "regex": pattern.regex,
        "severity": pattern.severity,
        "auto_fix": pattern.auto_fix,
        "fix_script": pattern.fix_script,
        "description": pattern.description,
        "levels": _join_names(pattern.levels),
        "generic": pattern.generic,
        "fingerprint_fields": _join_names(pattern.fingerprint_fields),
        "check": pattern.check,
        "active": pattern.active,
    }


class AutoHealPattern(models.Model):
    _name = "auto_heal.pattern"
    _description = "Auto-Heal Error Pattern"
    _inherit = ["mail.thread"]
    _order = "type"
    _rec_name = "name"

    type = fields.Char(
        required=True, index=True,
        help="Unique code of the pattern, such as db_deadlock (lower case letters, "
             "digits and underscores).")
    name = fields.Char(required=True, help="A title for people.")
    regex = fields.Text(
        help="Python regular expression searched in each log record (multi-line). "
             "Named groups capture fields such as the XML file.")
    severity = fields.Selection(SEVERITY_SELECTION, required=True, default="medium")
    auto_fix = fields.Boolean(
        string="Auto-Fix", help="A fix action exists that may run without a person writing it.")
    fix_script = fields.Char(string="Fix Action", help="Name of the fix action of this pattern.")
    description = fields.Text()
    levels = fields.Char(
        help="Comma separated log levels the records must have to match "
             "(for example ERROR,CRITICAL); empty means any level.")
    generic = fields.Boolean(
        help="A wrapper error such as 'Failed to load registry': it is kept only when "
             "no more specific pattern matches the same failure.")
    fingerprint_fields = fields.Char(
        help="Comma separated named groups of the regex whose values split incidents.")
    check = fields.Char(help="Name of a database check used instead of a regex.")
    active = fields.Boolean(default=True)

    match_count = fields.Integer(
        readonly=True, help="Log records that matched this pattern, over all scans.")
    last_match_date = fields.Datetime(readonly=True)
    incident_ids = fields.One2many("auto_heal.incident", "pattern_id")
    incident_count = fields.Integer(compute="_compute_incident_counts")
    open_incident_count = fields.Integer(compute="_compute_incident_counts")
    load_error = fields.Char(
        readonly=True, help="Why the scanner skipped this pattern at its last run.")

    upstream_hash = fields.Char(
        readonly=True, copy=False,
        help="Hash of the values last loaded from data/patterns.json.")
    upstream_values = fields.Text(
        readonly=True, copy=False,
        help="The version of this pattern in data/patterns.json at the last upgrade (JSON).")
    upstream_changed = fields.Boolean(
        string="Update Available", readonly=True, copy=False,
        help="data/patterns.json has a new version of this pattern, which was not "
             "applied because the pattern was edited here.")
    customized = fields.Boolean(
        compute="_compute_customized",
        help="The pattern differs from its version in data/patterns.json.")

    # Effectiveness of the fix action (runs of this pattern's incidents).
    fix_run_ids = fields.One2many("auto_heal.fix.run", "pattern_id", string="Fix Runs")
    fix_run_total = fields.Integer(
        string="Fix Runs Ended", compute="_compute_fix_effectiveness",
        help="Fix runs that ended: done, failed or rolled back.")
    fix_success_count = fields.Integer(string="Successes", compute="_compute_fix_effectiveness")
    fix_failure_count = fields.Integer(
        string="Failures", compute="_compute_fix_effectiveness",
        help="Failed (refused and blocked included) or rolled back runs.")
    fix_regression_count = fields.Integer(
        string="Regressions", compute="_compute_fix_effectiveness",
        help="Successful fixes whose incident came back within the regression window "
             "(Settings, default 24 h).")
    fix_mttr_minutes = fields.Float(
        string="Mean Time to Recovery (min)", compute="_compute_fix_effectiveness",
        digits=(16, 1),
        help="From the incident's opening (or reopening) to its resolution by a fix, "
             "averaged over the fixes that resolved one.")
    fix_consecutive_failures = fields.Integer(
        string="Automatic Failures in a Row", compute="_compute_fix_effectiveness")
    fix_demoted = fields.Boolean(
        string="Demoted", readonly=True, copy=False, tracking=True,
        help="The automatic fix failed too often in a row: every fix of this pattern "
             "needs approval until a manager restores automatic fixes.")
    fix_demoted_date = fields.Datetime(string="Demoted On", readonly=True, copy=False)
    fix_restored_date = fields.Datetime(
        readonly=True, copy=False,
        help="When automatic fixes were last restored: earlier failures no longer count.")

    _sql_constraints = [
        ("type_uniq", "unique(type)", "A pattern with this type code already exists."),
    ]

    def _compute_fix_effectiveness(self):
        Run = self.env["auto_heal.fix.run"]
        stats = {pid: dict.fromkeys(("done", "failed", "rolled_back", "regressed"), 0)
                 for pid in self.ids}
        recovery = dict.fromkeys(self.ids, 0.0)
        if self.ids:
            for pattern, state, count in Run._read_group(
                    [("pattern_id", "in", self.ids),
                     ("state", "in", ("done", "failed", "rolled_back"))],
                    ["pattern_id", "state"], ["__count"]):
                stats[pattern.id][state] += count
            for pattern, count in Run._read_group(
                    [("pattern_id", "in", self.ids), ("regressed", "=", True)],
                    ["pattern_id"], ["__count"]):
                stats[pattern.id]["regressed"] = count
            for pattern, average in Run._read_group(
                    [("pattern_id", "in", self.ids), ("resolved_incident", "=", True)],
                    ["pattern_id"], ["recovery_seconds:avg"]):
                recovery[pattern.id] = (average or 0.0) / 60.0
        for pattern in self:
            counts = stats.get(pattern.id) or dict.fromkeys(
                ("done", "failed", "rolled_back", "regressed"), 0)
            pattern.fix_success_count = counts["done"]
            pattern.fix_failure_count = counts["failed"] + counts["rolled_back"]
            pattern.fix_run_total = pattern.fix_success_count + pattern.fix_failure_count
            pattern.fix_regression_count = counts["regressed"]
            pattern.fix_mttr_minutes = recovery.get(pattern.id, 0.0)
            pattern.fix_consecutive_failures = (
                consecutive_failures(pattern._automatic_run_states()) if pattern.id else 0)

    def _automatic_run_states(self):
        """End states of the automatic runs that count for demotion, oldest first."""
        self.ensure_one()
        domain = [("pattern_id", "=", self.id), ("auto_approved", "=", True),
                  ("state", "in", ("done", "failed", "rolled_back"))]
        if self.fix_restored_date:
            domain.append(("ended_date", ">", self.fix_restored_date))
        runs = self.env["auto_heal.fix.run"].search(domain, order="ended_date, id")
        return runs.mapped("state")

    def _check_demotion(self):
        """Demote the automatic fix after N failures in a row, like Odoo 18 a failing cron."""
        threshold = self.env["res.config.settings"]._auto_heal_settings()["demotion_threshold"]
        for pattern in self.filtered(lambda p: not p.fix_demoted):
            states = pattern._automatic_run_states()
            if not should_demote(states, threshold):
                continue
            pattern.write({"fix_demoted": True, "fix_demoted_date": fields.Datetime.now()})
            pattern._message_log(body=self.env._(
                "Automatic fixes demoted to \"approval required\": the automatic fix "
                "%(action)s failed %(count)s times in a row (threshold %(threshold)s). Every "
                "fix of this pattern now waits for a manager's approval, until automatic "
                "fixes are restored here.",
                action=pattern.fix_script or "-", count=consecutive_failures(states),
                threshold=threshold))
            _logger.warning("auto_heal: pattern %s demoted to approval required after %s "
                            "failed automatic fixes", pattern.type, threshold)

    def action_restore_auto_fix(self):
        """Undo a demotion: automatic fixes again, earlier failures forgotten."""
        self.env["auto_heal.fix.run"]._check_manager()
        for pattern in self.filtered("fix_demoted"):
            pattern.write({"fix_demoted": False, "fix_restored_date": fields.Datetime.now()})
            pattern._message_log(body=self.env._(
                "Automatic fixes restored by %(user)s.", user=self.env.user.name))
        return True

    def action_view_fix_runs(self):
        self.ensure_one()
        action = self.env["ir.actions.act_window"]._for_xml_id(
            "auto_heal.action_auto_heal_fix_run")
        action["domain"] = [("pattern_id", "=", self.id)]
        action["context"] = {}
        return action

    @api.depends("incident_ids.state")
    def _compute_incident_counts(self):
        totals = dict.fromkeys(self.ids, 0)
        opened = dict.fromkeys(self.ids, 0)
        if self.ids:
            groups = self.env["auto_heal.incident"]._read_group(
                [("pattern_id", "in", self.ids)], ["pattern_id", "state"], ["__count"])
            for pattern, state, count in groups:
                totals[pattern.id] += count
                if state in self.env["auto_heal.incident"].OPEN_STATES:
                    opened[pattern.id] += count
        for pattern in self:
            pattern.incident_count = totals.get(pattern.id, 0)
            pattern.open_incident_count = opened.get(pattern.id, 0)

    @api.depends(*FILE_FIELDS, "upstream_values")
    def _compute_customized(self):
        for pattern in self:
            upstream = pattern._upstream_file_values()
            pattern.customized = bool(upstream) and (
                values_hash(upstream) != values_hash(pattern._file_values()))

    @api.constrains(*ENGINE_FIELDS)
    def _check_engine_entry(self):
        # The engine's checks, including engine.linear: a regex only a
        # backtracking engine could run is refused here, with its name.
        for pattern in self:
            try:
                validate_entry(pattern._to_entry())
            except PatternError as exc:
                raise ValidationError(str(exc)) from None

    def write(self, vals):
        if any(name in vals for name in ENGINE_FIELDS) and "load_error" not in vals:
            # The constraint has just validated the new values through the engine.
            vals = dict(vals, load_error=False)
        return super().write(vals)

    # -- the engine's view of a pattern -------------------------------------------------

    def _to_entry(self):
        """The dict :func:`engine.patterns.validate_entry` takes."""
        self.ensure_one()
        return {
            "type": self.type or "",
            "name": self.name or "",
            "regex": self.regex or "",
            "severity": self.severity,
            "auto_fix": bool(self.auto_fix),
            "fix_script": self.fix_script or "",
            "description": self.description or "",
            "levels": _split_names(self.levels),
            "generic": bool(self.generic),
            "fingerprint_fields": _split_names(self.fingerprint_fields),
            "check": self.check or "",
            "active": bool(self.active),
        }

    def _file_values(self):
        self.ensure_one()
        return {name: self[name] for name in FILE_FIELDS}

    def _upstream_file_values(self):
        self.ensure_one()
        if not self.upstream_values:
            return {}
        try:
            values = json.loads(self.upstream_values)
        except ValueError:
            return {}
        return {name: values[name] for name in FILE_FIELDS if name in values}

    def _engine_patterns(self):
        """Validate *self* through the engine: (patterns, {record: error}).

        Records whose stored values the engine rejects (the engine grew
        stricter, or a value was written around the ORM) are returned with
        the one-line error, so the caller can skip them and say why.
        """
        valid, errors = [], {}
        for record in self:
            try:
                valid.append(validate_entry(record._to_entry()))
            except PatternError as exc:
                errors[record] = str(exc)
        return valid, errors

    def _get_scan_patterns(self):
        """The engine patterns of every active pattern; records load errors.

        The scan database built from them is compiled once per process and
        pattern version: engine.matcher keeps it keyed by a hash of the
        regexes, so a cron run with unchanged patterns compiles nothing.
        """
        records = self.search([("active", "=", True)])
        valid, errors = records._engine_patterns()
        for record in records:
            error = errors.get(record, False)
            if record.load_error != error:
                record.write({"load_error": error})
            if error:
                _logger.warning("auto_heal: skipping %s", error)
        return [pattern for pattern in valid if not pattern.check]

    def _bump_counters(self, engine_incidents):
        """Add the counts of *engine_incidents* to their patterns, one write each."""
        totals = {}
        for incident in engine_incidents:
            count, last = totals.get(incident.pattern, (0, None))
            seen = incident.last_seen and incident.last_seen.replace(microsecond=0)
            totals[incident.pattern] = (
                count + incident.count,
                max(filter(None, (last, seen)), default=None),
            )
        if not totals:
            return
        patterns = self.with_context(active_test=False).search([("type", "in", list(totals))])
        for pattern in patterns:
            count, last = totals[pattern.type]
            vals = {"match_count": pattern.match_count + count}
            if last and (not pattern.last_match_date or last > pattern.last_match_date):
                vals["last_match_date"] = last
            pattern.write(vals)

    # -- loading data/patterns.json -----------------------------------------------------

    @api.model
    def _load_default_patterns(self, path=None):
        """Create or refresh patterns from *path* (data/patterns.json by default).

        Called on install and on every upgrade. Returns a summary dict
        (created, updated, kept, skipped) or False when the file is unusable;
        an unusable file or entry is logged, never raised, so an upgrade
        never fails because of it.
        """
        path = path or DEFAULT_PATTERNS_FILE
        try:
            entries = read_entries(path)
        except PatternFileError as exc:
            _logger.error("auto_heal: default patterns not loaded: %s", exc)
            return False
        from_file = {}
        skipped = []
        for entry in entries:
            try:
                pattern = validate_entry(entry)
            except PatternError as exc:
                _logger.warning("auto_heal: %s: entry skipped: %s", path, exc)
                skipped.append(str(exc))
                continue
            if pattern.type in from_file:
                _logger.warning("auto_heal: %s: pattern %r is defined twice; the first "
                                "one is kept", path, pattern.type)
                skipped.append(pattern.type)
                continue
            from_file[pattern.type] = values_from_engine(pattern)

        existing = {
            record.type: record
            for record in self.with_context(active_test=False).search(
                [("type", "in", list(from_file))])
        }
        to_create, summary = [], {"created": [], "updated": [], "kept": [], "skipped": skipped}
        for kind, values in from_file.items():
            file_hash = values_hash(values)
            upstream = {
                "upstream_hash": file_hash,
                "upstream_values": json.dumps(values, sort_keys=True, ensure_ascii=False),
                "upstream_changed": False,
            }
            record = existing.get(kind)
            if record is None:
                to_create.append(dict(values, **upstream))
                summary["created"].append(kind)
                continue
            current_hash = values_hash(record._file_values())
            if current_hash == file_hash:
                # Already the file's version (unedited, or edited to the same values).
                if (record.upstream_hash, record.upstream_values, record.upstream_changed) != (
                        file_hash, upstream["upstream_values"], False):
                    record.write(upstream)
            elif record.upstream_hash and current_hash == record.upstream_hash:
                # Nobody edited it since the last load: take the file's new version.
                record.write(dict(values, **upstream))
                summary["updated"].append(kind)
            else:
                # Edited here (or created by hand before the file knew the type): keep
                # the admin's version, offer the file's.
                changed = file_hash != record.upstream_hash
                record.write({
                    "upstream_values": upstream["upstream_values"],
                    "upstream_changed": changed,
                })
                summary["kept"].append(kind)
                if changed:
                    _logger.info("auto_heal: pattern %r was edited here; its new version "
                                 "from %s is offered, not applied", kind, path)
        if to_create:
            self.with_context(mail_create_nolog=True, mail_create_nosubscribe=True).create(
                to_create)
        _logger.info(
            "auto_heal: patterns from %s: %d created, %d updated, %d kept (edited), "
            "%d skipped", path, len(summary["created"]), len(summary["updated"]),
            len(summary["kept"]), len(skipped))
        return summary

    def action_use_file_version(self):
        """Replace the pattern's values by its version in data/patterns.json."""
        for pattern in self:
            values = pattern._upstream_file_values()
            if not values:
                raise UserError(self.env._(
                    "Pattern %(type)s has no version in data/patterns.json.",
                    type=pattern.type))
            pattern.write(dict(values, upstream_hash=values_hash(values),
                               upstream_changed=False))
        return True

    def action_view_incidents(self):
        self.ensure_one()
        action = self.env["ir.actions.act_window"]._for_xml_id(
            "auto_heal.action_auto_heal_incident")
        action["domain"] = [("pattern_id", "=", self.id)]
        action["context"] = {"default_pattern_id": self.id}
        return action


def read_runbooks(path):
    """``{type: {"symptoms", "cause", "steps"}}`` from a runbooks file; ValueError says why."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except OSError as exc:
        raise ValueError(f"{path}: {exc.strerror}") from None
    with os.fdopen(fd, "rb") as handle:
        import stat

        info = os.fstat(handle.fileno())
        if not stat.S_ISREG(info.st_mode) or info.st_size > MAX_RUNBOOKS_BYTES:
            raise ValueError(f"{path}: not a regular file of at most {MAX_RUNBOOKS_BYTES} bytes")
        raw = handle.read(MAX_RUNBOOKS_BYTES + 1)
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise ValueError(f"{path}: not JSON: {exc}") from None
    books = data.get("runbooks") if isinstance(data, dict) else None
    if not isinstance(books, dict):
        raise ValueError(f'{path}: needs an object "runbooks" keyed by pattern type')
    out = {}
    for kind, book in books.items():
        if not isinstance(book, dict):
            raise ValueError(f"{path}: runbook {kind!r} is not an object")
        steps = book.get("steps") or []
        if isinstance(steps, str):
            steps = [steps]
        if not all(isinstance(step, str) for step in steps) or not all(
                isinstance(book.get(key, ""), str) for key in ("symptoms", "cause")):
            raise ValueError(f"{path}: runbook {kind!r}: symptoms and cause are text, steps "
                             "a list of text")
        if not isinstance(book.get("title", ""), str):
            raise ValueError(f"{path}: runbook {kind!r}: the title is text")
        out[kind] = {"title": book.get("title", "").strip(),
                     "symptoms": book.get("symptoms", "").strip(),
                     "cause": book.get("cause", "").strip(),
                     "steps": "\n".join(step.strip() for step in steps if step.strip())}
    return out


_RUNBOOK_CACHE = {}


def _cached_runbooks():
    """The shipped runbooks, read again only when the file changed."""
    try:
        info = os.stat(DEFAULT_RUNBOOKS_FILE)
    except OSError:
        return {}
    key = (info.st_mtime_ns, info.st_size)
    if _RUNBOOK_CACHE.get("key") != key:
        try:
            books = read_runbooks(DEFAULT_RUNBOOKS_FILE)
        except ValueError as exc:
            _logger.warning("auto_heal: %s", exc)
            books = {}
        _RUNBOOK_CACHE.update(key=key, books=books)
    return _RUNBOOK_CACHE["books"]


def runbook_hash(values):
    text = json.dumps([values.get(name) or "" for name in RUNBOOK_FIELDS], ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class AutoHealPatternRunbook(models.Model):
    """The runbook half of a pattern: loaded from data/runbooks.json, shown on incidents."""

    _inherit = "auto_heal.pattern"

    runbook_symptoms = fields.Text(string="Symptoms", help="What users and admins see.")
    runbook_cause = fields.Text(string="Cause", help="Why it happens.")
    runbook_steps = fields.Text(
        string="Steps by Hand", help="What to do, one step per line, in order.")
    runbook_hash = fields.Char(
        readonly=True, copy=False,
        help="Hash of the runbook last loaded from data/runbooks.json: an edited runbook "
             "is kept on upgrade.")

    @api.model
    def _load_runbooks(self, path=None):
        """Fill the runbooks of the patterns from *path* (data/runbooks.json).

        On install and every upgrade; a runbook an admin edited is kept (its
        hash differs from the one last loaded). Returns the types loaded, or
        False when the file is unusable (logged, never raised).
        """
        path = path or DEFAULT_RUNBOOKS_FILE
        try:
            books = read_runbooks(path)
        except ValueError as exc:
            _logger.error("auto_heal: runbooks not loaded: %s", exc)
            return False
        loaded = []
        patterns = self.with_context(active_test=False).search([("type", "in", list(books))])
        for pattern in patterns:
            book = books[pattern.type]
            values = {"runbook_symptoms": book["symptoms"], "runbook_cause": book["cause"],
                      "runbook_steps": book["steps"]}
            current = {name: pattern[name] for name in RUNBOOK_FIELDS}
            edited = pattern.runbook_hash and runbook_hash(current) != pattern.runbook_hash \
                and any(current.values())
            if edited:
                continue
            new_hash = runbook_hash(values)
            if current != values or pattern.runbook_hash != new_hash:
                pattern.with_context(mail_notrack=True).write(dict(values, runbook_hash=new_hash))
            loaded.append(pattern.type)
        _logger.info("auto_heal: runbooks from %s: %d pattern(s)", path, len(loaded))
        return loaded

    @api.model
    def _runbook_for_type(self, kind):
        """The runbook of *kind* in the file (for incidents without a pattern: unknown)."""
        book = _cached_runbooks().get(kind) or {}
        return {"symptoms": book.get("symptoms", ""), "cause": book.get("cause", ""),
                "steps": book.get("steps", "")}

    @api.model
    def _runbook_title(self, kind):
        """A title for incidents of *kind* when no pattern has that type (the watchdog's)."""
        return (_cached_runbooks().get(kind) or {}).get("title", "")

    @api.model
    def _runbook_html(self, book):
        """The "What to do" box: description, symptoms, cause, the steps as a list."""
        parts = []
        if book.get("description"):
            parts.append(Markup("<p class='o_auto_heal_runbook_description'>%s</p>")
                         % book["description"])
        for key, title in (("symptoms", self.env._("Symptoms")), ("cause", self.env._("Cause"))):
            if book.get(key):
                parts.append(Markup("<p><strong>%s:</strong> %s</p>") % (title, book[key]))
        steps = [step for step in (book.get("steps") or "").split("\n") if step.strip()]
        if steps:
            parts.append(Markup("<p class='mb-1'><strong>%s</strong></p><ol class='mb-0'>%s</ol>")
                         % (self.env._("What to do by hand:"),
                            Markup("").join(Markup("<li>%s</li>") % step for step in steps)))
        return Markup("<div class='o_auto_heal_runbook'>%s</div>") % Markup("").join(parts) \
            if parts else False
