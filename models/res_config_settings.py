"""Settings > Auto-Heal: approval policy, budget, database checks, health, notifications.

Stored as ``ir.config_parameter`` values (``auto_heal.*``); the code uses the same
defaults when a value is missing or unusable, so a broken parameter never stops
a fix run from being planned: it falls back to the safest reading (prod).

The database checks read every ``auto_heal.dbcheck.<key>`` parameter (any key
of ``engine.checks.DEFAULTS``); the most useful ones are fields here, the
others are set as system parameters.
"""

import logging
import secrets

from odoo import api, fields, models
from odoo.exceptions import ValidationError

from ..engine.checks import DEFAULTS as CHECK_DEFAULTS
from ..engine.patterns import SEVERITIES
from ..engine.policy import DEFAULT, ENVIRONMENTS, MODES

_logger = logging.getLogger(__name__)

RULE_SELECTION = [
    (DEFAULT, "Environment default"),
    ("auto", "Auto-fix allowed"),
    ("approval", "Approval required"),
]
DEFAULTS = {
    "environment": "prod",
    "budget_max_runs": 3,
    "budget_window_minutes": 30,
    "demotion_threshold": 3,
    "regression_window_hours": 24,
}
HEALTH_TOKEN_PARAM = "auto_heal.health_token"


#: The Settings fields of whole minutes: a person types 30, not 30.00.
WHOLE_MINUTE_KEYS = ("cron_stuck_minutes", "module_stuck_minutes",
                     "idle_in_transaction_warn_minutes", "idle_in_transaction_crit_minutes",
                     "long_query_warn_minutes", "long_query_crit_minutes")


def _check_field(key, kind, string, help_text=None):
    """A Settings field for the ``auto_heal.dbcheck.<key>`` parameter of a database check."""
    field_type = {int: fields.Integer, float: fields.Float, str: fields.Char}[kind]
    default = CHECK_DEFAULTS[key]
    if kind is int and default not in (None, ""):
        default = int(default)
    return field_type(string=string, default=default if default not in (None, "") else False,
                      config_parameter=f"auto_heal.dbcheck.{key}", help=help_text)


class ResConfigSettings(models.TransientModel):
    _inherit = "res.config.settings"

    auto_heal_environment = fields.Selection(
        [("dev", "Development"), ("staging", "Staging"), ("prod", "Production")],
        string="Auto-Heal Environment", default="prod",
        config_parameter="auto_heal.environment",
        help="Defaults per environment: prod fixes only low severity incidents without "
             "approval; staging low and medium; dev every severity. A pattern with Auto-Fix "
             "off always needs approval.")
    auto_heal_policy_low = fields.Selection(
        RULE_SELECTION, string="Low Severity", default=DEFAULT,
        config_parameter="auto_heal.policy_low")
    auto_heal_policy_medium = fields.Selection(
        RULE_SELECTION, string="Medium Severity", default=DEFAULT,
        config_parameter="auto_heal.policy_medium")
    auto_heal_policy_high = fields.Selection(
        RULE_SELECTION, string="High Severity", default=DEFAULT,
        config_parameter="auto_heal.policy_high")
    auto_heal_policy_critical = fields.Selection(
        RULE_SELECTION, string="Critical Severity", default=DEFAULT,
        config_parameter="auto_heal.policy_critical")
    auto_heal_budget_max_runs = fields.Integer(
        string="Runs per Window", default=DEFAULTS["budget_max_runs"],
        config_parameter="auto_heal.budget_max_runs",
        help="A fix action may change one target at most this many times within the "
             "window; then it is refused and the incident escalated.")
    auto_heal_budget_window_minutes = fields.Integer(
        string="Budget Window (minutes)", default=DEFAULTS["budget_window_minutes"],
        config_parameter="auto_heal.budget_window_minutes")
    auto_heal_demotion_threshold = fields.Integer(
        string="Demote After Failures", default=DEFAULTS["demotion_threshold"],
        config_parameter="auto_heal.demotion_threshold",
        help="A pattern whose automatic fix fails this many times in a row needs approval "
             "for every later fix.")
    auto_heal_regression_window_hours = fields.Integer(
        string="Regression Window (hours)", default=DEFAULTS["regression_window_hours"],
        config_parameter="auto_heal.regression_window_hours",
        help="An incident that comes back within this time after a successful fix counts "
             "as a regression of that fix.")

    # -- database checks (engine.checks.DEFAULTS) -----------------------------------
    auto_heal_dbcheck_statement_timeout_ms = _check_field(
        "statement_timeout_ms", int, "Query Timeout (ms)",
        "Each query of a check is cancelled after this; the check records an error and "
        "the others still run.")
    auto_heal_dbcheck_cron_near_failures = _check_field(
        "cron_near_failures", int, "Warn at Cron Failures",
        "Odoo 18 switches a cron off after 5 failures in a row over 7 days; warn from this "
        "many failures.")
    auto_heal_dbcheck_cron_stuck_minutes = _check_field(
        "cron_stuck_minutes", int, "Cron Stuck After (min)",
        "A running cron is stuck after the longer of this and 10 times its last run.")
    auto_heal_dbcheck_module_stuck_minutes = _check_field(
        "module_stuck_minutes", int, "Module Operation Stuck After (min)")
    auto_heal_dbcheck_idle_in_transaction_warn_minutes = _check_field(
        "idle_in_transaction_warn_minutes", int, "Idle in Transaction: Warning (min)")
    auto_heal_dbcheck_idle_in_transaction_crit_minutes = _check_field(
        "idle_in_transaction_crit_minutes", int, "Idle in Transaction: Critical (min)")
    auto_heal_dbcheck_long_query_warn_minutes = _check_field(
        "long_query_warn_minutes", int, "Long Query: Warning (min)")
    auto_heal_dbcheck_long_query_crit_minutes = _check_field(
        "long_query_crit_minutes", int, "Long Query: Critical (min)")
    auto_heal_dbcheck_connections_warn_percent = _check_field(
        "connections_warn_percent", float, "Connections: Warning (%)",
        "Client connections as a share of max_connections minus the reserved slots.")
    auto_heal_dbcheck_filestore_sample_newest = _check_field(
        "filestore_sample_newest", int, "Newest Attachments Checked",
        "The missing-file check looks at this many of the newest attachments...")
    auto_heal_dbcheck_filestore_sample_random = _check_field(
        "filestore_sample_random", int, "Random Attachments Checked",
        "...plus this many picked at random (never a full scan).")
    # PostgreSQL safety (engine/checks/postgres.py)
    auto_heal_dbcheck_xid_age_warn_freeze_max_percent = _check_field(
        "xid_age_warn_freeze_max_percent", float,
        "Transaction ID Age: Warning (% of autovacuum_freeze_max_age)",
        "A database whose oldest unfrozen transaction ID is this old has an anti-wraparound "
        "vacuum that cannot finish; the finding names what holds it back.")
    auto_heal_dbcheck_sequence_warn_percent = _check_field(
        "sequence_warn_percent", float, "id Sequence Used: Warning (%)",
        "Share of an int4 id's range (2,147,483,647) already used.")
    auto_heal_dbcheck_sequence_crit_percent = _check_field(
        "sequence_crit_percent", float, "id Sequence Used: Critical (%)")
    auto_heal_dbcheck_sequence_crit_days = _check_field(
        "sequence_crit_days", float, "id Sequence: Critical Below (days left)",
        "At the growth measured between scans (over a day at least).")
    auto_heal_dbcheck_prepared_xact_warn_minutes = _check_field(
        "prepared_xact_warn_minutes", int, "Prepared Transaction: Warning (min)")
    auto_heal_dbcheck_slot_retained_warn_mib = _check_field(
        "slot_retained_warn_mib", int, "Inactive Replication Slot: Warning (MiB of WAL)")
    # the outgoing mail queue (engine/checks/mail.py)
    auto_heal_dbcheck_mail_exception_window_hours = _check_field(
        "mail_exception_window_hours", int, "Failed Mails Counted Over (hours)",
        "Mails their server refused (connection, login) within this time; failures about "
        "one recipient are left out.")
    auto_heal_dbcheck_mail_exception_crit = _check_field(
        "mail_exception_crit", int, "Failed Mails: Critical (count)")
    auto_heal_dbcheck_mail_outgoing_warn_minutes = _check_field(
        "mail_outgoing_warn_minutes", int, "Mail Waiting to Be Sent: Warning (min)")
    # backups (engine/checks/backup.py); the watchdog has its own [backup] section
    auto_heal_dbcheck_backup_dumps_dir = _check_field(
        "backup_dumps_dir", str, "Dumps Folder",
        "A folder of pg_dump archives that this Odoo server can read; empty: only the "
        "watchdog's report is shown.")
    auto_heal_dbcheck_backup_filestore_dir = _check_field(
        "backup_filestore_dir", str, "Filestore Copy Folder")
    auto_heal_dbcheck_backup_crit_hours = _check_field(
        "backup_crit_hours", int, "Backup: Critical After (hours)")
    # deployment (engine/checks/deployment.py)
    auto_heal_dbcheck_memory_total_warn_percent = _check_field(
        "memory_total_warn_percent", float, "Memory Limits: Warning (% of RAM)",
        "(workers + cron threads) x limit_memory_hard as a share of the host's memory.")
    auto_heal_dbcheck_cron_duration_warn_percent = _check_field(
        "cron_duration_warn_percent", float, "Longest Cron Run: Warning (% of its time limit)")
    auto_heal_db_scan_keep_days = fields.Integer(
        string="Keep Scans (days)", default=30, config_parameter="auto_heal.db_scan_keep_days")

    # -- health endpoint ------------------------------------------------------------------
    auto_heal_health_token = fields.Char(
        string="Health Token", config_parameter=HEALTH_TOKEN_PARAM,
        help="Monitoring sends it as the X-Auto-Heal-Token header (or ?token=) to "
             "/auto_heal/health. A secret.")
    auto_heal_health_disk_warn_percent = fields.Float(
        string="Disk: Warning Below (% free)", default=15.0,
        config_parameter="auto_heal.health_disk_warn_percent")
    auto_heal_health_disk_crit_percent = fields.Float(
        string="Disk: Critical Below (% free)", default=5.0,
        config_parameter="auto_heal.health_disk_crit_percent")

    # -- log sources ---------------------------------------------------------------------
    auto_heal_log_folders = fields.Char(
        string="Log Folders", config_parameter="auto_heal.log_folders",
        help="The only folders whose files a log source may read, one per line or "
             "separated by commas (symlinks resolved). Empty: the folder of odoo.conf's "
             "logfile. System folders and folders holding odoo.conf or the data_dir are "
             "refused: a catch-all pattern would copy their files into incidents.")

    @api.constrains("auto_heal_log_folders")
    def _check_auto_heal_log_folders(self):
        from .auto_heal_log_source import log_folder_problem, parse_log_folders

        for settings in self:
            for folder in parse_log_folders(settings.auto_heal_log_folders):
                problem = log_folder_problem(folder)
                if problem:
                    raise ValidationError(self.env._(
                        "Log folder %(folder)s is refused: %(problem)s.", folder=folder,
                        problem=problem))

    # -- notifications -----------------------------------------------------------------
    auto_heal_notify_window_minutes = fields.Integer(
        string="One Message per Incident Within (min)", default=60,
        config_parameter="auto_heal.notify_window_minutes",
        help="More events of an incident within this time are held and told with the next "
             "message; an escalation, an approval or a failed fix is always sent.")
    auto_heal_notify_reminder_hours = fields.Integer(
        string="Remind Open Incidents Every (h)", default=6,
        config_parameter="auto_heal.notify_reminder_hours")
    auto_heal_notify_cap_per_hour = fields.Integer(
        string="Messages per Channel and Hour", default=20,
        config_parameter="auto_heal.notify_cap_per_hour",
        help="Above this, one digest message carries the rest.")

    def action_auto_heal_regenerate_health_token(self):
        self.env["ir.config_parameter"].set_param(HEALTH_TOKEN_PARAM, _new_token())
        return {"type": "ir.actions.client", "tag": "reload"}

    @api.model
    def _auto_heal_ensure_health_token(self):
        """On install and upgrade: make the health token when there is none."""
        # sudo: runs from the module's data; the token is a system parameter.
        params = self.env["ir.config_parameter"].sudo()
        if not params.get_param(HEALTH_TOKEN_PARAM):
            params.set_param(HEALTH_TOKEN_PARAM, _new_token())
        return True

    @api.model
    def _auto_heal_whole_minutes(self):
        """On install and upgrade: minutes saved as 30.0 by an earlier version become 30."""
        # sudo: runs from the module's data; these are system parameters
        params = self.env["ir.config_parameter"].sudo()
        for key in WHOLE_MINUTE_KEYS:
            raw = params.get_param(f"auto_heal.dbcheck.{key}")
            try:
                whole = str(round(float(raw))) if raw not in (None, False, "") else None
            except ValueError:
                whole = None  # not a number: the checks that read it say so
            if whole is not None and whole != raw:
                params.set_param(f"auto_heal.dbcheck.{key}", whole)
        return True

    @api.model
    def _auto_heal_settings(self):
        """The policy settings, with safe defaults for missing or broken values."""
        # sudo: ir.config_parameter is readable by Settings admins only, and the cron
        # and Auto-Heal managers need the policy; these values are no secret.
        params = self.env["ir.config_parameter"].sudo()

        def number(key, default):
            raw = params.get_param(f"auto_heal.{key}", default)
            try:
                value = int(raw)
            except (TypeError, ValueError):
                _logger.warning("auto_heal.%s is not a number (%r); using %s", key, raw,
                                default)
                return default
            return value if value >= 1 else default

        environment = params.get_param("auto_heal.environment", DEFAULTS["environment"])
        if environment not in ENVIRONMENTS:
            _logger.warning("auto_heal.environment %r is unknown; using prod", environment)
            environment = "prod"
        rules = {}
        for severity in SEVERITIES:
            mode = params.get_param(f"auto_heal.policy_{severity}", DEFAULT)
            if mode in MODES:
                rules[severity] = mode
        return {
            "environment": environment,
            "rules": rules,
            **{key: number(key, DEFAULTS[key]) for key in DEFAULTS if key != "environment"},
        }


def _new_token():
    return secrets.token_urlsafe(32)
