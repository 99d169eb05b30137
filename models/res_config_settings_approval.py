"""Settings > Auto-Heal > Approvals: expiry, four eyes, approvers, host plans.

Stored as ``ir.config_parameter`` values written explicitly (``"0"`` and
``"False"`` are values here: a plain ``config_parameter`` field would delete
the parameter for 0 or an unticked box, and fall back to its default):

- ``auto_heal.approval_expiry_hours.<environment>.<severity>``: whole hours,
  0 = never (defaults: engine.approval.DEFAULT_EXPIRY_HOURS);
- ``auto_heal.four_eyes.<environment>``: ``1`` or ``0`` (default: prod only);
- ``auto_heal.critical_approvers``: ``1`` or ``2``;
- ``auto_heal.host_plan_approval``: ``1`` or ``0``.

A missing or broken value falls back to the environment's default, logged.
"""

import logging

from odoo import api, fields, models
from odoo.exceptions import ValidationError

from ..engine.approval import (
    DEFAULT_EXPIRY_HOURS,
    DEFAULT_FOUR_EYES,
    ApprovalError,
    check_hours,
)
from ..engine.patterns import SEVERITIES
from ..engine.policy import ENVIRONMENTS

_logger = logging.getLogger(__name__)

EXPIRY_PARAM = "auto_heal.approval_expiry_hours.%s.%s"
FOUR_EYES_PARAM = "auto_heal.four_eyes.%s"
CRITICAL_APPROVERS_PARAM = "auto_heal.critical_approvers"
HOST_PLAN_PARAM = "auto_heal.host_plan_approval"
_ENV_LABELS = {"dev": "Development", "staging": "Staging", "prod": "Production"}


def _expiry_field(environment, severity):
    return fields.Integer(
        string=severity.capitalize(), default=DEFAULT_EXPIRY_HOURS[environment],
        help=f"Hours a {severity} severity fix run waits for approval in "
             f"{_ENV_LABELS[environment].lower()} before it expires; 0: never.")


def _four_eyes_field(environment):
    return fields.Boolean(
        string=f"Four Eyes in {_ENV_LABELS[environment]}",
        default=DEFAULT_FOUR_EYES[environment],
        help="Whoever planned a fix run by hand, submitted it or changed its target host "
             "cannot approve it: another Auto-Heal Manager must.")


EXPIRY_FIELDS = {f"auto_heal_expiry_{env}_{sev}": (env, sev)
                 for env in ENVIRONMENTS for sev in SEVERITIES}
FOUR_EYES_FIELDS = {f"auto_heal_four_eyes_{env}": env for env in ENVIRONMENTS}


class ResConfigSettings(models.TransientModel):
    _inherit = "res.config.settings"

    auto_heal_expiry_dev_low = _expiry_field("dev", "low")
    auto_heal_expiry_dev_medium = _expiry_field("dev", "medium")
    auto_heal_expiry_dev_high = _expiry_field("dev", "high")
    auto_heal_expiry_dev_critical = _expiry_field("dev", "critical")
    auto_heal_expiry_staging_low = _expiry_field("staging", "low")
    auto_heal_expiry_staging_medium = _expiry_field("staging", "medium")
    auto_heal_expiry_staging_high = _expiry_field("staging", "high")
    auto_heal_expiry_staging_critical = _expiry_field("staging", "critical")
    auto_heal_expiry_prod_low = _expiry_field("prod", "low")
    auto_heal_expiry_prod_medium = _expiry_field("prod", "medium")
    auto_heal_expiry_prod_high = _expiry_field("prod", "high")
    auto_heal_expiry_prod_critical = _expiry_field("prod", "critical")
    auto_heal_four_eyes_dev = _four_eyes_field("dev")
    auto_heal_four_eyes_staging = _four_eyes_field("staging")
    auto_heal_four_eyes_prod = _four_eyes_field("prod")
    auto_heal_critical_approvers = fields.Selection(
        [("1", "One approver"), ("2", "Two distinct approvers")],
        string="Critical Fixes Need", default="1",
        help="A critical severity fix run can need two different people to approve it.")
    auto_heal_host_plan_approval = fields.Boolean(
        string="Approve the Host's Own Plan",
        help="A host fix run a person approves is first only planned by its watchdog, which "
             "reports the real plan (with the diff) for a second approval; that plan, and no "
             "other, then runs. Turn it on once every watchdog runs this version.")

    @api.constrains(*EXPIRY_FIELDS)
    def _check_auto_heal_expiry(self):
        for settings in self:
            for name in EXPIRY_FIELDS:
                try:
                    check_hours(settings[name])
                except ApprovalError as exc:
                    raise ValidationError(self.env._(
                        "%(field)s: %(error)s", field=settings._fields[name].string,
                        error=str(exc))) from None

    @api.model
    def get_values(self):
        res = super().get_values()
        settings = self._auto_heal_approval_settings()
        for name, (env, sev) in EXPIRY_FIELDS.items():
            res[name] = settings["expiry"][env][sev]
        for name, env in FOUR_EYES_FIELDS.items():
            res[name] = settings["four_eyes_by_environment"][env]
        res["auto_heal_critical_approvers"] = str(settings["critical_approvers"])
        res["auto_heal_host_plan_approval"] = settings["host_plan_approval"]
        return res

    def set_values(self):
        result = super().set_values()
        # sudo: Settings admins write these, like every config_parameter field
        params = self.env["ir.config_parameter"].sudo()
        for name, (env, sev) in EXPIRY_FIELDS.items():
            params.set_param(EXPIRY_PARAM % (env, sev), str(check_hours(self[name])))
        for name, env in FOUR_EYES_FIELDS.items():
            params.set_param(FOUR_EYES_PARAM % env, "1" if self[name] else "0")
        params.set_param(CRITICAL_APPROVERS_PARAM, self.auto_heal_critical_approvers or "1")
        params.set_param(HOST_PLAN_PARAM, "1" if self.auto_heal_host_plan_approval else "0")
        return result

    @api.model
    def _auto_heal_approval_settings(self):
        """The approval settings of this database, with safe defaults for broken values."""
        # sudo: the cron and Auto-Heal managers need them; these values are no secret
        params = self.env["ir.config_parameter"].sudo()

        def flag(key, default):
            raw = params.get_param(key)
            if raw in (None, False, ""):
                return default
            if raw in ("1", "True", "true"):
                return True
            if raw in ("0", "False", "false"):
                return False
            _logger.warning("%s is not 1 or 0 (%r); using %s", key, raw, default)
            return default

        expiry = {}
        for env in ENVIRONMENTS:
            expiry[env] = {}
            for sev in SEVERITIES:
                raw = params.get_param(EXPIRY_PARAM % (env, sev))
                try:
                    hours = check_hours(raw) if raw not in (None, False, "") else None
                except ApprovalError as exc:
                    _logger.warning("%s: %s; using %s h", EXPIRY_PARAM % (env, sev), exc,
                                    DEFAULT_EXPIRY_HOURS[env])
                    hours = None
                expiry[env][sev] = DEFAULT_EXPIRY_HOURS[env] if hours is None else hours
        four_eyes = {env: flag(FOUR_EYES_PARAM % env, DEFAULT_FOUR_EYES[env])
                     for env in ENVIRONMENTS}
        critical = params.get_param(CRITICAL_APPROVERS_PARAM, "1")
        environment = self._auto_heal_settings()["environment"]
        return {
            "environment": environment,
            "expiry": expiry,
            "four_eyes": four_eyes[environment],
            "four_eyes_by_environment": four_eyes,
            "critical_approvers": 2 if critical == "2" else 1,
            "host_plan_approval": flag(HOST_PLAN_PARAM, False),
        }
