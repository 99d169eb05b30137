"""What a check is written with: the context of a run, queries, statuses, readable figures.

A check is a function ``(cursor, settings, ctx) -> [CheckResult]`` over a
DB-API cursor (Odoo's ``env.cr`` or a psycopg2 cursor: ``execute`` with
``%s`` parameters, ``fetchall``, ``description``), registered with
:func:`engine.checks.registry.check`. Nothing here imports odoo.

The status of a check result maps to the severity of its finding: a warning
has the severity of the check's pattern, a critical one a rank more.

>>> r = CheckResult("cron_failing", WARNING, 2, ">= 1 failure",
...                 "Cron 'Mail: send' (id 7) failed 2 times in a row", subject="cron:7")
>>> r.to_dict()["subject"], severity_for("medium", r.status), severity_for("medium", CRITICAL)
('cron:7', 'medium', 'high')
"""

import re
from dataclasses import dataclass, field

from ..health import CRITICAL, OK, STATUSES, WARNING, CheckResult, worst
from ..patterns import SEVERITIES, SEVERITY_RANK
from ..secrets import mask_secrets
from .registry import resolve_settings

__all__ = ["CRITICAL", "NOW_UTC", "OK", "PROBED_TABLES", "STATUSES", "WARNING", "CheckContext",
           "CheckResult", "by_thresholds", "human_bytes", "human_duration", "one_line",
           "resolve_settings", "severity_for", "worst"]


#: Odoo's ir_cron columns are UTC timestamps without time zone.
NOW_UTC = "(clock_timestamp() AT TIME ZONE 'UTC')"

_SAMPLE_QUERY_CHARS = 300
_SQL_LITERAL = re.compile(r"'(?:[^']|'')*'")


#: Tables some checks need; :class:`CheckContext` says which exist.
PROBED_TABLES = ("ir_cron_progress", "ir_cron_trigger", "queue_job", "mail_mail",
                 "ir_model_constraint", "ir_model_fields", "ir_model_data", "ir_model",
                 "auto_heal_http_origin")


@dataclass
class CheckContext:
    """What one run knows besides the thresholds: earlier counters, catalog facts.

    ``facts`` is what the caller knows outside the database (the running
    server's options, the host's CPUs and memory): the deployment checks
    read it (:mod:`engine.checks.deployment`).
    """

    previous: dict = field(default_factory=dict)
    counters: dict = field(default_factory=dict)
    database: str = ""
    server_version: int = 0
    tables: frozenset = frozenset()
    now: float = 0.0  # database clock, epoch seconds
    facts: dict = field(default_factory=dict)

    @classmethod
    def probe(cls, cursor, previous=None):
        exists = ", ".join("to_regclass('%s') IS NOT NULL AS %s" % (t, t) for t in PROBED_TABLES)
        rows = _query(cursor, """
            SELECT current_database() AS database,
                   current_setting('server_version_num')::int AS server_version,
                   %s,
                   EXTRACT(EPOCH FROM clock_timestamp())::float8 AS now""" % exists)
        row = rows[0]
        tables = frozenset(t for t in PROBED_TABLES if row[t])
        return cls(previous=dict(previous or {}), database=row["database"],
                   server_version=row["server_version"], tables=tables, now=row["now"])


# --------------------------------------------------------------------------
# pure helpers


def by_thresholds(value, warn, crit):
    """Status of *value* where higher is worse.

    >>> by_thresholds(5, 10, 20), by_thresholds(10, 10, 20), by_thresholds(25, 10, 20)
    ('ok', 'warning', 'critical')
    """
    if value >= crit:
        return CRITICAL
    if value >= warn:
        return WARNING
    return OK


def severity_for(pattern_severity, status):
    """The severity of a finding: the pattern's for a warning, a rank more when critical.

    >>> severity_for("low", WARNING), severity_for("high", CRITICAL), \
severity_for("critical", CRITICAL)
    ('low', 'critical', 'critical')
    """
    rank = SEVERITY_RANK[pattern_severity] + (1 if status == CRITICAL else 0)
    return SEVERITIES[min(rank, len(SEVERITIES) - 1)]


def human_duration(seconds):
    """Seconds, readable.

    >>> human_duration(0.05), human_duration(42), human_duration(600), human_duration(9000), \
human_duration(3 * 86400)
    ('0.1 s', '42 s', '10 min', '2.5 h', '3.0 d')
    """
    seconds = float(seconds or 0)
    if seconds < 10:
        return "%.1f s" % seconds
    if seconds < 120:
        return "%d s" % seconds
    if seconds < 2 * 3600:
        return "%d min" % (seconds // 60)
    if seconds < 2 * 86400:
        return "%.1f h" % (seconds / 3600)
    return "%.1f d" % (seconds / 86400)


def human_bytes(n):
    """Bytes, readable.

    >>> human_bytes(1536), human_bytes(5 * 1024 ** 3), human_bytes(-2 * 1024 ** 2)
    ('1.5 KiB', '5.0 GiB', '-2.0 MiB')
    """
    sign, n = ("-" if n < 0 else ""), abs(float(n))
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return sign + (("%d %s" % (n, unit)) if unit == "B" else ("%.1f %s" % (n, unit)))
        n /= 1024.0


def one_line(exc):
    """An exception as one masked line: its class and the first line of its text.

    >>> one_line(ValueError("bad\\nsecond line"))
    'ValueError: bad'
    >>> one_line(RuntimeError("connect postgresql://u:pw@h/db failed"))
    'RuntimeError: connect postgresql://u:***@h/db failed'
    """
    text = str(exc).strip().split("\n")[0].strip()
    name = type(exc).__name__
    return mask_secrets("%s: %s" % (name, text) if text else name)



def _query_text(text):
    """A query excerpt for messages: one line, bounded, masked.

    String literals become ``'?'``: Odoo interpolates its parameters into the
    query text, so they may hold passwords or personal data.

    >>> _query_text("SELECT *\\n  FROM res_users\\n WHERE login = 'a@b.c' AND x = 'it''s'")
    "SELECT * FROM res_users WHERE login = '?' AND x = '?'"
    """
    text = _SQL_LITERAL.sub("'?'", text or "")
    text = " ".join(text.split())
    if len(text) > _SAMPLE_QUERY_CHARS:
        text = text[:_SAMPLE_QUERY_CHARS] + "..."
    return mask_secrets(text)


def _names(text):
    return {part.strip() for part in (text or "").split(",") if part.strip()}


def _query(cursor, sql, params=None):
    """Rows of *sql* as dicts (column names from ``cursor.description``)."""
    if params is None:
        cursor.execute(sql)
    else:
        cursor.execute(sql, params)
    names = [column[0] for column in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def _ok(check, value, threshold, message, subject, details=None):
    return [CheckResult(check, OK, value, threshold, message, details or {}, subject)]
