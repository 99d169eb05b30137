"""Labels for people where the engine speaks in codes: a database check by its pattern's name."""

from odoo import api, fields, models


class AutoHealDbScanCheckLabel(models.Model):
    _inherit = "auto_heal.db.scan.check"

    check_label = fields.Char(string="Database Check", compute="_compute_check_label",
                              help="The check, by the name of its pattern.")

    @api.depends("check")
    def _compute_check_label(self):
        names = {pattern.check: pattern.name for pattern in self.env["auto_heal.pattern"]
                 .with_context(active_test=False).search([("check", "in", self.mapped("check"))])}
        for line in self:
            line.check_label = names.get(line.check) or line.check
