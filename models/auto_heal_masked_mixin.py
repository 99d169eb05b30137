"""The text fields of a record are masked whenever they are written (readme/SECURITY.md).

Incidents and fix runs keep text from logs, hosts and people: a password in a
log line, a DSN in an error. The models that inherit this mixin name those
fields in ``_masked_fields`` and pass every create and write through
:meth:`_clean_vals`, so no secret reaches the database, the chatter or an RPC
answer.
"""

from odoo import models

from ..engine.secrets import mask_secrets


def clean_text(value):
    """Mask secrets and drop NUL characters, which PostgreSQL text refuses."""
    if not value or not isinstance(value, str):
        return value
    return mask_secrets(value).replace("\x00", "")


class AutoHealMaskedMixin(models.AbstractModel):
    _name = "auto_heal.masked.mixin"
    _description = "Auto-Heal: text fields masked when written"

    #: The text fields masked by :meth:`_clean_vals`.
    _masked_fields = ()

    def _clean_vals(self, vals):
        """*vals* with the masked fields' text cleaned (a copy when anything is)."""
        if any(vals.get(name) for name in self._masked_fields):
            vals = dict(vals)
            for name in self._masked_fields:
                if vals.get(name):
                    vals[name] = clean_text(vals[name])
        return vals
