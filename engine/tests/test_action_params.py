"""Every fix action declares every parameter it reads, with a type and a trust level."""

import ast
import inspect

import pytest

from engine.actions import actions, get_action
from engine.actions.base import ActionError
from engine.actions.params import (
    DATA,
    HOST,
    DeclaredParams,
    HostParamError,
    declared,
    validate,
)

ALL = sorted(actions())


def _params_read(cls):
    """Names read as ``params["x"]`` or ``params.get("x")`` in the class's methods."""
    tree = ast.parse(inspect.getsource(inspect.getmodule(cls)))
    names = set()
    for node in ast.walk(tree):
        if not (isinstance(node, ast.ClassDef) and node.name == cls.__name__):
            continue
        for inner in ast.walk(node):
            if isinstance(inner, ast.Subscript) and isinstance(inner.value, ast.Name) \
                    and inner.value.id == "params" and isinstance(inner.slice, ast.Constant):
                names.add(inner.slice.value)
            if isinstance(inner, ast.Call) and isinstance(inner.func, ast.Attribute) \
                    and inner.func.attr == "get" and isinstance(inner.func.value, ast.Name) \
                    and inner.func.value.id == "params" and inner.args \
                    and isinstance(inner.args[0], ast.Constant):
                names.add(inner.args[0].value)
    return names


@pytest.mark.parametrize("name", ALL)
def test_every_parameter_read_is_declared(name):
    action = get_action(name)
    read = _params_read(type(action))
    assert read, f"{name} reads no parameter? the scan is broken"
    assert read <= set(declared(action)), sorted(read - set(declared(action)))


@pytest.mark.parametrize("name", ALL)
def test_declarations_are_well_formed(name):
    action = get_action(name)
    seen = set()
    for param in action.params:
        assert param.name not in seen
        seen.add(param.name)
        assert param.trust in (HOST, DATA) and param.help
        if param.capture:  # what a log line or Odoo fills in is data, never power
            assert param.trust == DATA, param
        if action.runs_on == "odoo":  # inside Odoo there is no host power to hand out
            assert param.trust == DATA, param


HOST_PARAMS = [(name, p.name) for name in ALL for p in get_action(name).params
               if p.trust == HOST]


@pytest.mark.parametrize("name,param", HOST_PARAMS)
def test_a_host_parameter_from_odoo_is_refused(name, param):
    action = get_action(name)
    value = {"paths": ["/x"], "path": "/x", "argv": ["/bin/true"], "number": 5,
             "bool": True, "choice": None}.get(action_kind(action, param), "/tmp/x")
    if value is None:
        value = declared(action)[param].choices[0]
    with pytest.raises(HostParamError, match=f"{param} is set on the host"):
        validate(action, {param: value}, source="odoo")


def action_kind(action, param):
    return declared(action)[param].kind


def test_undeclared_and_bad_values_are_refused():
    restart = get_action("restart_service")
    with pytest.raises(ActionError, match="unknown parameter"):
        validate(restart, {"service": "odoo", "shell": "rm -rf /"})
    for value in (float("nan"), float("inf"), 0, 1e9, "soon"):
        with pytest.raises(ActionError, match="timeout"):
            validate(restart, {"service": "odoo", "via": "systemd", "timeout": value})
    with pytest.raises(ActionError, match="absolute path"):
        validate(get_action("remove_deprecated_cron_fields"), {"paths": ["rel/cron.xml"]},
                 source="odoo")
    reading = DeclaredParams(restart, {"service": "odoo"})
    assert reading.get("service") == "odoo"
    with pytest.raises(ActionError, match="does not declare"):
        reading.get("password")


def test_data_from_odoo_passes_and_is_normalised():
    cron = get_action("remove_deprecated_cron_fields")
    assert validate(cron, {"path": "/srv/addons/m/data/cron.xml"}, source="odoo") == \
        {"paths": ["/srv/addons/m/data/cron.xml"]}
    reactivate = get_action("reactivate_cron")
    assert validate(reactivate, {"cron_id": "20"}, source="odoo") == {"cron_id": 20}
    with pytest.raises(ActionError, match="cron_id: must be at most"):
        validate(reactivate, {"cron_id": 2**40}, source="odoo")
