"""Settings > Auto-Heal: the approval policy, the budget and the demotion threshold.

Stored as ``ir.config_parameter`` values (``auto_heal.*``); the code uses the same
defaults when a value is missing or unusable, so a broken parameter never stops
a fix run from being planned: it falls back to the safest reading (prod).
"""

import logging

from odoo import api, fields, models

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
