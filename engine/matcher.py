"""Match log records against every active pattern in one pass.

Two stages, so that INFO traffic costs almost nothing::

    block of records ──prefilter (all patterns at once)──> hit offsets
                                                              │
    records around the hits ──classify (Python re)──> one pattern, or unknown

The prefilter compiles all patterns into one automaton and scans a whole block
in a single call. Its backends, fastest first:

* ``hyperscan``: every pattern in one database; reports which pattern hit;
* ``re2``: one alternation of every pattern (linear time);
* ``re``: plain-word searches for each pattern's required literals, then
  Python's own engine around the hits; always available.

A pattern a backend cannot compile (look-arounds, back-references) is searched
with Python's ``re`` on its own, so nothing is lost, only speed. Two extra
prefilter entries make unmatched errors visible: an ERROR or CRITICAL record
header, and a bare ``Traceback`` line.

Classification follows DESIGN.md: classify by the innermost cause. A specific
pattern beats a ``generic`` one (``registry_load_failed`` wraps the real
error); among specific ones, the first in the file wins. An ERROR or CRITICAL
record that matches nothing, or raw text holding a traceback, is ``unknown``.

>>> from engine.patterns import PatternSet
>>> patterns = PatternSet.from_entries([
...     {"type": "cron_field_deprecated", "severity": "high",
...      "regex": r"Invalid field '(?P<field>numbercall|doall)' on model 'ir\\.cron'"},
...     {"type": "registry_load_failed", "severity": "critical", "generic": True,
...      "regex": r"Failed to (?:load registry|initialize database)"},
... ])
>>> matcher = Matcher(patterns.patterns, backend="re")
>>> from engine.records import parse_record
>>> record = parse_record(b"2026-11-29 14:40:22,045 5681 CRITICAL p odoo.service.server: "
...     b"Failed to initialize database `p`.\\nTraceback (most recent call last):\\n"
...     b"ValueError: Invalid field 'numbercall' on model 'ir.cron'")
>>> pattern, match = matcher.classify(record)
>>> pattern.type, match.group("field")
('cron_field_deprecated', 'numbercall')
>>> matcher.classify(parse_record(b"2026-11-29 14:40:22,045 5 INFO p x: fine")) is None
True
>>> matcher.classify(parse_record(b"2026-11-29 14:40:22,045 5 ERROR p x: odd"))
(None, None)
"""

import re

try:  # Optional accelerators; the engine works without them.
    import hyperscan
except ImportError:  # pragma: no cover - depends on the host
    hyperscan = None
try:
    import re2
except ImportError:  # pragma: no cover - depends on the host
    re2 = None

from .literals import required_literals
from .records import record_bounds

BACKENDS = ("hyperscan", "re2", "re")

# Entries that make unmatched errors visible to the prefilter: an ERROR or
# CRITICAL header, and a bare traceback. Python's re gets plain literals, which
# it finds at memory speed; classification checks the level and line start.
_ERROR_HEADER = r"\d\d:\d\d:\d\d,\d{3} \d+ (?:ERROR|CRITICAL) "
_TRACEBACK_LINE = r"^Traceback \(most recent call last\):"
_SENTINELS = [_ERROR_HEADER, _TRACEBACK_LINE]
_LITERAL_SENTINELS = [r" ERROR ", r" CRITICAL ", r"Traceback \(most recent call last\):"]
_TRACEBACK_RE = re.compile(_TRACEBACK_LINE, re.MULTILINE)
_NAMED_GROUP = re.compile(r"\(\?P<[A-Za-z_]\w*>")
_UNKNOWN_LEVELS = ("ERROR", "CRITICAL")


def _prefilter_source(regex):
    """A pattern rewritten for the prefilter: no names, one hit per line.

    Appending ``[^\\n]*$`` makes every hit end at the end of its line, so a
    pattern ending in ``.*`` reports one hit per line, not one per byte.
    """
    return "(?:" + _NAMED_GROUP.sub("(?:", regex) + ")[^\n]*$"


class _HyperscanPrefilter:
    name = "hyperscan"

    def __init__(self, sources):
        self.database = hyperscan.Database(mode=hyperscan.HS_MODE_BLOCK)
        expressions = [s.encode("utf-8") for s in sources]
        self.database.compile(
            expressions=expressions,
            ids=list(range(len(expressions))),
            elements=len(expressions),
            flags=[hyperscan.HS_FLAG_MULTILINE] * len(expressions),
        )

    @staticmethod
    def supports(source):
        database = hyperscan.Database(mode=hyperscan.HS_MODE_BLOCK)
        try:
            database.compile(expressions=[source.encode("utf-8")], ids=[0], elements=1,
                             flags=[hyperscan.HS_FLAG_MULTILINE])
        except hyperscan.error:
            return False
        return True

    def hits(self, data):
        found = []

        def on_match(pattern_id, start, end, flags, context):
            found.append((end, pattern_id))

        self.database.scan(data, match_event_handler=on_match)
        return found


def _re2_options():
    options = re2.Options()
    options.max_mem = 256 << 20
    options.log_errors = False  # a rejected pattern falls back to re; no stderr noise
    return options


class _Re2Prefilter:
    """One alternation of every pattern, run by RE2 in linear time."""

    name = "re2"

    def __init__(self, sources):
        alternation = "|".join(f"(?:{s})" for s in sources)
        self.regex = re2.compile(b"(?m)" + alternation.encode("utf-8"), _re2_options())

    @staticmethod
    def supports(source):
        try:
            re2.compile(b"(?m)" + source.encode("utf-8"), _re2_options())
        except Exception:  # re2 raises its own error type, or ValueError
            return False
        return True

    def hits(self, data):
        # The pattern id is unknown here: classification tries every pattern.
        return [(m.end(), None) for m in self.regex.finditer(data)]


class _PythonPrefilter:
    """Python's re, helped by plain-word searches.

    Each pattern's required literals (see :mod:`engine.literals`) are found
    with ``bytes.find`` at memory speed; only a pattern with no usable literal
    runs its own regex over the block.
    """

    name = "re"

    def __init__(self, sources):
        self.owners = {}   # literal bytes -> pattern indexes that require it
        self.regexes = []  # (index, compiled) for patterns without literals
        for index, source in enumerate(sources):
            literals = required_literals(source)
            if literals is None:
                self.regexes.append((index, re.compile(source.encode("utf-8"), re.MULTILINE)))
                continue
            for literal in literals:
                self.owners.setdefault(literal.encode("utf-8"), []).append(index)

    def hits(self, data):
        found = []
        for literal, indexes in self.owners.items():
            position = data.find(literal)
            while position >= 0:
                end = position + len(literal)
                found.extend((end, index) for index in indexes)
                position = data.find(literal, end)
        for index, regex in self.regexes:
            found.extend((m.end(), index) for m in regex.finditer(data))
        return found


class Matcher:
    """All active patterns compiled once; see the module docstring."""

    def __init__(self, patterns, backend="auto"):
        self.patterns = list(patterns)
        self.backend, self._prefilter, self._slow = self._build(backend)

    def _build(self, backend):
        regexes = [p.regex for p in self.patterns]
        wanted = BACKENDS if backend == "auto" else (backend,)
        for name in wanted:
            if name == "hyperscan" and hyperscan is not None:
                sources = [_prefilter_source(r) for r in regexes + _SENTINELS]
                fast = [i for i, s in enumerate(sources) if _HyperscanPrefilter.supports(s)]
                prefilter = _HyperscanPrefilter([sources[i] for i in fast])
                return name, (prefilter, fast), self._slow_set(sources, fast)
            if name == "re2" and re2 is not None:
                sources = [_prefilter_source(r) for r in regexes + _SENTINELS]
                fast = [i for i, s in enumerate(sources) if _Re2Prefilter.supports(s)]
                prefilter = _Re2Prefilter([sources[i] for i in fast])
                return name, (prefilter, fast), self._slow_set(sources, fast)
            if name == "re":
                sources = regexes + _LITERAL_SENTINELS
                return name, (_PythonPrefilter(sources), list(range(len(sources)))), []
        raise ValueError(f"prefilter backend {backend!r} is not available here; "
                         f"choose one of auto, {', '.join(BACKENDS)}")

    @staticmethod
    def _slow_set(sources, fast):
        """Patterns the fast backend refused, each searched with Python's re."""
        fast = set(fast)
        return [(i, re.compile(s.encode("utf-8"), re.MULTILINE))
                for i, s in enumerate(sources) if i not in fast]

    @property
    def slow_patterns(self):
        """Types of the patterns the fast backend could not take."""
        return [self.patterns[i].type for i, _ in self._slow if i < len(self.patterns)]

    def hits(self, data):
        """Sorted ``(end_offset, pattern_index or None)`` of prefilter hits."""
        prefilter, ids = self._prefilter
        found = [(end, None if local is None else ids[local])
                 for end, local in prefilter.hits(data)]
        for index, regex in self._slow:
            found.extend((m.end(), index) for m in regex.finditer(data))
        found.sort(key=lambda hit: hit[0])
        return found

    def hit_records(self, data):
        """Yield ``(start, end, candidate ids or None)`` of records with hits.

        *data* starts at a record boundary. ``None`` means every pattern is a
        candidate (the regex backends do not say which one hit).
        """
        current = None
        for end_offset, index in self.hits(data):
            position = max(end_offset - 1, 0)
            if current and position < current[1]:
                if index is None or current[2] is None:
                    current[2] = None
                else:
                    current[2].add(index)
                continue
            if current:
                yield tuple(current)
            start, end = record_bounds(data, position)
            current = [start, end, None if index is None else {index}]
        if current:
            yield tuple(current)

    def classify(self, record, candidates=None):
        """Return ``(pattern, match)`` for the best pattern, ``(None, None)``
        for an unknown error, or None when the record is not a finding."""
        best = generic = None
        for index, pattern in enumerate(self.patterns):
            if candidates is not None and index not in candidates:
                continue
            if not pattern.allows_level(record.level):
                continue
            match = pattern.compiled.search(record.text)
            if match is None:
                continue
            if not pattern.generic:
                best = (pattern, match)
                break
            if generic is None:
                generic = (pattern, match)
        if best or generic:
            return best or generic
        return self._unknown(record)

    @staticmethod
    def _unknown(record):
        if record.level in _UNKNOWN_LEVELS or (
            record.level is None and _TRACEBACK_RE.search(record.text)
        ):
            return None, None
        return None
