"""Fix-action parameters, declared once: type, bounds and who may set them.

Every action lists its parameters as :class:`Param` objects
(``FixAction.params``). From those one declaration come:

- the check of every run's parameters (:func:`validate`), before plan;
- the trust rule (readme/SECURITY.md): a ``host`` parameter (a program, a
  unit, a container, an owner, a mode, a root, a DSN or URL, a file to read,
  a timeout) comes only from the watchdog's own config or the operator's
  command line; a ``data`` parameter (which file inside the roots, which
  version, which cron or module) may come from Odoo. A run from Odoo that
  carries a host parameter is refused (:class:`HostParamError`);
- the command line of ``bin/auto-heal fix ACTION`` (:func:`add_cli_options`);
- the mapping from an incident's captures to a run's parameters in the
  addon (:func:`capture_map`).

::

    Odoo's fix run ──data──> validate(source="odoo") ──┐
      (host keys: refused)                             ├─> merged ──> validate ──> plan
    watchdog config [actions.NAME] ──host──────────────┘

>>> p = Param("timeout", "number", HOST, "seconds", low=1, high=3600)
>>> p.check("90")
90.0
>>> p.check(float("nan"))
Traceback (most recent call last):
...
engine.actions.base.ActionError: timeout: must be a finite number, not nan
>>> p.check(1e9)
Traceback (most recent call last):
...
engine.actions.base.ActionError: timeout: must be at most 3600, not 1000000000.0
"""

import json
import math
import os
import re

from .base import ActionError

HOST = "host"
DATA = "data"
TRUST = (HOST, DATA)
#: Where a run's parameters come from: the host itself, or Odoo (data only).
SOURCES = ("host", "odoo")
KINDS = ("text", "path", "paths", "choice", "int", "number", "bool", "argv", "owner", "mode",
         "url", "names", "texts")
MAX_TEXT = 4096
MAX_ITEMS = 1000
_NAME_RE = re.compile(r"^[A-Za-z0-9_.\-]{1,128}$")


class HostParamError(ActionError):
    """A run from Odoo carries a parameter only the host may set."""


def _is_empty(value):
    return value is None or value == "" or value == [] or value == ()


class Param:
    """One parameter of a fix action.

    *kind*: how the value is checked (see :data:`KINDS`); *trust*: ``host``
    or ``data``; *capture*: the incident capture that fills it in the addon;
    *option*: the command-line flag (default ``--name-with-dashes``);
    *refers*: what the values name, for a person picking them (``incident``:
    incident fingerprints; the addon offers a list of incidents).
    """

    __slots__ = ("name", "kind", "trust", "help", "required", "default", "choices", "low",
                 "high", "capture", "option", "aliases", "metavar", "refers")

    def __init__(self, name, kind, trust, help, *, required=False, default=None, choices=(),
                 low=None, high=None, capture="", option="", aliases=(), metavar="",
                 refers=""):
        if kind not in KINDS:
            raise ValueError(f"{name}: unknown kind {kind!r}")
        if trust not in TRUST:
            raise ValueError(f"{name}: trust must be one of {TRUST}")
        self.name, self.kind, self.trust, self.help = name, kind, trust, help
        self.required, self.default, self.choices = required, default, tuple(choices)
        self.low, self.high, self.capture = low, high, capture
        self.option = option or "--" + name.replace("_", "-")
        self.aliases, self.metavar = tuple(aliases), metavar
        self.refers = refers

    def __repr__(self):
        return f"Param({self.name!r}, {self.kind!r}, {self.trust!r})"

    def _fail(self, why, value):
        shown = value if isinstance(value, (int, float)) else repr(value)
        if isinstance(shown, str) and len(shown) > 80:
            shown = shown[:77] + "..."
        raise ActionError(f"{self.name}: {why}, not {shown}")

    def _text(self, value):
        if not isinstance(value, str):
            self._fail("must be text", value)
        if "\x00" in value or len(value) > MAX_TEXT:
            self._fail(f"must be text without NUL of at most {MAX_TEXT} characters", value)
        return value

    def _path(self, value):
        value = self._text(os.fspath(value) if isinstance(value, os.PathLike) else value)
        if not value:
            self._fail("must be a path", value)
        if self.trust == DATA and not os.path.isabs(value):
            self._fail("must be an absolute path", value)
        return value

    def _list(self, value, item):
        if isinstance(value, (str, os.PathLike)):
            value = [value]
        if not isinstance(value, (list, tuple)):
            self._fail("must be a list", value)
        if len(value) > MAX_ITEMS:
            self._fail(f"must have at most {MAX_ITEMS} items", f"{len(value)} items")
        return [item(v) for v in value]

    def _number(self, value, integral):
        if isinstance(value, bool):
            self._fail("must be a number", value)
        try:
            number = int(value) if integral and not isinstance(value, float) else float(value)
        except (TypeError, ValueError):
            self._fail("must be a number", value)
        if isinstance(number, float) and not math.isfinite(number):
            self._fail("must be a finite number", value)
        if integral and number != int(number):
            self._fail("must be a whole number", value)
        if self.low is not None and number < self.low:
            self._fail(f"must be at least {self.low}", number)
        if self.high is not None and number > self.high:
            self._fail(f"must be at most {self.high}", number)
        return int(number) if integral else number

    def check(self, value):
        """*value* checked and normalised; :class:`ActionError` naming the parameter."""
        kind = self.kind
        if kind == "text":
            return self._text(value)
        if kind == "path":
            return self._path(value)
        if kind == "paths":
            return self._list(value, self._path)
        if kind == "texts":
            return self._list(value, self._text)
        if kind == "names":
            names = self._list(value, self._text)
            for name in names:
                if not _NAME_RE.match(name):
                    self._fail("must be names of letters, digits, _ . -", name)
            return names
        if kind == "choice":
            if value not in self.choices:
                self._fail(f"must be one of {', '.join(self.choices)}", value)
            return value
        if kind == "int":
            return self._number(value, True)
        if kind == "number":
            return self._number(value, False)
        if kind == "bool":
            if isinstance(value, bool):
                return value
            if value in ("true", "false", "1", "0", 0, 1):
                return value in ("true", "1", 1)
            self._fail("must be true or false", value)
        if kind == "argv":
            if isinstance(value, str):
                try:
                    value = json.loads(value)
                except ValueError:
                    raise ActionError(f"{self.name}: must be an argv list (a JSON list of "
                                      "strings), not a shell string") from None
            if not isinstance(value, (list, tuple)) or not value or \
                    not all(isinstance(a, str) and a for a in value):
                self._fail("must be a non-empty list of non-empty strings", value)
            return [self._text(a) for a in value]
        if kind == "owner":
            text = self._text(value).strip()
            if not re.fullmatch(r"[A-Za-z0-9_.\-]{1,64}(:[A-Za-z0-9_.\-]{1,64})?", text):
                self._fail("must be USER or USER:GROUP", value)
            return text
        if kind == "mode":
            if isinstance(value, int) and not isinstance(value, bool):
                mode = value
            else:
                text = self._text(str(value)).strip().lower()
                text = text[2:] if text.startswith("0o") else text.lstrip("o")
                if not re.fullmatch(r"[0-7]{1,4}", text):
                    self._fail("must be an octal mode", value)
                mode = int(text, 8)
            if not 0 <= mode <= 0o7777:
                self._fail("must be an octal mode", value)
            return "%04o" % mode
        if kind == "url":
            from urllib.parse import urlsplit

            text = self._text(value)
            parts = urlsplit(text)
            if parts.scheme not in ("http", "https") or not parts.netloc:
                self._fail("must be an http(s) URL", value)
            return text.rstrip("/")
        raise AssertionError(kind)  # pragma: no cover - KINDS lists them all


def declared(action):
    """``{name: Param}`` of *action*, aliases included."""
    out = {}
    for param in action.params:
        out[param.name] = param
        for alias in param.aliases:
            out[alias] = param
    return out


def host_keys(action, params):
    """The host parameters set (non-empty) in *params*."""
    table = declared(action)
    return sorted(key for key, value in params.items()
                  if key in table and table[key].trust == HOST and not _is_empty(value))


def validate(action, params, source="host"):
    """*params* for *action*, checked against its declarations; a new dict.

    ``source="odoo"``: the parameters came from Odoo; a host parameter among
    them raises :class:`HostParamError` (nothing runs). Unknown parameters,
    wrong types, values out of bounds and missing required ones raise
    :class:`ActionError` naming them. Empty values count as absent.

    >>> from engine.actions import get_action
    >>> restart = get_action("restart_service")
    >>> try:
    ...     validate(restart, {"service": "postgresql", "pg_ctl": "/tmp/x"}, source="odoo")
    ... except HostParamError as exc:
    ...     print(str(exc).replace(" (", "\\n("))
    restart_service: pg_ctl is set on the host
    ([actions.restart_service] in the watchdog's config), never by Odoo; refused
    """
    if source not in SOURCES:
        raise ValueError(f"source must be one of {SOURCES}")
    if not isinstance(params, dict):
        raise ActionError(f"{action.name}: parameters must be an object, not "
                          f"{type(params).__name__}")
    table = declared(action)
    unknown = sorted(k for k in params if k not in table)
    if unknown:
        raise ActionError(f"{action.name}: unknown parameter(s) {', '.join(unknown)} (known: "
                          f"{', '.join(p.name for p in action.params) or 'none'})")
    if source == "odoo":
        refused = host_keys(action, params)
        if refused:
            raise HostParamError(
                f"{action.name}: {', '.join(refused)} {'is' if len(refused) == 1 else 'are'} "
                f"set on the host ([actions.{action.name}] in the watchdog's config), never by "
                "Odoo; refused")
    cleaned = {}
    for key, value in params.items():
        if _is_empty(value):
            continue
        param = table[key]
        cleaned[param.name] = param.check(value)
    missing = [p.name for p in action.params if p.required and p.name not in cleaned
               and not (source == "odoo" and p.trust == HOST)]  # the host adds its own
    if missing:
        raise ActionError(f"{action.name} needs {', '.join(missing)}")
    return cleaned


class DeclaredParams(dict):
    """The parameters an action's steps see: reading an undeclared one is a bug
    caught at once (every parameter an action reads is declared)."""

    def __init__(self, action, values):
        super().__init__(values)
        self._names = set(declared(action))
        self._action = action.name

    def _check(self, key):
        if key not in self._names:
            raise ActionError(f"{self._action} reads parameter {key!r}, which it does not "
                              "declare (engine/actions/params.py)")

    def __getitem__(self, key):
        self._check(key)
        return super().__getitem__(key)

    def get(self, key, default=None):
        self._check(key)
        return super().get(key, default)


def data_params(action):
    """The parameters of *action* Odoo may set (trust ``data``), in declaration order."""
    return [p for p in action.params if p.trust == DATA]


def capture_map(action):
    """``{capture: param}`` for the addon: which incident capture fills what."""
    return {p.capture: p.name for p in action.params if p.capture}


def host_params_text(action):
    """One line for the addon's fix-run form: the parameters set on the host."""
    names = [p.name for p in action.params if p.trust == HOST]
    if not names:
        return ""
    return (f"{', '.join(names)}: set on the host ([actions.{action.name}] in the watchdog's "
            "config), never here")


# --------------------------------------------------------------------------
# the command line of `bin/auto-heal fix ACTION`


def _cli_type(param):
    def parse(text):
        import argparse

        try:
            return param.check(text if param.kind not in ("paths", "texts", "names")
                               else [text])
        except ActionError as exc:
            raise argparse.ArgumentTypeError(str(exc).split(": ", 1)[-1]) from None
    parse.__name__ = param.kind
    return parse


def add_cli_options(parser, action):
    """One option per parameter of *action* on an argparse *parser*."""
    for param in action.params:
        label = param.metavar or param.name.upper()
        default = f" (default: {param.default})" if param.default not in (None, "") else ""
        help_text = f"{param.help}{default}"
        if param.kind in ("paths", "texts", "names"):
            parser.add_argument(param.option, dest=param.name, metavar=label, action="append",
                                default=[], type=_cli_type(param),
                                help=help_text + " (repeatable)")
        elif param.kind == "bool":
            parser.add_argument(param.option, dest=param.name, action="store_true",
                                help=help_text)
        elif param.kind == "choice":
            parser.add_argument(param.option, dest=param.name, choices=param.choices,
                                help=help_text)
        elif param.kind == "argv":
            parser.add_argument(param.option, dest=param.name, metavar="JSON",
                                type=_cli_type(param), help=help_text + ", a JSON list")
            parser.add_argument("--arg", dest=f"{param.name}__arg", metavar="A",
                                action="append", default=[],
                                help=f"one element of {param.option} (repeat, in order)")
        else:
            parser.add_argument(param.option, dest=param.name, metavar=label,
                                type=_cli_type(param), help=help_text)


def params_from_cli(action, args):
    """The parameters of *action* given on the command line (checked again by
    :func:`validate`); relative paths are made absolute."""
    out = {}
    for param in action.params:
        value = getattr(args, param.name, None)
        if param.kind == "argv":
            extra = getattr(args, f"{param.name}__arg", [])
            if value and extra:
                raise ActionError(f"{param.option} and --arg: give one of them")
            value = value or (list(extra) if extra else None)
        if _is_empty(value) or value is False:
            continue
        if param.kind in ("paths",):
            value = [os.path.abspath(v) for group in value for v in
                     (group if isinstance(group, list) else [group])]
        elif param.kind in ("texts", "names"):
            value = [v for group in value for v in (group if isinstance(group, list)
                                                    else [group])]
        elif param.kind == "path":
            value = os.path.abspath(value)
        out[param.name] = value
    return out
