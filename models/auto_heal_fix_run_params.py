"""The data parameters of fix actions as real fields of the fix run.

engine/actions/params.py declares every parameter once, with its trust level.
The ``data`` ones (which cron, which modules, which incidents are the cause...)
are what an admin may choose; each becomes a field ``param_<name>`` here,
derived from the declarations, and the form shows the fields of the run's
action, editable while the run waits (draft or waiting approval). The JSON
``params`` stays what the engine reads: the fields are read from it and write
to it, and a changed parameter plans the run again. ``host`` parameters never
get a field: Odoo may not set them.
"""

import json

from lxml import etree
from odoo import api, fields, models

from ..engine.actions import actions as engine_actions
from ..engine.actions.params import data_params

FIELD_PREFIX = "param_"
#: States in which a person may change a run's data parameters.
EDITABLE_STATES = ("draft", "pending", "stale")
#: Kinds holding several values: one per line in a text field.
_LIST_KINDS = ("paths", "texts", "names")


def _label(param):
    return param.name.replace("_", " ").capitalize()


def collect_data_params():
    """``{field name: (Param, (action names...))}`` of every action's data parameters.

    One field per parameter name; two actions declaring the same name must
    agree on its kind.
    """
    found = {}
    for name, action in engine_actions().items():
        for param in data_params(action):
            field_name = FIELD_PREFIX + param.name
            if field_name in found:
                known, names = found[field_name]
                if (known.kind, known.refers) != (param.kind, param.refers):
                    raise ValueError(f"fix action parameter {param.name!r} is declared with "
                                     f"two kinds ({known.kind}, {param.kind})")
                found[field_name] = (known, names + (name,))
            else:
                found[field_name] = (param, (name,))
    return found


def _make_field(param):
    common = {"string": _label(param), "help": param.help, "compute": "_compute_param_fields",
              "inverse": "_inverse_param_fields", "readonly": False}
    if param.refers == "incident":
        return fields.Many2many("auto_heal.incident", **common)
    if param.kind == "int":
        return fields.Integer(**common)
    if param.kind == "number":
        return fields.Float(**common)
    if param.kind == "bool":
        return fields.Boolean(**common)
    if param.kind == "choice":
        return fields.Selection([(choice, choice) for choice in param.choices], **common)
    if param.kind in _LIST_KINDS:
        return fields.Text(**common)
    return fields.Char(**common)


DATA_PARAMS = collect_data_params()


def _field_value(run, param, params):
    """The field value of *param* from the *params* dict (its default when absent)."""
    value = params.get(param.name, param.default)
    if param.refers == "incident":
        names = [value] if isinstance(value, str) else list(value or [])
        return run.env["auto_heal.incident"].search([("fingerprint", "in", names)]) \
            if names else run.env["auto_heal.incident"]
    if value is None:
        return False
    if param.kind in _LIST_KINDS:
        return "\n".join(str(v) for v in ([value] if isinstance(value, str) else value))
    if param.kind in ("int", "number", "bool", "choice"):
        return value
    return str(value)


def _param_value(param, value):
    """The params value of a field *value* (None: leave the parameter out)."""
    if param.refers == "incident":
        return sorted(value.mapped("fingerprint")) or None
    if param.kind in _LIST_KINDS:
        items = [line.strip() for line in (value or "").splitlines() if line.strip()]
        return items or None
    if param.kind == "bool":
        return bool(value) if value else None
    if param.kind in ("int", "number"):
        return value  # 0 is a value (min_age 0)
    return value or None


class AutoHealFixRunParams(models.Model):
    _inherit = "auto_heal.fix.run"

    for _field_name, (_param, _names) in DATA_PARAMS.items():
        locals()[_field_name] = _make_field(_param)
    del _field_name, _param, _names

    @api.depends("params", "action")
    def _compute_param_fields(self):
        for run in self:
            params = run._params_dict()
            declared = run._declared_data_params()
            for field_name, (param, _names) in DATA_PARAMS.items():
                run[field_name] = _field_value(run, param, params) \
                    if field_name in declared else _empty(run, field_name)

    def _inverse_param_fields(self):
        """Only reached through write() below, which turns the fields into params."""

    def _declared_data_params(self):
        """``{field name: Param}`` of the data parameters of this run's action."""
        self.ensure_one()
        action = self._engine_action()
        if action is None:
            return {}
        return {FIELD_PREFIX + param.name: param for param in data_params(action)}

    def _params_with_fields(self, values):
        """This run's params dict with the parameter field *values* put in."""
        self.ensure_one()
        params = self._params_dict()
        declared = self._declared_data_params()
        for field_name, value in values.items():
            param = declared.get(field_name)
            if param is None:
                continue  # a field of another action: not this run's parameter
            if param.refers == "incident":
                value = self.env["auto_heal.incident"].browse(
                    _many2many_ids(self.env["auto_heal.incident"], value, params, param))
            converted = _param_value(param, value)
            if converted is None:
                params.pop(param.name, None)
            else:
                params[param.name] = converted
        return params

    @api.model_create_multi
    def create(self, vals_list):
        for vals in vals_list:
            values = {key: vals.pop(key) for key in list(vals) if key in DATA_PARAMS}
            if values:
                probe = self.new({"action": vals.get("action"),
                                  "incident_id": vals.get("incident_id"),
                                  "params": vals.get("params") or "{}"})
                vals["params"] = json.dumps(probe._params_with_fields(values), sort_keys=True)
        return super().create(vals_list)

    def write(self, vals):
        values = {key: vals.pop(key) for key in list(vals) if key in DATA_PARAMS}
        if not values:
            return super().write(vals)
        result = super().write(vals) if vals else True
        for run in self:
            params = json.dumps(run._params_with_fields(values), sort_keys=True)
            if params != (run.params or "{}"):
                run.write({"params": params})
        return result

    # -- the form shows the fields of the run's action ------------------------------------

    @api.model
    def _get_view(self, view_id=None, view_type="form", **options):
        arch, view = super()._get_view(view_id, view_type, **options)
        if view_type != "form":
            return arch, view
        for group in arch.xpath("//group[@name='data_params']"):
            for field_name, (param, names) in DATA_PARAMS.items():
                attrs = {
                    "name": field_name,
                    "invisible": f"action not in {tuple(names)!r}",
                    "readonly": f"state not in {EDITABLE_STATES!r}",
                }
                if param.refers == "incident":
                    attrs.update(widget="many2many_tags", options="{'no_create': True}")
                elif param.kind in _LIST_KINDS:
                    attrs.update(placeholder="one per line")
                if param.required:
                    attrs["required"] = f"action in {tuple(names)!r} and state in " \
                                        f"{EDITABLE_STATES!r}"
                etree.SubElement(group, "field", attrs)
        return arch, view


def _empty(run, field_name):
    field = run._fields[field_name]
    return run.env[field.comodel_name] if field.type == "many2many" else False


def _many2many_ids(model, value, params, param):
    """The ids a written many2many *value* (commands or ids) leaves, from the current ones."""
    current = params.get(param.name) or []
    current = [current] if isinstance(current, str) else current
    ids = model.search([("fingerprint", "in", current)]).ids if current else []
    if hasattr(value, "ids"):
        return value.ids
    for command in value or []:
        if isinstance(command, int):
            ids.append(command)
        elif command[0] == 6:
            ids = list(command[2])
        elif command[0] == 4:
            ids.append(command[1])
        elif command[0] in (3, 2):
            ids = [i for i in ids if i != command[1]]
        elif command[0] == 5:
            ids = []
    return list(dict.fromkeys(ids))
