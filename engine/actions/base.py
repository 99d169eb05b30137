"""Fix actions: named operations with plan, backup, apply, verify, rollback.

An action declares where it runs (``odoo``: database level, inside Odoo;
``host``: the watchdog), what it needs, and five steps. The runner
(:mod:`engine.actions.runner`) calls them in this order and nothing else does::

    plan ──> (a person or the policy approves) ──> budget ──> backup ──> apply
                                                                          │
                              done <──ok── verify <─────────────────────-─┘
                                            │failed (or apply raised)
                                            └──> rollback ──> rolled_back

Rules every action keeps (readme/DEVELOP.md, safety rules):

* ``plan`` changes nothing and says what would change in words a person can
  read, with a unified diff for files and its preconditions; a plan with
  ``changes=False`` means there is nothing to do (a second run is a no-op);
* ``backup`` runs before ``apply`` and returns a JSON-able manifest that
  ``rollback`` can restore from exactly (bytes, mode, owner, or row values);
* writes are atomic (:func:`engine.fsutil.atomic_write`), stay inside the
  configured roots, and never go through a shell string;
* ``verify`` checks the outcome, not the absence of an exception.
"""

import json
from dataclasses import asdict, dataclass, field

from ..errors import EngineError

RUNS_ON = ("odoo", "host")


class ActionError(EngineError):
    """A fix action cannot run: unknown name, missing parameter, bad target."""


@dataclass
class Precondition:
    """Something that must hold before apply; ``ok`` is measured, not assumed.

    *remedy* says what a person does when it fails (the fix-run form shows it
    in its red banner).
    """

    description: str
    ok: bool
    detail: str = ""
    remedy: str = ""


@dataclass
class Plan:
    """What an action would do to a target. JSON-able, so it can be stored."""

    action: str
    target: str
    summary: str
    steps: list = field(default_factory=list)
    diff: str = ""
    preconditions: list = field(default_factory=list)
    changes: bool = True
    reversible: bool = True
    details: dict = field(default_factory=dict)
    #: The target in words ("Scheduled action 'Nightly sync' (#20)"); *target* stays the key.
    target_label: str = ""

    @property
    def blocked_by(self):
        """The preconditions that do not hold."""
        return [p for p in self.preconditions if not p.ok]

    def text(self):
        """The plan as a person reads it before approving.

        >>> plan = Plan("fix_permissions", "/var/lib/odoo", "Give odoo its data dir back",
        ...             steps=["chown odoo:odoo /var/lib/odoo/filestore"],
        ...             preconditions=[Precondition("user odoo exists", True),
        ...                            Precondition("no upgrade runs", False, "pid 7",
        ...                                         remedy="wait for it to end")])
        >>> print(plan.text())
        fix_permissions on /var/lib/odoo: Give odoo its data dir back
        Steps:
          1. chown odoo:odoo /var/lib/odoo/filestore
        Preconditions:
          [ok] user odoo exists
          [FAILED] no upgrade runs: pid 7
            what to do: wait for it to end
        """
        lines = [f"{self.action} on {self.target}: {self.summary}"]
        if not self.changes:
            lines.append("Nothing to change: the target is already as it should be.")
        if self.steps:
            lines.append("Steps:")
            lines += [f"  {n}. {step}" for n, step in enumerate(self.steps, 1)]
        if self.preconditions:
            lines.append("Preconditions:")
            for p in self.preconditions:
                lines.append(f"  [{'ok' if p.ok else 'FAILED'}] {p.description}"
                             + (f": {p.detail}" if p.detail else ""))
                if not p.ok and p.remedy:
                    lines.append(f"    what to do: {p.remedy}")
        if not self.reversible:
            lines.append("This action cannot be rolled back.")
        return "\n".join(lines)

    def to_dict(self):
        return asdict(self)

    @classmethod
    def from_dict(cls, data):
        data = dict(data)
        data["preconditions"] = [Precondition(**p) for p in data.get("preconditions", [])]
        return cls(**data)

    def label(self):
        """The target as a person names it: *target_label*, else *target*."""
        return self.target_label or self.target


class FixAction:
    """Base class of every fix action; subclasses fill in the five steps."""

    name = ""
    #: A title for people ("Reset stuck module states"); default: the name in words.
    title = ""
    runs_on = "host"
    #: Every parameter the action reads, as :class:`engine.actions.params.Param`:
    #: its type, bounds and trust level (host or data), declared once.
    params = ()
    description = ""
    reversible = True

    @property
    def label(self):
        """*title*, else the name in words: ``reset_stuck_module_states`` ->
        "Reset stuck module states"."""
        return self.title or self.name.replace("_", " ").strip().capitalize()

    @property
    def needs(self):
        """The names of the required parameters."""
        return tuple(p.name for p in self.params if p.required)

    def check_params(self, params, source="host"):
        """*params* checked against the declarations, plus :meth:`check`; a new dict.

        ``source="odoo"`` refuses host parameters (readme/SECURITY.md).
        """
        from .params import validate

        cleaned = validate(self, params, source)
        self.check(cleaned)
        return cleaned

    def check(self, params):
        """Rules across parameters (a way of restarting needs its target...);
        raise :class:`ActionError`. Runs before plan, changes nothing."""

    def plan(self, context, params):
        raise NotImplementedError

    def backup(self, context, plan):
        """Save what apply will change; return a JSON-able manifest."""
        raise NotImplementedError

    def apply(self, context, plan, backup):
        """Make the change; return the output to show a person."""
        raise NotImplementedError

    def verify(self, context, plan):
        """Return ``(ok, detail)`` measured on the real target."""
        raise NotImplementedError

    def rollback(self, context, plan, backup):
        """Undo apply from *backup*; return the output."""
        raise NotImplementedError


_REGISTRY = {}
#: Modules of this package that hold no actions.
_FRAMEWORK = {"base", "runner", "store"}
_loaded = False


def _load_builtin_actions():
    """Import every action module of this package once, so they register.

    New actions only need a module in engine/actions/ with ``@register``.
    """
    global _loaded
    if _loaded:
        return
    _loaded = True
    import importlib
    import pkgutil

    package = __name__.rsplit(".", 1)[0]
    for module in pkgutil.iter_modules(_package_path()):
        if module.name not in _FRAMEWORK and not module.name.startswith("_"):
            importlib.import_module(f"{package}.{module.name}")


def _package_path():
    import os

    return [os.path.dirname(os.path.abspath(__file__))]


def register(action_class):
    """Class decorator: make an action available by its name."""
    action = action_class()
    if not action.name or action.runs_on not in RUNS_ON:
        raise ActionError(f"{action_class.__name__}: a name and runs_on in {RUNS_ON} are needed")
    _REGISTRY[action.name] = action
    return action_class


def get_action(name):
    """The registered action called *name*, or a clear ActionError."""
    _load_builtin_actions()
    try:
        return _REGISTRY[name]
    except KeyError:
        known = ", ".join(sorted(_REGISTRY)) or "none"
        raise ActionError(f"unknown fix action {name!r}; known: {known}") from None


def actions(runs_on=None):
    """Registered actions, by name; only those running on *runs_on* if given."""
    _load_builtin_actions()
    return {name: action for name, action in sorted(_REGISTRY.items())
            if runs_on is None or action.runs_on == runs_on}


def to_json(value):
    """Compact JSON for storing plans and manifests."""
    return json.dumps(value, sort_keys=True, default=str)
