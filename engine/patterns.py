"""The pattern database: load, validate and describe known error signatures.

``data/patterns.json`` keeps the seed's schema and extends it::

    {"version": 2,
     "definitions": {"xml_at": "while parsing (?P<xml_file>...)"},  # shared parts
     "patterns": [
      {"type": "cron_field_deprecated",         # unique code
       "regex": "...",                          # searched with re.MULTILINE; only what
                                                # linear-time engines take (engine.linear);
                                                # or a list of alternatives (below)
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
       "definitions": {},                       # shared parts of this pattern only
       "active": true}]}

``regex`` is either one string, taken as it is (the seed's form), or a list of
alternatives in the fail2ban way: each item a string, or an object
``{"regex": "...", "source": "18.0 odoo/addons/base/models/ir_rule.py"}`` that
says where the wording comes from. In a list, ``%(name)s`` stands for the
definition *name* (the pattern's own ``definitions`` first, then the file's;
definitions may use other definitions) and ``%%`` for a ``%``. Alternatives may
reuse the same group names. Each alternative must compile on its own, match no
empty string, and be accepted by RE2 (linear time) when RE2 is installed.

The alternatives are joined into one ``regex``; a group name used again by a
later alternative becomes ``name__2``, ``name__3``..., and
:meth:`Pattern.captures` reports it under its own name:

>>> pattern = validate_entry({"type": "view_error", "severity": "high",
...     "definitions": {"at": "while parsing (?P<xml_file>[a-z/.]+):(?P<xml_line>[0-9]+)"},
...     "regex": ["%(at)s, near", {"regex": "Since 17, %(at)s", "source": "17.0 a.py"}]})
>>> print(pattern.regex)
(?:while parsing (?P<xml_file>[a-z/.]+):(?P<xml_line>[0-9]+), near)|(?:Since 17, \
while parsing (?P<xml_file__2>[a-z/.]+):(?P<xml_line__2>[0-9]+))
>>> pattern.captures(pattern.compiled.search("Since 17, while parsing a/v.xml:3"))
{'xml_file': 'a/v.xml', 'xml_line': '3'}
>>> pattern.sources
('', '17.0 a.py')

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
#: The largest patterns file read (data/patterns.json is about 100 KB).
MAX_FILE_BYTES = 16 * 1024 * 1024
SEVERITY_RANK = {name: rank for rank, name in enumerate(SEVERITIES)}
TYPE_CODE = re.compile(r"^[a-z][a-z0-9_]*$")
#: The pseudo-type of ERROR and CRITICAL records that match no pattern.
UNKNOWN = "unknown"
#: ``%(name)s`` (a definition) or ``%%`` (a percent sign) in a list of alternatives.
REFERENCE = re.compile(r"%%|%\((?P<name>[A-Za-z_]\w*)\)s")
DEFINITION_NAME = re.compile(r"^[A-Za-z_]\w*$")
#: The suffix a repeated group name gets in the joined regex: name__2, name__3...
_REPEAT_SUFFIX = re.compile(r"__\d+$")
#: A named group or a named back-reference, not escaped.
_GROUP_NAME = re.compile(r"(?<!\\)((?:\\\\)*)\(\?P([<=])([A-Za-z_]\w*)")
_LEADING_FLAGS = re.compile(r"^\(\?([aiLmsux]+)\)")


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
    #: The alternatives ``regex`` joins, definitions expanded, their own group names.
    alternatives: tuple = ()
    #: Where each alternative's wording comes from ("" when not said).
    sources: tuple = ()
    compiled: re.Pattern | None = field(default=None, compare=False, repr=False)

    def to_entry(self):
        """The JSON entry of this pattern, as data/patterns.json holds it."""
        regex = self.regex
        if len(self.alternatives) > 1 or any(self.sources):
            regex = [_alternative_entry(alt, source)
                     for alt, source in zip(self.alternatives, self.sources, strict=True)]
        entry = {
            "type": self.type, "name": self.name, "regex": regex,
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

    def captures(self, match):
        """The named groups that took part in *match*, repeated names folded."""
        found = {}
        for name, value in match.groupdict().items():
            if value is not None:
                found.setdefault(_REPEAT_SUFFIX.sub("", name), value)
        return found


def _alternative_entry(alternative, source):
    escaped = alternative.replace("%", "%%")
    return {"regex": escaped, "source": source} if source else escaped


def expand(text, definitions, kind, where, _using=()):
    """*text* with its ``%(name)s`` references replaced, or PatternError.

    >>> expand("a %(b)s 100%%", {"b": "[%(c)s]", "c": "0-9"}, "x", "regex[1]")
    'a [0-9] 100%'
    >>> expand("%(b)s", {"b": "%(b)s"}, "x", "regex[1]")
    Traceback (most recent call last):
    ...
    engine.errors.PatternError: pattern 'x': regex[1]: definition 'b' uses itself (b -> b)
    """
    def replace(match):
        name = match.group("name")
        if name is None:
            return "%"
        if name in _using:
            chain = " -> ".join(_using + (name,))
            raise PatternError(kind, where, f"definition {name!r} uses itself ({chain})")
        if name not in definitions:
            raise PatternError(kind, where, f"no definition named {name!r}")
        return expand(definitions[name], definitions, kind, where, _using + (name,))

    return REFERENCE.sub(replace, text)


def _definitions(value, kind):
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise PatternError(kind, "definitions", "must be an object of name: text")
    for name, text in value.items():
        if not DEFINITION_NAME.match(name) or not isinstance(text, str):
            raise PatternError(kind, "definitions",
                               f"{name!r} must be a name (letters, digits, _) with a text value")
    return value


def _re2():
    """RE2, imported when first needed (the watchdog's memory at rest), or None."""
    try:
        import re2
    except ImportError:  # pragma: no cover - depends on the host
        return None
    return re2


def _re2_refusal(alternative):
    """Why RE2 refuses *alternative*, or "" (also when RE2 is not installed)."""
    re2 = _re2()
    if re2 is None:
        return ""
    options = re2.Options()
    options.max_mem = 256 << 20
    options.log_errors = False
    try:
        re2.compile("(?m)" + alternative, options)
    except Exception as exc:  # re2 raises its own error type
        reason = exc.args[0] if exc.args else exc
        if isinstance(reason, bytes):
            reason = reason.decode("utf-8", "replace")
        return str(reason)
    return ""


def _alternatives(entry, kind, definitions):
    """[(expanded alternative, source)] of a list-form ``regex``."""
    items = entry["regex"]
    if not items:
        raise PatternError(kind, "regex", "the list of alternatives is empty")
    result = []
    for number, item in enumerate(items, 1):
        where = f"regex[{number}]"
        source = ""
        if isinstance(item, dict):
            unknown = sorted(set(item) - {"regex", "source"})
            if unknown:
                raise PatternError(kind, where, f"unknown key {unknown[0]!r}; "
                                   "an alternative holds regex and source")
            source = item.get("source") or ""
            item = item.get("regex")
            if not isinstance(source, str):
                raise PatternError(kind, where, "source must be a string")
        if not isinstance(item, str) or not item:
            raise PatternError(kind, where, "must be a non-empty string or "
                               '{"regex": "...", "source": "..."}')
        alternative = expand(item, definitions, kind, where)
        try:
            compiled = re.compile(alternative, re.MULTILINE)
        except re.error as exc:
            raise PatternError(kind, where, f"does not compile: {exc}") from None
        if compiled.search("") is not None:
            raise PatternError(kind, where, "matches the empty string")
        reserved = [n for n in compiled.groupindex if _REPEAT_SUFFIX.search(n)]
        if reserved:
            raise PatternError(kind, where, f"group name {reserved[0]!r}: names ending "
                               "in __<digits> are reserved for repeated names")
        refusal = _re2_refusal(alternative)
        if refusal:
            raise PatternError(kind, where, f"RE2 refuses it (patterns must run in "
                               f"linear time): {refusal}")
        result.append((alternative, source))
    return result


def join_alternatives(alternatives):
    """One regex for all *alternatives*; repeated group names get a suffix.

    >>> join_alternatives(["(?i)dead(?P<x>lock)", "(?P<x>serial)ization"])
    '(?i:dead(?P<x>lock))|(?:(?P<x__2>serial)ization)'
    """
    if len(alternatives) == 1:
        return alternatives[0]
    seen, parts = {}, []
    for alternative in alternatives:
        renamed = {}

        def rename(match, renamed=renamed):
            escapes, kind, name = match.groups()
            if kind == "<":
                seen[name] = seen.get(name, 0) + 1
                renamed[name] = name if seen[name] == 1 else f"{name}__{seen[name]}"
            return f"{escapes}(?P{kind}{renamed.get(name, name)}"

        body = _GROUP_NAME.sub(rename, alternative)
        flags = _LEADING_FLAGS.match(body)
        if flags:
            parts.append(f"(?{flags.group(1)}:{body[flags.end():]})")
        else:
            parts.append(f"(?:{body})")
    return "|".join(parts)


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
    check = _as_text(entry, "check", kind)
    alternatives, sources = (), ()
    if isinstance(entry.get("regex"), list):
        definitions = _definitions(entry.get("definitions"), kind)
        pairs = _alternatives(entry, kind, definitions) if not check else []
        alternatives = tuple(alt for alt, _ in pairs)
        sources = tuple(source for _, source in pairs)
        regex = join_alternatives(alternatives) if alternatives else ""
    else:
        regex = _as_text(entry, "regex", kind)
        alternatives = (regex,) if regex else ()
        sources = ("",) if regex else ()
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
    groups = {_REPEAT_SUFFIX.sub("", n) for n in compiled.groupindex} if compiled else set()
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
        alternatives=alternatives,
        sources=sources,
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
    """The list of pattern entries in a JSON file, or PatternFileError.

    The file's ``definitions`` are handed to every entry (an entry's own
    definitions win), so each entry validates on its own.
    """
    from .safefs import read_regular

    try:  # a regular file within the cap: never a FIFO, /dev/zero or a giant file
        raw = read_regular(path, "patterns file", MAX_FILE_BYTES, follow=True)
    except EngineError as exc:
        raise PatternFileError(str(exc)) from None
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
    shared = document.get("definitions") or {}
    if not isinstance(shared, dict) or not all(
            isinstance(k, str) and DEFINITION_NAME.match(k) and isinstance(v, str)
            for k, v in shared.items()):
        raise PatternFileError(f"patterns file {path}: definitions must be an object of "
                               "name: text (names of letters, digits and _)")
    if shared:
        entries = [dict(entry, definitions={**shared, **(entry.get("definitions") or {})})
                   if isinstance(entry, dict) and isinstance(entry.get("definitions") or {}, dict)
                   else entry for entry in entries]
    return entries


def load_patterns(path):
    """Load a patterns file; bad entries land in ``errors``, not in exceptions."""
    return PatternSet.from_entries(read_entries(path), source=str(path))


def dump_patterns(patterns):
    """JSON text for a list of :class:`Pattern`, in data/patterns.json's schema."""
    return json.dumps({"version": 2, "patterns": [p.to_entry() for p in patterns]},
                      indent=2, ensure_ascii=False) + "\n"
