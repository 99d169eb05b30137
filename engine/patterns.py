"""The pattern database: load, validate and describe known error signatures.

``data/patterns.json`` keeps the seed's schema and extends it::

    {"version": 1, "patterns": [
      {"type": "cron_field_deprecated",         # unique code
       "regex": "...",                          # searched with re.MULTILINE; only what
                                                # linear-time engines take (engine.linear)
       "severity": "high",                      # low | medium | high | critical
       "auto_fix": true,
       "fix_script": "remove_deprecated_cron_fields",
       "description": "...",
       # extensions, all optional:
       "name": "Deprecated ir.cron field",      # a title for people
       "levels": ["ERROR", "CRITICAL"],         # only records at these levels
       "generic": false,                        # a wrapper error: loses to specific ones
       "fingerprint_fields": ["xml_file"],      # named groups that split incidents
       "check": "",                             # a database check instead of a regex
       "active": true}]}

A broken pattern does not stop the others from loading:

>>> entries = [
...     {"type": "db_deadlock", "regex": "deadlock detected", "severity": "high"},
...     {"type": "broken", "regex": "(unclosed", "severity": "high"},
...     {"type": "odd", "regex": "x", "severity": "urgent"},
... ]
>>> pattern_set = PatternSet.from_entries(entries)
>>> [p.type for p in pattern_set.patterns]
['db_deadlock']
>>> for error in pattern_set.errors:
...     print(error)
pattern 'broken': regex: does not compile: missing ), unterminated subpattern at position 0
pattern 'odd': severity: must be one of low, medium, high, critical, not 'urgent'

A pattern only a backtracking engine could run is refused, by name:

>>> PatternSet.from_entries([{"type": "redos", "regex": "(a+)+$", "severity": "low"}]).errors
["pattern 'redos': regex: refused: nested repeats can match the same text in many ways, \
so a backtracking engine may take exponential time; write the repeat once (for example a+ \
instead of (a+)+)"]
"""

import json
import re
from dataclasses import dataclass, field

from .errors import EngineError, PatternError
from .linear import NotLinear, check_linear
from .records import LEVELS

SEVERITIES = ("low", "medium", "high", "critical")
SEVERITY_RANK = {name: rank for rank, name in enumerate(SEVERITIES)}
TYPE_CODE = re.compile(r"^[a-z][a-z0-9_]*$")
#: The pseudo-type of ERROR and CRITICAL records that match no pattern.
UNKNOWN = "unknown"


@dataclass(frozen=True)
class Pattern:
    """One validated pattern. ``compiled`` is None for database checks."""

    type: str
    severity: str
    regex: str = ""
    name: str = ""
    auto_fix: bool = False
    fix_script: str = ""
    description: str = ""
    levels: tuple = ()
    generic: bool = False
    fingerprint_fields: tuple = ()
    check: str = ""
    active: bool = True
    compiled: re.Pattern | None = field(default=None, compare=False, repr=False)

    def to_entry(self):
        """The JSON entry of this pattern, as data/patterns.json holds it."""
        entry = {
            "type": self.type, "name": self.name, "regex": self.regex,
            "severity": self.severity, "auto_fix": self.auto_fix,
            "fix_script": self.fix_script, "description": self.description,
            "levels": list(self.levels), "generic": self.generic,
            "fingerprint_fields": list(self.fingerprint_fields),
        }
        if self.check:
            entry["check"] = self.check
        if not self.active:
            entry["active"] = False
        return entry

    def allows_level(self, level):
        """Whether a record at *level* may match; raw text (None) always may."""
        return not self.levels or level is None or level in self.levels


def _as_bool(entry, key, default, kind):
    value = entry.get(key, default)
    if not isinstance(value, bool):
        raise PatternError(kind, key, f"must be true or false, not {value!r}")
    return value


def _as_text(entry, key, kind):
    value = entry.get(key, "")
    if value is None:
        return ""
    if not isinstance(value, str):
        raise PatternError(kind, key, f"must be a string, not {type(value).__name__}")
    return value


def _as_names(entry, key, kind):
    value = entry.get(key) or []
    if isinstance(value, str):
        value = [part.strip() for part in value.split(",") if part.strip()]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise PatternError(kind, key, "must be a list of strings")
    return tuple(value)


def validate_entry(entry):
    """Turn one JSON entry into a :class:`Pattern`, or raise PatternError.

    >>> p = validate_entry({"type": "x", "regex": "(?P<path>/\\\\S+)", "severity": "low",
    ...                     "fingerprint_fields": ["path"]})
    >>> p.compiled.search("Errno 13 /var/lib/odoo").group("path")
    '/var/lib/odoo'
    >>> try:
    ...     validate_entry({"type": "x", "regex": "a|", "severity": "low"})
    ... except PatternError as exc:
    ...     print(exc)
    pattern 'x': regex: matches the empty string
    """
    if not isinstance(entry, dict):
        raise PatternError("?", "entry", f"must be an object, not {type(entry).__name__}")
    kind = entry.get("type")
    if not isinstance(kind, str) or not TYPE_CODE.match(kind):
        raise PatternError(str(kind), "type", "must be a code such as db_deadlock "
                           "(lower case letters, digits, underscores)")
    if kind == UNKNOWN:
        raise PatternError(kind, "type", f"{UNKNOWN!r} is reserved for unmatched errors")
    severity = entry.get("severity")
    if severity not in SEVERITIES:
        raise PatternError(kind, "severity",
                           f"must be one of {', '.join(SEVERITIES)}, not {severity!r}")
    regex = _as_text(entry, "regex", kind)
    check = _as_text(entry, "check", kind)
    if bool(regex) == bool(check):
        raise PatternError(kind, "regex", "give either a regex or a check name, not both")
    compiled = None
    if regex:
        try:
            compiled = re.compile(regex, re.MULTILINE)
        except re.error as exc:
            raise PatternError(kind, "regex", f"does not compile: {exc}") from None
        if compiled.search("") is not None:
            raise PatternError(kind, "regex", "matches the empty string")
        try:
            check_linear(regex)
        except NotLinear as exc:
            raise PatternError(kind, "regex", f"refused: {exc}") from None
    levels = _as_names(entry, "levels", kind)
    for level in levels:
        if level not in LEVELS:
            raise PatternError(kind, "levels", f"unknown level {level!r}; use {', '.join(LEVELS)}")
    fingerprint_fields = _as_names(entry, "fingerprint_fields", kind)
    groups = set(compiled.groupindex) if compiled else set()
    for name in fingerprint_fields:
        if name not in groups:
            raise PatternError(kind, "fingerprint_fields",
                               f"{name!r} is not a named group of the regex")
    return Pattern(
        type=kind,
        severity=severity,
        regex=regex,
        name=_as_text(entry, "name", kind),
        auto_fix=_as_bool(entry, "auto_fix", False, kind),
        fix_script=_as_text(entry, "fix_script", kind),
        description=_as_text(entry, "description", kind),
        levels=levels,
        generic=_as_bool(entry, "generic", False, kind),
        fingerprint_fields=fingerprint_fields,
        check=check,
        active=_as_bool(entry, "active", True, kind),
        compiled=compiled,
    )


class PatternSet:
    """Valid patterns in file order, and one error line per rejected entry.

    ``patterns`` holds the active regex patterns, ``checks`` the active
    database checks, ``errors`` the rejected entries.
    """

    def __init__(self, patterns=(), checks=(), errors=(), source=""):
        self.patterns = list(patterns)
        self.checks = list(checks)
        self.errors = list(errors)
        self.source = source

    @classmethod
    def from_entries(cls, entries, source=""):
        patterns, checks, errors, seen = [], [], [], set()
        for entry in entries:
            try:
                pattern = validate_entry(entry)
            except PatternError as exc:
                errors.append(str(exc))
                continue
            if pattern.type in seen:
                errors.append(str(PatternError(pattern.type, "type",
                                               "defined twice; the first one is kept")))
                continue
            seen.add(pattern.type)
            if not pattern.active:
                continue
            (checks if pattern.check else patterns).append(pattern)
        return cls(patterns, checks, errors, source)

    def by_type(self):
        return {p.type: p for p in self.patterns + self.checks}

    def __len__(self):
        return len(self.patterns)


class PatternFileError(EngineError):
    """The patterns file as a whole cannot be used."""


def read_entries(path):
    """The list of pattern entries in a JSON file, or PatternFileError."""
    try:
        with open(path, "rb") as handle:
            raw = handle.read()
    except FileNotFoundError:
        raise PatternFileError(f"patterns file not found: {path}") from None
    except OSError as exc:
        raise PatternFileError(f"cannot read patterns file {path}: {exc.strerror or exc}") from None
    try:
        document = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise PatternFileError(f"patterns file {path} is not UTF-8: {exc.reason}") from None
    except json.JSONDecodeError as exc:
        raise PatternFileError(
            f"patterns file {path} is not valid JSON: {exc.msg} at line {exc.lineno} "
            f"column {exc.colno}") from None
    entries = document.get("patterns") if isinstance(document, dict) else None
    if not isinstance(entries, list):
        raise PatternFileError(f'patterns file {path} must hold {{"patterns": [...]}}')
    return entries


def load_patterns(path):
    """Load a patterns file; bad entries land in ``errors``, not in exceptions."""
    return PatternSet.from_entries(read_entries(path), source=str(path))


def dump_patterns(patterns):
    """JSON text for a list of :class:`Pattern`, in data/patterns.json's schema."""
    return json.dumps({"version": 1, "patterns": [p.to_entry() for p in patterns]},
                      indent=2, ensure_ascii=False) + "\n"
