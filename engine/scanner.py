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

import os
from dataclasses import dataclass, field

from .classify import ABSORB_WINDOW, absorb, is_own_record, refine
from .fingerprint import fingerprint, innermost_exception
from .incidents import Finding, make_sample
from .matcher import Matcher
from .patterns import UNKNOWN, PatternSet
from .reader import Block, LogReader
from .records import parse_record
from .secrets import mask_secrets

#: The repository (and addon) root, and its data/patterns.json.
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_PATTERNS = os.path.join(REPO_ROOT, "data", "patterns.json")

__all__ = ["ABSORB_WINDOW", "DEFAULT_PATTERNS", "REPO_ROOT", "ScanResult", "Scanner",
           "make_finding"]

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


class Scanner:
    """Match records of log files against a :class:`PatternSet`."""

    def __init__(self, patterns, backend="auto"):
        if isinstance(patterns, PatternSet):
            patterns = patterns.patterns
        self.matcher = Matcher(patterns, backend=backend)
        self._by_type = {pattern.type: pattern for pattern in self.matcher.patterns}

    @property
    def backend(self):
        return self.matcher.backend

    def scan_file(self, path, cursor=None, *, final=True, settle_seconds=10.0, max_bytes=None):
        """Scan the new part of *path* after *cursor* (all of it without one).

        ``final=False`` is an incremental scan: a last record that may still
        grow is left for the next scan. Raises LogSourceError when the file
        cannot be read; nothing else about the file's content raises.
        """
        reader = LogReader(path, cursor, final=final, settle_seconds=settle_seconds,
                           max_bytes=max_bytes)
        findings = list(self.iter_findings(reader.blocks()))
        return ScanResult(
            path=path, findings=findings, cursor=reader.cursor,
            bytes_scanned=reader.bytes_read, held_back=reader.held_back,
            warnings=reader.warnings, rotated=reader.rotated, truncated=reader.truncated,
        )

    def scan_bytes(self, data, path="<memory>"):
        """All findings in *data*, read as a whole file (tests, samples)."""
        return list(self.iter_findings([Block(path, data, 0, 1)]))

    def iter_findings(self, blocks):
        """Findings of *blocks*, generic ones absorbed by what they wrap."""
        return absorb(finding for block in blocks for finding in self._block_findings(block))

    def _block_findings(self, block):
        data = block.data
        counted_to, line = 0, block.line
        for start, end, candidates in self.matcher.hit_records(data):
            line += data.count(b"\n", counted_to, start)
            counted_to = start
            record = parse_record(data[start:end], path=block.path, line=line,
                                  offset=block.offset + start)
            if is_own_record(record):
                continue
            if record.prefix:  # the prefilter saw the journal's or docker's prefixes
                candidates = None
            outcome = refine(record, self.matcher.classify(record, candidates), self._by_type)
            if outcome is not None:
                yield make_finding(record, *outcome)


def make_finding(record, pattern, match):
    """A :class:`Finding` for *record*; *pattern* None means unknown."""
    exception = innermost_exception(record.text)
    message = record.message
    if record.is_raw:
        # Raw text has no header: the line that matched says the most.
        anchor = match.start() if match is not None else None
        if anchor is None and exception:
            message = f"{exception[0]}: {exception[1]}" if exception[1] else exception[0]
        elif anchor is not None:
            line_start = record.text.rfind("\n", 0, anchor) + 1
            line_end = record.text.find("\n", anchor)
            message = record.text[line_start:line_end if line_end >= 0 else None].strip()
    if pattern is None:
        kind, severity = UNKNOWN, _UNKNOWN_SEVERITY.get(record.level, "high")
        fields, captures = {}, {}
    else:
        kind, severity = pattern.type, pattern.severity
        captures = {k: mask_secrets(v) for k, v in pattern.captures(match).items()}
        fields = {name: captures.get(name, "") for name in pattern.fingerprint_fields}
    # masked before the fingerprint normalises it: a normalised secret ("<str>" for
    # part of a quoted value) is no longer recognisable in the signature
    message = mask_secrets(message)
    digest, signature = fingerprint(kind, message, database=record.database,
                                    exception=exception, fields=fields)
    return Finding(
        pattern_type=kind,
        severity=severity,
        fingerprint=digest,
        signature=mask_secrets(signature),
        message=mask_secrets(message),
        path=record.path,
        line=record.line,
        timestamp=record.timestamp,
        sample=make_sample(record.text),
        level=record.level,
        database=record.database,
        logger=record.logger,
        pid=record.pid,
        exception=exception[0] if exception else "",
        captures=captures,
        generic=bool(pattern and pattern.generic),
        fix_script=pattern.fix_script if pattern else "",
    )
