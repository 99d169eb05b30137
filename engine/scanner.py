"""Scan log files: reader + matcher + fingerprints = findings.

This is the one entry point the addon's cron and the watchdog share::

    scanner = Scanner(load_patterns("data/patterns.json"))
    result = scanner.scan_file("/var/log/odoo/odoo.log", cursor, final=False)
    incidents = aggregate(result.findings)
    save(result.cursor)

Memory stays flat whatever the file's size: blocks are read, matched and
dropped one at a time.

"Failed to load registry" and "Failed to initialize database" wrap the real
error, often in the next record of the same process. A finding of a generic
pattern is therefore held until the next finding of the same process: when
that one is specific and comes within a few seconds, it absorbs the generic
one (:mod:`engine.classify` has this rule, the frame causes, and the rule that
auto_heal's own records are no findings). The real Odoo 18 sample shows it:

>>> from engine.patterns import load_patterns
>>> scanner = Scanner(load_patterns(DEFAULT_PATTERNS))
>>> sample = os.path.join(REPO_ROOT, "tests/samples/real/odoo18-numbercall-startup-failure.log")
>>> result = scanner.scan_file(sample)
>>> [f.pattern_type for f in result.findings if f.severity != "low"]
['cron_field_deprecated']
>>> finding = [f for f in result.findings if f.pattern_type == "cron_field_deprecated"][0]
>>> finding.captures["xml_file"], finding.captures["xml_line"], finding.line
('/srv/addons/legacy_cron/data/cron.xml', '3', 18)
"""

import json
import os
import re
from dataclasses import dataclass, field
from datetime import datetime

from .classify import ABSORB_WINDOW, FRAME_CAUSES, absorb, is_own_record, refine
from .fingerprint import cached_fingerprint, innermost_exception
from .incidents import Finding, Incident, make_sample
from .matcher import Matcher
from .patterns import UNKNOWN, PatternSet
from .reader import Block, LogReader
from .records import HEADER_START, MAX_RECORD_BYTES, parse_record, record_bytes, regex_view
from .secrets import mask_secrets

#: The repository (and addon) root, and its data/patterns.json.
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_PATTERNS = os.path.join(REPO_ROOT, "data", "patterns.json")

__all__ = ["ABSORB_WINDOW", "DEFAULT_PATTERNS", "REPO_ROOT", "ScanResult", "Scanner",
           "make_finding"]

_HEADER_AFTER_START = re.compile(b"\n(?=" + HEADER_START.pattern + b")")

_UNKNOWN_SEVERITY = {"CRITICAL": "critical", "ERROR": "medium", None: "high"}


@dataclass
class ScanResult:
    """What one scan of one file found, and where the next scan starts."""

    path: str
    findings: list = field(default_factory=list)
    cursor: object = None
    bytes_scanned: int = 0
    held_back: int = 0
    warnings: list = field(default_factory=list)
    rotated: bool = False
    truncated: bool = False
    #: How many findings the scan made (also when they were folded, not kept).
    finding_count: int = 0


class Scanner:
    """Match records of log files against a :class:`PatternSet`.

    ``cache_dir`` is a folder of the caller's own where the compiled pattern
    database is kept between processes (see :mod:`engine.matcher`).
    """

    def __init__(self, patterns, backend="auto", cache_dir=None):
        if isinstance(patterns, PatternSet):
            patterns = patterns.patterns
        # The frames refine() looks for ride along in hyperscan's pass: a
        # record where none of them hit needs no frame search in Python.
        self.matcher = Matcher(patterns, backend=backend, cache_dir=cache_dir,
                               watch=[_byte_superset(cause.regex) for cause in FRAME_CAUSES])
        self._by_type = {pattern.type: pattern for pattern in self.matcher.patterns}

    @property
    def backend(self):
        return self.matcher.backend

    def scan_file(self, path, cursor=None, *, final=True, settle_seconds=10.0, max_bytes=None,
                  incidents=None):
        """Scan the new part of *path* after *cursor* (all of it without one).

        ``final=False`` is an incremental scan: a last record that may still
        grow is left for the next scan. Raises LogSourceError when the file
        cannot be read; nothing else about the file's content raises.

        With *incidents* (a dict, as :func:`engine.incidents.aggregate` keeps
        it), findings are folded into it as they come and not kept, so memory
        does not grow with the number of findings: ``findings`` stays empty
        and ``finding_count`` says how many there were.
        """
        reader = LogReader(path, cursor, final=final, settle_seconds=settle_seconds,
                           max_bytes=max_bytes)
        findings = self.iter_findings(reader.blocks())
        if incidents is None:
            findings = list(findings)
            count = len(findings)
        else:
            count = fold(findings, incidents, spill=True)
            findings = []
        return ScanResult(
            path=path, findings=findings, cursor=reader.cursor,
            bytes_scanned=reader.bytes_read, held_back=reader.held_back,
            warnings=reader.warnings, rotated=reader.rotated, truncated=reader.truncated,
            finding_count=count,
        )

    def scan_bytes(self, data, path="<memory>"):
        """All findings in *data*, read as a whole file (tests, samples)."""
        return list(self.iter_findings([Block(path, data, 0, 1)]))

    def iter_findings(self, blocks):
        """Findings of *blocks*, generic ones absorbed by what they wrap."""
        return absorb(finding for block in blocks for finding in self._block_findings(block))

    def _block_findings(self, block):
        """Findings of one block: one per record, one per pattern and record.

        A record longer than the reader's block limit arrives in several
        blocks (``continued``); its later parts give no finding of a type an
        earlier part already gave.
        """
        data = block.data
        counted_to, line = 0, block.line
        matcher = self.matcher
        continuing = block.continued and self._open_path == block.path
        carried = self._open_types if continuing else set()
        # The types of the record still open at the block's end: the carried
        # ones while no header starts a new record in this block.
        open_types = carried if continuing and not _HEADER_AFTER_START.search(data) else set()
        watched = matcher.watched
        for start, end, candidates in matcher.hit_records(data):
            if watched is not None and candidates is not None and candidates <= watched:
                continue  # only a frame hit: no pattern and no error, so no finding
            line += data.count(b"\n", counted_to, start)
            counted_to = start
            types = carried if continuing and start == 0 else set()
            if end == len(data):  # the record may go on in the next block
                open_types = types
            record = parse_record(record_bytes(data, start, end), path=block.path, line=line,
                                  offset=block.offset + start)
            if is_own_record(record):
                continue
            if record.prefix:  # the prefilter saw the journal's or docker's prefixes
                candidates = None
            text = regex_view(record.text)
            outcome = matcher.classify(record, candidates, text)
            if (watched is None or candidates is None or not candidates.isdisjoint(watched)
                    or end - start > MAX_RECORD_BYTES):  # a cut record: search its text
                outcome = refine(record, outcome, self._by_type)
            if outcome is None:
                continue
            kind = outcome[0].type if outcome[0] is not None else UNKNOWN
            if kind in types:
                continue
            types.add(kind)
            yield make_finding(record, *outcome, text=text)
        self._open_path, self._open_types = block.path, open_types

    _open_path, _open_types = None, set()


def _byte_superset(regex):
    """*regex* for a byte-wise engine, matching wherever Python's ``re`` would.

    On text, ``\\s`` and ``\\d`` also match non-ASCII spaces and digits, whose
    UTF-8 bytes are all 0x80 or above; so they become classes that take those
    bytes too, and the byte-wise engine never misses what ``re`` finds.

    >>> print(_byte_superset(r'^\\s*File "[^"\\n]*", line \\d+, in f$'))
    ^[\\s\\x1c-\\x1f\\x80-\\xff]*File "[^"\\n]*", line [\\d\\x80-\\xff]+, in f$
    """
    out, i, in_class = [], 0, False
    while i < len(regex):
        char = regex[i]
        if char == "\\" and i + 1 < len(regex):
            pair = regex[i:i + 2]
            if not in_class and pair == "\\s":
                pair = "[\\s\\x1c-\\x1f\\x80-\\xff]"
            elif not in_class and pair == "\\d":
                pair = "[\\d\\x80-\\xff]"
            elif in_class and pair in ("\\s", "\\d", "\\w", "\\S", "\\D", "\\W"):
                pair += "\\x80-\\xff"
            out.append(pair)
            i += 2
            continue
        if char == "[" and not in_class:
            in_class = True
        elif char == "]" and in_class and out and out[-1] not in ("[", "[^"):
            in_class = False
        out.append(char)
        i += 1
    return "".join(out)


def make_finding(record, pattern, match, text=None):
    """A :class:`Finding` for *record*; *pattern* None means unknown.

    *text* is what *match* was searched in (the record's regex view). The
    finding's sample is made from the record's text only when it is read
    (:func:`fold` reads it for an incident's first occurrence only).
    """
    exception = innermost_exception(record.text)
    message = record.message
    if record.is_raw:
        # Raw text has no header: the line that matched says the most.
        anchor = match.start() if match is not None else None
        searched = record.text if text is None else text
        if anchor is None and exception:
            message = f"{exception[0]}: {exception[1]}" if exception[1] else exception[0]
        elif anchor is not None:
            line_start = searched.rfind("\n", 0, anchor) + 1
            line_end = searched.find("\n", anchor)
            message = searched[line_start:line_end if line_end >= 0 else None].strip()
    if pattern is None:
        kind, severity = UNKNOWN, _UNKNOWN_SEVERITY.get(record.level, "high")
        fields = None
    else:
        kind, severity = pattern.type, pattern.severity
        captures = pattern.captures(match) if match is not None else {}
        fields = {name: mask_secrets(captures.get(name) or "")
                  for name in pattern.fingerprint_fields}
    # masked before the fingerprint normalises it: a normalised secret ("<str>" for
    # part of a quoted value) is no longer recognisable in the signature
    message = mask_secrets(message)
    digest, signature = cached_fingerprint(kind, message, database=record.database,
                                           exception=exception, fields=fields)
    finding = _LazyFinding(
        pattern_type=kind,
        severity=severity,
        fingerprint=digest,
        signature=_masked_signature(signature),
        message=None,
        path=record.path,
        line=record.line,
        timestamp=record.timestamp,
        sample=None,
        level=record.level,
        database=record.database,
        logger=record.logger,
        pid=record.pid,
        exception=exception[0] if exception else "",
        captures=None,
        generic=bool(pattern and pattern.generic),
        fix_script=pattern.fix_script if pattern else "",
    )
    finding._text, finding._message, finding._match = record.text, message, match
    finding._pattern = pattern
    return finding


_masked = {}


def _masked_signature(signature):
    found = _masked.get(signature)
    if found is None:
        if len(_masked) > 1 << 13:
            _masked.clear()
        found = _masked[signature] = mask_secrets(signature)
    return found


# The slots under the properties below.
_SAMPLE = Finding.__dict__["sample"]
_MESSAGE = Finding.__dict__["message"]
_CAPTURES = Finding.__dict__["captures"]


class _LazyFinding(Finding):
    """A :class:`Finding` whose sample, masked message and captures are made
    when first read, then kept: most findings only add to a count."""

    __slots__ = ("_text", "_message", "_match", "_pattern")

    @property
    def sample(self):
        value = _SAMPLE.__get__(self)
        if value is None:
            value = make_sample(self._text)
            _SAMPLE.__set__(self, value)
            self._text = None
        return value

    @sample.setter
    def sample(self, value):
        _SAMPLE.__set__(self, value)

    @property
    def message(self):
        value = _MESSAGE.__get__(self)
        if value is None:
            value = mask_secrets(self._message)
            _MESSAGE.__set__(self, value)
        return value

    @message.setter
    def message(self, value):
        _MESSAGE.__set__(self, value)

    @property
    def captures(self):
        value = _CAPTURES.__get__(self)
        if value is None:
            match, pattern = self._match, self._pattern
            value = {} if match is None or pattern is None else {
                k: mask_secrets(v) for k, v in pattern.captures(match).items() if v is not None}
            _CAPTURES.__set__(self, value)
            self._match = None
        return value

    @captures.setter
    def captures(self, value):
        _CAPTURES.__set__(self, value)

    def _forget(self):
        """Not a first occurrence: what only a first occurrence shows is not kept."""
        _SAMPLE.__set__(self, "")
        _MESSAGE.__set__(self, "")
        _CAPTURES.__set__(self, {})
        self._text = self._message = self._match = self._pattern = None


_SPILLED = ("signature", "message", "sample", "source_path", "source_line", "database",
            "exception", "captures", "fix_script")


class _Spill:
    """An anonymous temporary file holding what incidents show but never count by."""

    def __init__(self):
        import tempfile  # only detect's one-shot scans spill

        self.file = tempfile.TemporaryFile(prefix="auto_heal_incidents_")  # noqa: SIM115
        self.end, self.at_end = 0, True

    def put(self, values):
        # a path of non-UTF-8 bytes is a str with surrogates: kept as they are
        raw = json.dumps(values, ensure_ascii=False).encode("utf-8", "surrogatepass")
        if not self.at_end:  # a seek flushes the buffer: only after a read
            self.file.seek(self.end)
            self.at_end = True
        self.file.write(raw)
        where = (self.end, len(raw))
        self.end += len(raw)
        return where

    def get(self, where):
        self.file.seek(where[0])
        self.at_end = False
        return json.loads(self.file.read(where[1]).decode("utf-8", "surrogatepass"))


def _spilled(name):
    def get(self):
        pending = self._pending
        if pending is not None and name in pending:
            return pending[name]
        if self._loaded is not None:
            return self._loaded[name]
        return self._spill.get(self._where)[name]

    def put(self, value):
        if self._pending is None:
            self._pending = {}
        self._pending[name] = value

    return property(get, put)


class _SpilledIncident:
    """An :class:`Incident` whose texts (sample, message, signature...) live in a
    :class:`_Spill`: memory holds its counts only, however many incidents a
    large log makes (a slotted object of about 100 bytes, where an Incident's
    dict of 16 fields takes about a kilobyte: 17,775 incidents of the 1 GB
    yardstick). Reading a text loads it again; nothing is cached. It is read
    and folded as an Incident is, by Incident's own methods."""

    __slots__ = ("fingerprint", "pattern", "severity", "count", "first_seen", "last_seen",
                 "_first_key", "_spill", "_where", "_pending", "_loaded")

    for _name in _SPILLED:
        locals()[_name] = _spilled(_name)
    del _name

    def __init__(self, fingerprint, pattern, severity, signature, message, database=None,
                 exception="", fix_script=""):
        self.fingerprint, self.pattern, self.severity = fingerprint, pattern, severity
        self.count, self.first_seen, self.last_seen, self._first_key = 0, None, None, ()
        self._spill = self._where = self._loaded = None
        # Incident's defaults for the texts, until the first flush writes them
        self._pending = {"signature": signature, "message": message, "sample": "",
                         "source_path": "", "source_line": 0, "database": database,
                         "exception": exception, "captures": {}, "fix_script": fix_script}

    from_finding = classmethod(Incident.from_finding.__func__)
    add = Incident.add

    def to_dict(self):
        self._loaded = self._spill.get(self._where)  # one read
        try:
            return Incident.to_dict(self)
        finally:
            self._loaded = None

    def _flush(self, spill):
        pending, self._pending = self._pending, None
        if not pending:
            return
        values = spill.get(self._where) if self._where is not None else {}
        values.update(pending)
        if isinstance(values.get("captures"), dict):
            values["captures"] = dict(values["captures"])
        self._spill = spill
        self._where = spill.put(values)


def fold(findings, incidents, spill=False):
    """Fold *findings* into *incidents* like :func:`engine.incidents.aggregate`.

    Returns how many findings there were. A finding that is not the first
    occurrence of its incident never makes its sample. With *spill*, new
    incidents keep their texts in a temporary file (see _SpilledIncident).
    """
    store = _Spill() if spill else None
    count = 0
    for finding in findings:
        count += 1
        incident = incidents.get(finding.fingerprint)
        if incident is None:
            if store is None:
                incidents[finding.fingerprint] = Incident.from_finding(finding)
            else:
                incident = incidents[finding.fingerprint] = _SpilledIncident.from_finding(finding)
                incident._flush(store)
            continue
        key = (finding.timestamp or _LATEST, finding.path, finding.line)
        if isinstance(finding, _LazyFinding) and key >= incident._first_key:
            finding._forget()  # not the first occurrence: sample, message, captures unused
        incident.add(finding)
        if isinstance(incident, _SpilledIncident):
            incident._flush(incident._spill)
    return count


_LATEST = datetime.max
