"""Rules on top of pattern matching: whose records count, what a traceback's
frames say, and which findings are one failure.

Three rules, each applied by :class:`engine.scanner.Scanner`:

1. :func:`is_own_record`: auto_heal's own log records (its loggers, the
   watchdog's log, the ``auto-heal`` journal lines) and Odoo's messages that
   quote an auto_heal incident or fix run never become findings; otherwise a
   fix run that failed on "deadlock detected" would open a deadlock incident
   of its own, and so on forever.
2. :func:`refine`: when no specific pattern matched a record (unknown, or only
   a generic wrapper such as "Failed to load registry") but its traceback went
   through a frame that only one kind of failure passes, the record takes
   that type. A traceback through ``apply_inheritance_specs`` is a broken view
   inheritance even when the last line, or its translation, is not there.
3. :func:`absorb`: one failure, one category. Odoo reports one failure in
   several records of one process within seconds: the cause, then the
   generic wrapper ("Failed to initialize database"), then maybe the request
   that died of it (an unmatched ERROR with the same exception). Among close
   findings of one process, specific findings win over generic ones, and
   both over unknown ones of the same failure (same exception, or raw stderr
   text next to the record); a type of YIELDS_TO gives way to the more
   precise types it names. Two other specific findings of different types stay two
   categories: they are two failures. What is left of a generic type (or of
   a YIELDS_TO type) and comes again, close, from the same process and
   database is the same failure said twice ("Failed to load registry", then
   "Failed to initialize database"): it joins the first one's incident.

>>> from datetime import datetime
>>> from engine.incidents import Finding
>>> def finding(kind, second, line, generic=False, pid=7):
...     return Finding(pattern_type=kind, severity="high", fingerprint=kind, signature="",
...                    message="", path="odoo.log", line=line, pid=pid, generic=generic,
...                    timestamp=datetime(2026, 11, 29, 10, 0, second))
>>> [f.pattern_type for f in absorb([
...     finding("python_dependency_missing", 1, 1),
...     finding("registry_load_failed", 2, 9, generic=True),   # the wrapper, after its cause
...     finding("unknown", 3, 30),                             # the request that died of it
...     finding("db_deadlock", 40, 90)])]                      # much later: another failure
['python_dependency_missing', 'db_deadlock']
"""

import re
from dataclasses import dataclass, replace
from datetime import timedelta

from .patterns import UNKNOWN

# ---------------------------------------------------------------------------
# 1. auto_heal's own records

#: Loggers of the addon (``odoo.addons.auto_heal.*``) and of the watchdog
#: (``auto_heal.watchdog``), and the journal identifier of ``bin/auto-heal``.
_OWN_LOGGER = re.compile(r"^(?:odoo\.addons\.)?auto_heal(?:\.|$)")
_OWN_PROGRAM = re.compile(r"^auto[-_]heal(?:\[\d+\])?:")
#: What auto_heal's own messages say when Odoo logs them: the incident name
#: "<type>: <message>", "Fix run ...", the watchdog command. Only the logger
#: that logs a UserError of an action (odoo.http's WARNING) is read for them: a
#: login or a record name that anyone can choose must not hide a real failure.
_QUOTING_LOGGERS = frozenset({"odoo.http"})
_QUOTES_OWN = re.compile(
    r"\b[Ii]ncident [a-z][a-z0-9_]*: "
    r"|\b[Ff]ix run\b"
    r"|\bbin/auto-heal\b"
    r"|\bauto_heal\.(?:incident|fix\.run|pattern|log\.source)\b"
    r"|\bThe pattern of [a-z][a-z0-9_]*: "
)


def is_own_record(record):
    """True for auto_heal's own records and Odoo's quotes of them.

    >>> from engine.records import parse_record
    >>> def own(raw):
    ...     return is_own_record(parse_record(raw))
    >>> own(b"2026-11-29 10:00:00,000 7 ERROR prod odoo.addons.auto_heal.models.auto_heal_fix_run:"
    ...     b" fix run 4 failed: deadlock detected")
    True
    >>> own(b"2026-11-29 10:00:00,000 7 WARNING auto_heal.watchdog: restart failed: "
    ...     b"[Errno 98] Address already in use")
    True
    >>> own(b"2026-11-29 10:00:00,000 7 WARNING prod odoo.http: Incident db_deadlock: deadlock "
    ...     b"detected is resolved; this action does not apply to it.")
    True
    >>> own(b"Nov 29 10:00:00 web1 auto-heal[812]: error: [Errno 13] Permission denied: '/x'")
    True
    >>> own(b"2026-11-29 10:00:00,000 7 ERROR prod odoo.sql_db: bad query: x\\n"
    ...     b"ERROR: deadlock detected")
    False
    >>> own(b"2026-11-29 10:00:00,000 7 INFO prod odoo.addons.base.models.res_users: "
    ...     b"Login failed for db:prod login:Fix run from 203.0.113.9")
    False
    """
    logger = record.logger or ""
    if _OWN_LOGGER.match(logger):
        return True
    program = getattr(record, "program", None)
    if program and _OWN_PROGRAM.match(program + ":"):
        return True
    if record.is_raw and _OWN_PROGRAM.match(_strip_journal_stamp(record.message)):
        return True
    return logger in _QUOTING_LOGGERS and bool(_QUOTES_OWN.search(record.message))


_JOURNAL_STAMP = re.compile(r"^[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d \S+ ")


def _strip_journal_stamp(line):
    return _JOURNAL_STAMP.sub("", line, count=1)


# ---------------------------------------------------------------------------
# 2. what the frames say


@dataclass(frozen=True)
class FrameCause:
    """A traceback frame that only one kind of failure passes through."""

    type: str
    regex: str
    source: str

    def search(self, text):
        return _COMPILED[self.regex].search(text)


#: Frames whose function names Odoo 8.0 to 19.0 kept; the first that a
#: traceback shows gives the type. Specific types come before generic ones.
FRAME_CAUSES = (
    FrameCause("view_inheritance_broken",
               r'^\s*File "[^"\n]*(?:template_inheritance|ir_ui_view)\.py", line \d+, '
               r"in apply_inheritance_specs$",
               "odoo/tools/template_inheritance.py, ir_ui_view.py apply_inheritance_specs"),
    FrameCause("view_field_missing",
               r'^\s*File "[^"\n]*ir_ui_view\.py", line \d+, in postprocess_and_fields\n'
               r"\s*self\.raise_view_error\(",
               "odoo/addons/base/ir(/models)/ir_ui_view.py postprocess_and_fields (11.0-13.0)"),
    FrameCause("wkhtmltopdf_missing",
               r"^\s*File \"[^\"\n]*\", line \d+, in _get_wkhtmltopdf_bin$",
               "addons/report/models/report.py, ir_actions_report.py _get_wkhtmltopdf_bin"),
    FrameCause("smtp_failure",
               r'^\s*File "[^"\n]*ir_mail_server\.py", line \d+, in (?:connect|send_email)$',
               "odoo/addons/base/models/ir_mail_server.py connect, send_email"),
    FrameCause("db_connection_failed",
               r'^\s*File "[^"\n]*sql_db\.py", line \d+, in borrow$'
               r'|^\s*File "[^"\n]*sql_db\.py", line \d+, in __init__\n'
               r"\s*self\._cnx = pool\.borrow\(",
               "odoo/sql_db.py ConnectionPool.borrow, or Cursor.__init__ calling it"),
    FrameCause("cron_job_failed",
               r'^\s*File "[^"\n]*ir_cron\.py", line \d+, in '
               r"_(?:callback|process_job|acquire_job|run_job)$"
               r"|^\s+cron\._callback\(job\['cron_name'\], job\['ir_actions_server_id'\]\)$",
               "odoo/addons/base/models/ir_cron.py _callback, _process_job, _acquire_job; "
               "18.0 ir_cron.py:426 _run_job's call of _callback (the code line under its frame)"),
    FrameCause("registry_load_failed",
               r'^\s*File "[^"\n]*", line \d+, in preload_registries$'
               r'|^\s*File "[^"\n]*registry\.py", line \d+, in new$',
               "odoo/service/server.py preload_registries; odoo/modules/registry.py new"),
)
_COMPILED = {cause.regex: re.compile(cause.regex, re.MULTILINE) for cause in FRAME_CAUSES}
_TRACEBACK = "Traceback (most recent call last):"
#: What is left of a traceback pasted without its first line: a frame, or the
#: exception line that ends it.
_TRACEBACK_TAIL = re.compile(r'^\s*File "[^"\n]*", line \d+, in '
                             r"|^(?:[A-Za-z_]\w*\.)*[A-Z]\w*(?:Error|Exception)\b", re.MULTILINE)


def frame_cause(text, patterns, causes=FRAME_CAUSES):
    """``(pattern, match)`` of the first frame cause in *text*'s traceback.

    *patterns* maps type codes to patterns; a cause whose type is not among
    them (inactive, deleted by an admin) is skipped.

    >>> from engine.patterns import PatternSet
    >>> patterns = PatternSet.from_entries([
    ...     {"type": "view_inheritance_broken", "severity": "high", "regex": "cannot be located"},
    ... ]).by_type()
    >>> text = '''Traceback (most recent call last):
    ...   File "/opt/odoo/tools/template_inheritance.py", line 230, in apply_inheritance_specs
    ...     _("Element '%s' cannot be located in parent view") % tag
    ... ValueError: 父视图中没有找到元素 '<div id="appstore">' '''
    >>> pattern, match = frame_cause(text, patterns)
    >>> pattern.type, match.group(0).split(", in ")[1]
    ('view_inheritance_broken', 'apply_inheritance_specs')
    >>> frame_cause("no traceback here", patterns) is None
    True

    A traceback pasted without its first line still has its frames:

    >>> pattern, _ = frame_cause(text.split("\\n", 1)[1], patterns)
    >>> pattern.type
    'view_inheritance_broken'
    """
    if _TRACEBACK not in text and not _TRACEBACK_TAIL.search(text):
        return None
    for cause in causes:
        pattern = patterns.get(cause.type)
        if pattern is None:
            continue
        match = cause.search(text)
        if match:
            return pattern, match
    return None


def refine(record, outcome, patterns):
    """The matcher's *outcome* for *record*, or the type its frames give.

    Only an unknown outcome, or a generic one, is refined: a specific pattern
    that matched keeps its type. A frame of a generic type turns an unknown
    record into that generic type, never a generic one into another.
    """
    if outcome is None:
        return None
    pattern, _match = outcome
    if pattern is not None and not pattern.generic:
        return outcome
    found = frame_cause(record.text, patterns)
    if found is None:
        return outcome
    if found[0].generic and pattern is not None:
        return outcome
    return found


# ---------------------------------------------------------------------------
# 3. one failure, one category

#: How close findings of one process must be to be one failure: in time when
#: both have a timestamp, in lines otherwise (stderr text has none).
ABSORB_WINDOW = timedelta(seconds=5)
ABSORB_LINES = 300


#: Specific types whose record Odoo also writes for a more precise failure that
#: it reports next to it: close findings of those types absorb them. Odoo logs
#: "Connection to the database failed" for a refused connection, a wrong
#: password and a full server alike (odoo/sql_db.py ConnectionPool.borrow).
YIELDS_TO = {"db_connection_failed": ("db_auth_failed", "db_too_many_connections")}


def _rank(finding):
    if finding.pattern_type == UNKNOWN:
        return 0
    if finding.generic:
        return 1
    return 1.5 if finding.pattern_type in YIELDS_TO else 2


def _absorbs(strong, weak):
    """Whether *weak*, close to *strong*, says less about the same failure."""
    if _rank(weak) == 1.5:
        return strong.pattern_type in YIELDS_TO[weak.pattern_type]
    if _rank(weak) == 0:
        return _rank(strong) > 0 and _same_failure(strong, weak)
    return _rank(strong) > _rank(weak)


def _same_failure(strong, unknown):
    """Whether an *unknown* finding close to *strong* is more of its failure.

    Only when one of them is raw text with no header (the stderr side of the
    failure), or both died of the same exception (the request that died of
    it). An unrelated error of the same process a second later stays an
    incident of its own.
    """
    if strong.level is None or unknown.level is None:
        return True
    return bool(unknown.exception) and unknown.exception == strong.exception


def _close(first, second):
    """Whether *second* (later in the file) is part of *first*'s failure."""
    if first.path != second.path:
        return False
    if first.pid is not None and second.pid is not None and first.pid != second.pid:
        return False
    if first.timestamp is not None and second.timestamp is not None:
        return timedelta(0) <= second.timestamp - first.timestamp <= ABSORB_WINDOW
    return 0 <= second.line - first.line <= ABSORB_LINES


def absorb(findings):
    """Findings in file order, the weaker findings of each failure left out.

    A specific finding is yielded at once. A generic or unknown finding is held
    until it is clear whether a stronger finding of the same failure follows;
    one that follows a stronger finding of its failure is dropped at once. A
    generic finding that repeats one of its failure joins its incident
    (:func:`one_incident`).
    """
    return one_incident(_absorb(findings))


def one_incident(findings):
    """*findings*, a generic repeat of a failure given the first one's fingerprint.

    A finding of a generic or YIELDS_TO type, close after one of the same type
    from the same process and database (within the window of the first), with
    no conflicting captures, is that failure said again: Odoo logs "Failed to
    load registry" and then "Failed to initialize database" for one failure,
    "Connection to the database failed" and then the traceback of the refused
    connection. Specific types keep their fingerprints: two of their findings
    close together are two incidents when their fingerprints say so.

    >>> from datetime import datetime
    >>> from engine.incidents import Finding
    >>> def finding(kind, second, fingerprint, generic=True, database="prod", **captures):
    ...     return Finding(pattern_type=kind, severity="high", fingerprint=fingerprint,
    ...                    signature=fingerprint, message="", path="odoo.log", line=second,
    ...                    pid=7, generic=generic, database=database, captures=captures,
    ...                    timestamp=datetime(2026, 11, 29, 10, 0, second))
    >>> [f.fingerprint for f in one_incident([
    ...     finding("registry_load_failed", 1, "load"),
    ...     finding("registry_load_failed", 1, "init"),              # the same failure
    ...     finding("registry_load_failed", 2, "other", database="test"),  # another database
    ...     finding("cron_job_failed", 3, "a", action_id="4"),
    ...     finding("cron_job_failed", 4, "b", action_id="5"),       # another job
    ...     finding("smtp_failure", 5, "x", generic=False),
    ...     finding("smtp_failure", 5, "y", generic=False),          # specific: kept
    ...     finding("registry_load_failed", 30, "late")])]           # past the window
    ['load', 'load', 'other', 'a', 'b', 'x', 'y', 'late']
    """
    first = {}  # (path, pid, database, type) -> the first finding of the failure
    for finding in findings:
        if _rank(finding) in (1, 1.5):
            key = (finding.path, finding.pid, finding.database, finding.pattern_type)
            anchor = first.get(key)
            if anchor is not None and _close(anchor, finding) and _compatible(anchor, finding):
                if finding.fingerprint != anchor.fingerprint:
                    finding = replace(finding, fingerprint=anchor.fingerprint,
                                      signature=anchor.signature)
            else:
                first[key] = finding
        yield finding


def _compatible(first, second):
    """Whether no capture both findings have differs."""
    return all(first.captures[name] == value for name, value in second.captures.items()
               if name in first.captures)


def _absorb(findings):
    held = []      # generic, unknown (and YIELDS_TO) findings waiting for their cause
    specific = {}  # path -> the last specific findings, per pid
    for finding in findings:
        recent = specific.get(finding.path, {})
        # another process's finding is never close (_close): only the same pid's
        # or a pid-less one is looked at, not one per pid the log ever had
        nearby = recent.values() if finding.pid is None else [
            s for s in (recent.get(finding.pid), recent.get(None)) if s is not None]
        if any(_close(s, finding) and _absorbs(s, finding) for s in nearby):
            continue
        keep, absorbed = [], False
        for waiting in held:
            if not absorbed and _close(waiting, finding):
                if _absorbs(finding, waiting):
                    continue  # the stronger finding absorbs it
                absorbed = _absorbs(waiting, finding)
            elif not absorbed and waiting.path == finding.path and _later(finding, waiting):
                yield waiting  # its failure is over
                continue
            keep.append(waiting)
        held = keep
        if absorbed:
            continue
        if _rank(finding) == 2:
            specific.setdefault(finding.path, {})[finding.pid] = finding
            yield finding
        else:
            held.append(finding)
    yield from held


def _later(finding, waiting):
    """Whether *finding* is past the window of *waiting*: it can be released."""
    if waiting.pid is not None and finding.pid is not None and waiting.pid != finding.pid:
        if waiting.timestamp is None or finding.timestamp is None:
            return False
        return finding.timestamp - waiting.timestamp > ABSORB_WINDOW
    return True
