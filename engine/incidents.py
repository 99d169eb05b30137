"""Findings and incidents.

A :class:`Finding` is one record (or one check result) that matched a pattern,
or an error that matched none (``unknown``). Findings with one fingerprint
fold into one :class:`Incident`: count, first and last seen, and the sample
and source of the first occurrence.

>>> from datetime import datetime
>>> def finding(second, line):
...     return Finding(pattern_type="db_deadlock", severity="high", fingerprint="f1",
...                    signature="s", message="deadlock detected", path="odoo.log", line=line,
...                    timestamp=datetime(2026, 11, 29, 10, 0, second), sample="...")
>>> [incident] = aggregate([finding(5, 50), finding(1, 10), finding(9, 90)])
>>> incident.count, incident.first_seen.second, incident.last_seen.second, incident.source_line
(3, 1, 9, 10)
>>> sorted(incident.to_dict())
['captures', 'count', 'database', 'exception', 'fingerprint', 'first_seen', 'last_seen', \
'message', 'pattern', 'sample', 'severity', 'signature', 'source']
"""

from dataclasses import dataclass, field
from datetime import datetime

from .secrets import mask_secrets

#: A sample keeps the head and the tail of a record: the header says what
#: failed and the end of a traceback says why.
SAMPLE_HEAD_LINES = 30
SAMPLE_TAIL_LINES = 15
SAMPLE_MAX_CHARS = 4000


def make_sample(text):
    """A bounded, secret-masked excerpt of a record's text.

    >>> lines = "\\n".join(f"line {i}" for i in range(100))
    >>> sample = make_sample(lines)
    >>> sample.count("\\n"), "[55 lines omitted]" in sample
    (45, True)
    >>> make_sample("connect failed: postgresql://odoo:pw@db/prod")
    'connect failed: postgresql://odoo:***@db/prod'
    """
    # Masked before it is cut: a cut must not leave half a secret that no rule
    # recognises (a URL without its "@", a key without its BEGIN line).
    lines = mask_secrets(text).split("\n")
    keep = SAMPLE_HEAD_LINES + SAMPLE_TAIL_LINES
    if len(lines) > keep:
        omitted = len(lines) - keep
        lines = (lines[:SAMPLE_HEAD_LINES] + [f"[{omitted} lines omitted]"]
                 + lines[-SAMPLE_TAIL_LINES:])
    sample = "\n".join(lines)
    if len(sample) > SAMPLE_MAX_CHARS:
        half = SAMPLE_MAX_CHARS // 2
        sample = sample[:half] + "\n[...]\n" + sample[-half:]
    return mask_secrets(sample)


@dataclass(slots=True)
class Finding:
    """One matched record or check result."""

    pattern_type: str
    severity: str
    fingerprint: str
    signature: str
    message: str
    path: str = ""
    line: int = 0
    timestamp: datetime | None = None
    sample: str = ""
    level: str | None = None
    database: str | None = None
    logger: str | None = None
    pid: int | None = None
    exception: str = ""
    captures: dict = field(default_factory=dict)
    generic: bool = False
    fix_script: str = ""

    def to_dict(self):
        return {
            "pattern": self.pattern_type, "severity": self.severity,
            "fingerprint": self.fingerprint, "signature": self.signature,
            "message": self.message, "timestamp": _iso(self.timestamp),
            "level": self.level, "database": self.database, "logger": self.logger,
            "pid": self.pid, "exception": self.exception, "captures": dict(self.captures),
            "sample": self.sample, "source": {"path": self.path, "line": self.line},
            "fix_script": self.fix_script,
        }


def _iso(moment):
    return moment.isoformat(sep=" ") if moment else None


@dataclass
class Incident:
    """Findings grouped by fingerprint."""

    fingerprint: str
    pattern: str
    severity: str
    signature: str
    message: str
    count: int = 0
    first_seen: datetime | None = None
    last_seen: datetime | None = None
    sample: str = ""
    source_path: str = ""
    source_line: int = 0
    database: str | None = None
    exception: str = ""
    captures: dict = field(default_factory=dict)
    fix_script: str = ""
    _first_key: tuple = field(default=(), repr=False)

    @classmethod
    def from_finding(cls, finding):
        incident = cls(
            fingerprint=finding.fingerprint, pattern=finding.pattern_type,
            severity=finding.severity, signature=finding.signature, message=finding.message,
            database=finding.database, exception=finding.exception,
            fix_script=finding.fix_script,
        )
        incident.add(finding)
        return incident

    def add(self, finding):
        self.count += 1
        moment = finding.timestamp
        if moment is not None:
            if self.first_seen is None or moment < self.first_seen:
                self.first_seen = moment
            if self.last_seen is None or moment > self.last_seen:
                self.last_seen = moment
        # The first occurrence (by time, then position) gives sample and source.
        key = (moment or datetime.max, finding.path, finding.line)
        if not self._first_key or key < self._first_key:
            self._first_key = key
            self.sample = finding.sample
            self.source_path = finding.path
            self.source_line = finding.line
            self.captures = dict(finding.captures)
            self.message = finding.message

    def to_dict(self):
        """The shape ``bin/auto-heal detect --json`` prints for one incident."""
        return {
            "pattern": self.pattern, "severity": self.severity, "count": self.count,
            "fingerprint": self.fingerprint, "signature": self.signature,
            "message": self.message, "database": self.database, "exception": self.exception,
            "first_seen": _iso(self.first_seen), "last_seen": _iso(self.last_seen),
            "sample": self.sample,
            "source": {"path": self.source_path, "line": self.source_line},
            "captures": dict(self.captures),
        }


def aggregate(findings, incidents=None):
    """Fold *findings* into incidents keyed by fingerprint, in order of appearance.

    Pass the dict of a previous call as *incidents* to keep folding.
    """
    incidents = {} if incidents is None else incidents
    for finding in findings:
        incident = incidents.get(finding.fingerprint)
        if incident is None:
            incidents[finding.fingerprint] = Incident.from_finding(finding)
        else:
            incident.add(finding)
    return list(incidents.values())
