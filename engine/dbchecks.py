"""Database checks: pure functions over a DB-API cursor.

Each check reads an Odoo 18 database through a cursor (Odoo's ``env.cr`` or a
psycopg2 cursor: ``execute`` with ``%s`` parameters, ``fetchall``,
``description``) and returns :class:`CheckResult` objects: a status (ok,
warning, critical), the measured value, its threshold, a message and the
*subject* it is about (a cron, a module, a backend pid, a table), so that
findings group per subject. Nothing here imports odoo; the addon's cron and
the host watchdog call the same code::

    run_checks(cursor, settings, previous)
      |  SAVEPOINT auto_heal_checks
      |  for each check:
      |      set_config(statement_timeout, lock_timeout, local)
      |      check(cursor, settings, ctx) --> [CheckResult, ...]   (or one error line)
      |      ROLLBACK TO SAVEPOINT          (undoes the timeouts and the lock probe)
      |  RELEASE SAVEPOINT
      v
    CheckRun(results, errors, counters, stats)
      |                               |
      | to_findings(results, patterns)| counters: the next run's ``previous``
      v                               v  (deadlock counter, database size, lock times)
    [Finding] --> the incident machinery, like log findings

Rules every check follows:

- bounded: each query has a LIMIT (``max_rows``) or reads catalog views, runs
  under ``statement_timeout`` and ``lock_timeout``, and never scans a big
  table (ir_attachment is sampled through its primary key);
- read-only: the one lock taken (the probe of running crons, ``FOR NO KEY
  UPDATE SKIP LOCKED`` as Odoo's own cron workers do) is released at once by
  the rollback to the savepoint;
- a failing check (missing table, timeout) records one error line and the
  others still run;
- every check returns at least one result: its problems, one per subject, or
  a single ``ok`` result that sums it up (for the health endpoint).

The status of a check result maps to the severity of its finding: a warning
has the severity of the check's pattern, a critical one a rank more.

>>> r = CheckResult("cron_failing", WARNING, 2, ">= 1 failure",
...                 "Cron 'Mail: send' (id 7) failed 2 times in a row", subject="cron:7")
>>> r.to_dict()["subject"], severity_for("medium", r.status), severity_for("medium", CRITICAL)
('cron:7', 'medium', 'high')
"""

import inspect
import json
import os
import random
import re
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timezone
from typing import NamedTuple

from .fingerprint import fingerprint
from .health import CRITICAL, OK, WARNING, worst
from .incidents import Finding, make_sample
from .patterns import SEVERITIES, SEVERITY_RANK, PatternSet
from .secrets import mask_secrets

#: Odoo 18's ir_cron.py: a cron is switched off at a failure once it has
#: failed MIN_FAILURE_COUNT_BEFORE_DEACTIVATION times in a row AND its first
#: failure is older than MIN_DELTA_BEFORE_DEACTIVATION; three timeouts in a row
#: (CONSECUTIVE_TIMEOUT_FOR_FAILURE) count as one failure.
ODOO_DEACTIVATION_FAILURES = 5
ODOO_DEACTIVATION_DAYS = 7
ODOO_CONSECUTIVE_TIMEOUTS = 3

#: Default thresholds. ``settings`` passed to a check override them by key;
#: values given as text (ir.config_parameter) are converted to the type here.
DEFAULTS = {
    # every check
    "statement_timeout_ms": 5000,  # each query of a check is cancelled after this
    "lock_timeout_ms": 1000,  # a check never queues behind a lock longer than this
    "max_rows": 50,  # at most this many subjects per check
    # crons (ir_cron)
    "cron_failing_min_failures": 1,  # failure_count >= this: cron_failing (warning)
    "cron_near_failures": 3,  # failure_count >= this: cron_near_deactivation (warning)
    "cron_near_age_hours": 120.0,  # or failing for this long (Odoo's limit is 7 days)
    "cron_stuck_minutes": 60.0,  # a running cron is stuck after max(this, factor * last run)
    "cron_stuck_factor": 10.0,
    "cron_stuck_crit_factor": 3.0,  # critical at this many times the stuck threshold
    "cron_switched_off_margin_seconds": 2.0,  # lastcall newer than write_date by more
    "cron_never_run_hours": 24.0,  # active, never ran, nextcall this far in the past
    "cron_never_run_crit_hours": 168.0,
    # modules (ir_module_module)
    "module_stuck_minutes": 30.0,  # 'to install/upgrade/remove' unchanged for this long
    "module_stuck_crit_minutes": 120.0,  # (Odoo's cron runner stops meanwhile)
    # PostgreSQL
    "connections_warn_percent": 80.0,  # of max_connections minus the reserved slots
    "connections_crit_percent": 95.0,
    "idle_in_transaction_warn_minutes": 10.0,
    "idle_in_transaction_crit_minutes": 60.0,
    "long_query_warn_minutes": 15.0,
    "long_query_crit_minutes": 60.0,
    "ignore_applications": "pg_dump,pg_restore,pg_basebackup",  # for idle/long checks
    "blocked_warn_seconds": 60.0,  # a session waiting for a lock this long
    "blocked_crit_seconds": 300.0,
    "deadlocks_warn": 1,  # new deadlocks since the previous run
    "deadlocks_crit": 10,
    "db_growth_warn_percent_per_day": 10.0,
    "db_growth_crit_percent_per_day": 25.0,
    "db_growth_min_mib_per_day": 100.0,  # smaller growth is never reported
    "db_growth_min_interval_hours": 1.0,  # measure over at least this long
    "autovacuum_min_dead_tuples": 100000,
    "autovacuum_dead_percent": 20.0,  # of the live tuples
    "autovacuum_stale_days": 7.0,  # not vacuumed (auto or by hand) for this long
    "autovacuum_crit_dead_percent": 100.0,
    # filestore
    "filestore_path": "",  # <data_dir>/filestore/<database>; empty: filestore checks skip
    "filestore_sample_newest": 200,  # newest attachments with a file
    "filestore_sample_random": 200,  # plus this many picked at random ids
    "filestore_missing_crit_percent": 10.0,  # of the sampled files
    # queue_job (OCA), when its table exists
    "queue_job_started_minutes": 60.0,
    "queue_job_enqueued_minutes": 30.0,
    "queue_job_crit_factor": 4.0,
}

STATUSES = (OK, WARNING, CRITICAL)

#: Odoo's ir_cron columns are UTC timestamps without time zone.
NOW_UTC = "(clock_timestamp() AT TIME ZONE 'UTC')"

_SAMPLE_QUERY_CHARS = 300
_SQL_LITERAL = re.compile(r"'(?:[^']|'')*'")
_ODOO_CRON_LOCK = re.compile(r"\bFROM\s+ir_cron\b.*\bFOR\s+NO\s+KEY\s+UPDATE\s+SKIP\s+LOCKED",
                             re.S | re.I)


@dataclass
class CheckResult:
    """One check outcome about one subject."""

    check: str
    status: str  # ok, warning, critical
    value: object  # what was measured
    threshold: str  # what it was compared with, readable
    message: str
    details: dict = field(default_factory=dict)
    subject: str = ""  # cron:7, module:sale, pid:4242, table:public.x, database:prod ...

    def __post_init__(self):
        if self.status not in STATUSES:
            raise ValueError("unknown status %r" % self.status)
        self.message = mask_secrets(self.message)
        self.details = _jsonable(self.details)

    def to_dict(self):
        return asdict(self)


class CheckRun(NamedTuple):
    """What :func:`run_checks` returns."""

    results: list  # [CheckResult]
    errors: list  # ["check_name: one line"]
    counters: dict  # pass it as ``previous`` to the next run
    stats: dict  # statements, seconds, per check


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


def resolve_settings(settings=None):
    """:data:`DEFAULTS` overridden by *settings*, converted to the defaults' types.

    Unknown keys are kept (a check of a newer engine may use them); empty
    values keep the default.

    >>> s = resolve_settings({"max_rows": "10", "cron_stuck_minutes": "90", "x": 1,
    ...                       "deadlocks_warn": None})
    >>> s["max_rows"], s["cron_stuck_minutes"], s["x"], s["deadlocks_warn"]
    (10, 90.0, 1, 1)
    >>> resolve_settings({"max_rows": "many"})
    Traceback (most recent call last):
    ...
    ValueError: setting max_rows: 'many' is not a int
    """
    if settings is not None and settings.get("__resolved__"):
        return settings
    resolved = dict(DEFAULTS)
    for key, value in (settings or {}).items():
        if value is None or value == "":
            continue
        default = DEFAULTS.get(key)
        if default is not None and not isinstance(value, type(default)):
            kind = type(default)
            try:
                value = kind(float(value)) if kind is int else kind(value)
            except (TypeError, ValueError):
                raise ValueError(
                    "setting %s: %r is not a %s" % (key, value, kind.__name__)) from None
        resolved[key] = value
    resolved["__resolved__"] = True
    return resolved


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


def filestore_full_path(filestore, store_fname):
    """Where Odoo 18 keeps an attachment's file (``ir.attachment._full_path``).

    Odoo drops every dot and the leading and trailing slashes of
    ``store_fname``, so the path cannot leave the filestore.

    >>> filestore_full_path("/var/lib/odoo/filestore/prod", "3f/3f2a9c")
    '/var/lib/odoo/filestore/prod/3f/3f2a9c'
    >>> filestore_full_path("/fs", "/../../etc/passwd")
    '/fs/etc/passwd'
    """
    path = re.sub("[.]", "", store_fname).strip("/\\")
    return os.path.join(filestore, path)


def sample_starts(min_id, max_id, count, rng=None):
    """*count* distinct random ids in ``[min_id, max_id]``, sorted (all when fewer).

    >>> sample_starts(1, 5, 10)
    [1, 2, 3, 4, 5]
    >>> starts = sample_starts(1, 10 ** 9, 3, random.Random(1))
    >>> len(starts), all(1 <= s <= 10 ** 9 for s in starts), starts == sorted(starts)
    (3, True, True)
    >>> sample_starts(None, None, 3)
    []
    """
    if min_id is None or max_id is None or count <= 0:
        return []
    span = max_id - min_id + 1
    if span <= count:
        return list(range(min_id, max_id + 1))
    rng = rng or random.Random()
    return sorted(rng.sample(range(min_id, max_id + 1), count))


def blocking_roots(waits):
    """Group blocked sessions by the session at the root of their wait chain.

    *waits* maps each waiting pid to the pids blocking it
    (``pg_blocking_pids``). A blocker that waits for nothing itself is a
    root; in a cycle (a deadlock not yet detected) the lowest pid stands for
    it. Returns ``{root: sorted blocked pids}``.

    >>> blocking_roots({20: [10], 30: [20], 40: [10, 50]})
    {10: [20, 30, 40], 50: [40]}
    >>> blocking_roots({1: [2], 2: [1]})
    {1: [1, 2]}
    """
    roots = {}
    for pid in waits:
        seen, stack, found = set(), [pid], set()
        while stack:
            current = stack.pop()
            if current in seen:
                continue
            seen.add(current)
            blockers = waits.get(current)
            if blockers is None:
                found.add(current)
            else:
                stack.extend(blockers)
        if not found:  # only a cycle: every pid in it waits
            found = {min(seen)}
        for root in found:
            roots.setdefault(root, set()).add(pid)
    return {root: sorted(pids) for root, pids in sorted(roots.items())}


def growth_per_day(previous_bytes, previous_at, current_bytes, current_at):
    """``(percent per day, bytes per day)`` between two measures (epoch seconds).

    >>> growth_per_day(1000, 0, 1100, 86400)
    (10.0, 100.0)
    >>> growth_per_day(1000, 0, 1050, 43200)
    (10.0, 100.0)
    >>> growth_per_day(0, 0, 10, 10) is None, growth_per_day(5, 10, 6, 10) is None
    (True, True)
    """
    elapsed = current_at - previous_at
    if previous_bytes <= 0 or elapsed <= 0:
        return None
    per_day = (current_bytes - previous_bytes) * 86400.0 / elapsed
    return round(per_day * 100.0 / previous_bytes, 3), round(per_day, 1)


def deadlock_delta(previous, count, stats_reset):
    """New deadlocks since *previous* (``{"count", "stats_reset"}``), None for no baseline.

    A reset of the statistics (another ``stats_reset``, or a smaller count)
    starts a new baseline.

    >>> deadlock_delta({"count": 4, "stats_reset": "r1"}, 7, "r1")
    3
    >>> deadlock_delta({"count": 4, "stats_reset": "r1"}, 1, "r2") is None
    True
    >>> deadlock_delta(None, 3, "r1") is None
    True
    """
    if not previous or previous.get("stats_reset") != stats_reset:
        return None
    before = previous.get("count")
    if before is None or count < before:
        return None
    return count - before


def deactivation_outlook(failure_count, failing_seconds, failing_at_next_call_seconds,
                         near_failures=3, near_age_seconds=120 * 3600):
    """Whether Odoo 18 is about to switch a failing cron off.

    Odoo switches a cron off at a failure when its failure count (after that
    failure) reaches 5 and its first failure is older than 7 days. Returns
    ``(status, failures_left)``: critical when the next failure, at the next
    call, will switch it off; warning when it has failed *near_failures*
    times or for *near_age_seconds*; ok otherwise.

    >>> day = 86400
    >>> deactivation_outlook(4, 8 * day, 8 * day)
    ('critical', 1)
    >>> deactivation_outlook(4, 6 * day, 7 * day + 60)     # 7 days are over at the next call
    ('critical', 1)
    >>> deactivation_outlook(4, 2 * day, 2 * day)          # 4 failures, but only for 2 days
    ('warning', 1)
    >>> deactivation_outlook(1, 6 * day, 6 * day)          # one failure, failing for 6 days
    ('warning', 4)
    >>> deactivation_outlook(2, 3600, 3600)
    ('ok', 3)
    """
    failures_left = max(0, ODOO_DEACTIVATION_FAILURES - failure_count)
    limit = ODOO_DEACTIVATION_DAYS * 86400
    if failure_count + 1 >= ODOO_DEACTIVATION_FAILURES and (
            failing_at_next_call_seconds or 0) > limit:
        return CRITICAL, failures_left
    if failure_count >= near_failures or (failing_seconds or 0) >= near_age_seconds:
        return WARNING, failures_left
    return OK, failures_left


def _jsonable(value):
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_jsonable(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat(sep=" ", timespec="seconds")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, str):
        return mask_secrets(value)
    if isinstance(value, float):
        return round(value, 3)
    if value is None or isinstance(value, (bool, int)):
        return value
    try:
        return round(float(value), 3)  # Decimal
    except (TypeError, ValueError):
        return mask_secrets(str(value))


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


def _cron_label(row):
    return "Cron %r (id %s)" % (row.get("cron_name") or "?", row["id"])


# --------------------------------------------------------------------------
# crons


def check_cron_failing(cursor, settings=None, ctx=None):
    """Active crons whose last runs failed (``failure_count`` above 0)."""
    s = resolve_settings(settings)
    minimum = s["cron_failing_min_failures"]
    rows = _query(cursor, f"""
        SELECT id, cron_name, failure_count, first_failure_date, lastcall, nextcall,
               EXTRACT(EPOCH FROM {NOW_UTC} - first_failure_date)::float8 AS failing_seconds
          FROM ir_cron
         WHERE active AND failure_count >= %s
         ORDER BY failure_count DESC, id
         LIMIT %s""", (minimum, s["max_rows"]))
    threshold = ">= %d failure(s) in a row" % minimum
    if not rows:
        return _ok("cron_failing", 0, threshold, "no active cron is failing", "crons")
    results = []
    for row in rows:
        since = (" since %s" % row["first_failure_date"].isoformat(sep=" ", timespec="seconds")
                 if row["first_failure_date"] else "")
        results.append(CheckResult(
            "cron_failing", WARNING, row["failure_count"], threshold,
            "%s failed %d time(s) in a row%s" % (_cron_label(row), row["failure_count"], since),
            {"cron_id": row["id"], "cron_name": row["cron_name"],
             "failure_count": row["failure_count"],
             "first_failure_date": row["first_failure_date"], "lastcall": row["lastcall"],
             "nextcall": row["nextcall"], "failing_seconds": row["failing_seconds"]},
            "cron:%s" % row["id"]))
    return results


def check_cron_near_deactivation(cursor, settings=None, ctx=None):
    """Failing crons that Odoo 18 will soon switch off (5 failures over 7 days)."""
    s = resolve_settings(settings)
    rows = _query(cursor, f"""
        SELECT id, cron_name, failure_count, first_failure_date, nextcall,
               nextcall <= {NOW_UTC} AS due,
               EXTRACT(EPOCH FROM {NOW_UTC} - first_failure_date)::float8 AS failing_seconds,
               EXTRACT(EPOCH FROM GREATEST(nextcall, {NOW_UTC}) - first_failure_date)::float8
                   AS failing_at_next_call
          FROM ir_cron
         WHERE active AND failure_count > 0
           AND (failure_count >= %s OR first_failure_date < {NOW_UTC} - %s * interval '1 hour')
         ORDER BY failure_count DESC, first_failure_date, id
         LIMIT %s""", (s["cron_near_failures"], s["cron_near_age_hours"], s["max_rows"]))
    threshold = "%d failures over %d days switch it off; warn at %d failures or %s" % (
        ODOO_DEACTIVATION_FAILURES, ODOO_DEACTIVATION_DAYS, s["cron_near_failures"],
        human_duration(s["cron_near_age_hours"] * 3600))
    results = []
    for row in rows:
        status, left = deactivation_outlook(
            row["failure_count"], row["failing_seconds"], row["failing_at_next_call"],
            s["cron_near_failures"], s["cron_near_age_hours"] * 3600)
        if status == OK:
            continue
        if status == CRITICAL:
            when = "its next failure (%s) will switch it off" % (
                "it is due now" if row["due"] or not row["nextcall"] else
                "next call %s" % row["nextcall"].isoformat(sep=" ", timespec="seconds"))
        else:
            when = ("Odoo switches it off after %d more failure(s) once it has failed "
                    "for %d days" % (left, ODOO_DEACTIVATION_DAYS))
        results.append(CheckResult(
            "cron_near_deactivation", status, row["failure_count"], threshold,
            "%s has failed %d time(s) in a row for %s: %s" % (
                _cron_label(row), row["failure_count"],
                human_duration(row["failing_seconds"]), when),
            {"cron_id": row["id"], "cron_name": row["cron_name"],
             "failure_count": row["failure_count"], "failures_left": left,
             "first_failure_date": row["first_failure_date"], "nextcall": row["nextcall"],
             "failing_seconds": row["failing_seconds"]},
            "cron:%s" % row["id"]))
    if not results:
        return _ok("cron_near_deactivation", 0, threshold,
                   "no cron is close to being switched off", "crons")
    return results


def check_cron_switched_off(cursor, settings=None, ctx=None):
    """Crons switched off after failures.

    Odoo 18 switches a cron off with a plain SQL UPDATE that also resets
    ``failure_count`` and ``first_failure_date``, then reschedules it, which
    sets ``lastcall``: the row is left inactive with a ``lastcall`` newer than
    its ``write_date`` (no ORM write happened). A cron that asked to be
    switched off (``ir_cron_progress.deactivate``) is not reported, nor one
    switched off by a person (the ORM write moves ``write_date``). An
    inactive cron that still counts failures is reported too.
    """
    s = resolve_settings(settings)
    ctx = ctx or CheckContext.probe(cursor)
    if "ir_cron_progress" in ctx.tables:
        progress_join = """LEFT JOIN LATERAL (
                SELECT p.deactivate FROM ir_cron_progress p
                 WHERE p.cron_id = c.id ORDER BY p.id DESC LIMIT 1) lp ON TRUE"""
        progress_column = "lp.deactivate"
    else:
        progress_join, progress_column = "", "NULL::boolean"
    rows = _query(cursor, f"""
        SELECT c.id, c.cron_name, c.failure_count, c.first_failure_date, c.lastcall,
               c.nextcall, c.write_date, {progress_column} AS asked_to_stop,
               EXTRACT(EPOCH FROM {NOW_UTC} - c.lastcall)::float8 AS off_seconds
          FROM ir_cron c
          {progress_join}
         WHERE NOT c.active
           AND (COALESCE(c.failure_count, 0) > 0 OR c.first_failure_date IS NOT NULL
                OR (c.lastcall IS NOT NULL
                    AND (c.write_date IS NULL
                         OR c.lastcall > c.write_date + %s * interval '1 second')))
         ORDER BY c.lastcall DESC NULLS LAST, c.id
         LIMIT %s""", (s["cron_switched_off_margin_seconds"], s["max_rows"]))
    threshold = "inactive after failures"
    results = []
    for row in rows:
        failing = (row["failure_count"] or 0) > 0 or row["first_failure_date"] is not None
        if not failing and row["asked_to_stop"]:
            continue  # the job itself asked to be switched off (progress API)
        if failing:
            reason = "switched off while failing (%d failure(s) in a row)" % (
                row["failure_count"] or 0)
        else:
            reason = ("switched off by Odoo after %d failures over %d days (last run %s)" % (
                ODOO_DEACTIVATION_FAILURES, ODOO_DEACTIVATION_DAYS,
                row["lastcall"].isoformat(sep=" ", timespec="seconds")))
        results.append(CheckResult(
            "cron_switched_off", WARNING, row["failure_count"] or 0, threshold,
            "%s is %s; it will not run until reactivated" % (_cron_label(row), reason),
            {"cron_id": row["id"], "cron_name": row["cron_name"],
             "reason": "failing" if failing else "deactivated_by_odoo",
             "failure_count": row["failure_count"], "lastcall": row["lastcall"],
             "write_date": row["write_date"], "off_seconds": row["off_seconds"]},
            "cron:%s" % row["id"]))
    if not results:
        return _ok("cron_switched_off", 0, threshold,
                   "no cron was switched off after failures", "crons")
    return results


_PROBE_SAVEPOINT = "auto_heal_cron_probe"


def _serialization_failure(exc):
    """PostgreSQL's 40001: a row changed after this transaction's snapshot."""
    return getattr(exc, "pgcode", None) == "40001" or \
        type(exc).__name__ == "SerializationFailure"


def _probe_cron_locks(cursor, due_sql):
    """Ids among the due crons whose row lock another transaction holds (sorted).

    The probe asks for Odoo's own ``FOR NO KEY UPDATE SKIP LOCKED``. In a
    REPEATABLE READ transaction (Odoo's), a row that another worker updated
    after this transaction's snapshot (it finished a job meanwhile) cannot
    be locked: PostgreSQL raises a serialization failure for the whole
    statement. Then each due cron is probed alone: a row changed since the
    snapshot was written by a run that ended or began during this scan, so
    it is not one held for long.
    """
    cursor.execute("SAVEPOINT %s" % _PROBE_SAVEPOINT)
    try:
        rows = _query(cursor, """
            WITH due AS (%s),
            free AS (
                SELECT c.id FROM ir_cron c WHERE c.id IN (SELECT id FROM due)
                   FOR NO KEY UPDATE SKIP LOCKED)
            SELECT due.id, free.id IS NULL AS locked
              FROM due LEFT JOIN free ON free.id = due.id""" % due_sql)
    except Exception as exc:
        cursor.execute("ROLLBACK TO SAVEPOINT %s" % _PROBE_SAVEPOINT)
        if not _serialization_failure(exc):
            raise
    else:
        cursor.execute("RELEASE SAVEPOINT %s" % _PROBE_SAVEPOINT)
        return sorted(row["id"] for row in rows if row["locked"])
    locked = []
    for row in _query(cursor, due_sql):
        cursor.execute("SAVEPOINT %s" % _PROBE_SAVEPOINT)
        try:
            free = _query(cursor, "SELECT id FROM ir_cron WHERE id = %s "
                                  "FOR NO KEY UPDATE SKIP LOCKED", (row["id"],))
        except Exception as exc:
            cursor.execute("ROLLBACK TO SAVEPOINT %s" % _PROBE_SAVEPOINT)
            if not _serialization_failure(exc):
                raise
            continue  # changed since the snapshot: not held for long
        cursor.execute("RELEASE SAVEPOINT %s" % _PROBE_SAVEPOINT)
        if not free:
            locked.append(row["id"])
    return sorted(locked)


def check_cron_stuck(cursor, settings=None, ctx=None):
    """Running crons that hold their lock far longer than usual, and runs that died.

    Odoo's cron worker holds a ``FOR NO KEY UPDATE`` row lock on the job
    while it runs. The probe asks for the same lock with ``SKIP LOCKED`` on
    the crons that are due (a running job is due until it finishes): the
    rows it cannot take are running. Their start comes from the lock holder's
    transaction (``xmax`` -> ``pg_locks`` -> ``pg_stat_activity``), else from
    the newest ``ir_cron_progress`` row, else from the first run that saw the
    lock (``previous``). The usual duration is the last run's: ``lastcall``
    minus the start of its progress row.

    A cron whose newest progress row still counts a timeout
    (``timed_out_counter``) and that is not running died in its last run
    (killed by limit_time_real_cron, out of memory); Odoo counts three in a
    row as a failure.
    """
    s = resolve_settings(settings)
    ctx = ctx or CheckContext.probe(cursor)
    has_progress = "ir_cron_progress" in ctx.tables
    trigger = ""
    if "ir_cron_trigger" in ctx.tables:
        trigger = f"""OR EXISTS (SELECT 1 FROM ir_cron_trigger t
                                 WHERE t.cron_id = c.id AND t.call_at <= {NOW_UTC})"""
    locked = _probe_cron_locks(cursor, f"""
        SELECT c.id FROM ir_cron c
         WHERE c.active AND (c.nextcall <= {NOW_UTC} {trigger})
         ORDER BY c.id LIMIT 500""")
    floor = s["cron_stuck_minutes"] * 60
    threshold = "max(%s, %g x the last run)" % (human_duration(floor), s["cron_stuck_factor"])
    known = dict(ctx.previous.get("cron_locked_since") or {})
    since_map = {}
    results = []
    if locked:
        if has_progress:
            progress = """
              LEFT JOIN LATERAL (
                  SELECT p.create_date FROM ir_cron_progress p
                   WHERE p.cron_id = c.id ORDER BY p.id DESC LIMIT 1) lp ON TRUE
              LEFT JOIN LATERAL (
                  SELECT p.create_date FROM ir_cron_progress p
                   WHERE p.cron_id = c.id AND p.create_date <= c.lastcall
                   ORDER BY p.id DESC LIMIT 1) prev ON TRUE"""
            progress_columns = f"""
                EXTRACT(EPOCH FROM {NOW_UTC} - lp.create_date)::float8 AS progress_seconds,
                (c.lastcall IS NULL OR lp.create_date > c.lastcall) AS progress_is_current,
                EXTRACT(EPOCH FROM c.lastcall - prev.create_date)::float8 AS last_duration"""
        else:
            progress = ""
            progress_columns = """NULL::float8 AS progress_seconds,
                NULL::boolean AS progress_is_current, NULL::float8 AS last_duration"""
        rows = _query(cursor, f"""
            SELECT c.id, c.cron_name, c.lastcall, a.pid AS holder_pid,
                   a.application_name AS holder_application, a.state AS holder_state,
                   EXTRACT(EPOCH FROM clock_timestamp() - a.xact_start)::float8
                       AS holder_seconds,
                   {progress_columns}
              FROM ir_cron c
              LEFT JOIN pg_locks l
                     ON l.locktype = 'transactionid' AND l.mode = 'ExclusiveLock'
                    AND l.granted AND l.transactionid = c.xmax
              LEFT JOIN pg_stat_activity a ON a.pid = l.pid
              {progress}
             WHERE c.id = ANY(%s)
             ORDER BY c.id""", (locked,))
        for row in rows:
            cron_id = str(row["id"])
            if row["holder_seconds"] is not None:
                running, source = row["holder_seconds"], "lock holder's transaction"
            elif row["progress_seconds"] is not None and row["progress_is_current"]:
                running, source = row["progress_seconds"], "ir_cron_progress"
            elif cron_id in known:
                running, source = ctx.now - float(known[cron_id]), "seen locked before"
            else:
                running, source = 0.0, "first seen locked now"
            since_map[cron_id] = ctx.now - running
            usual = row["last_duration"] if (row["last_duration"] or 0) > 0 else None
            limit = max(floor, s["cron_stuck_factor"] * (usual or 0))
            status = by_thresholds(running, limit, limit * s["cron_stuck_crit_factor"])
            if status == OK:
                continue
            usual_text = (", its last run took %s" % human_duration(usual)) if usual else ""
            holder = ""
            if row["holder_pid"]:
                holder = " (lock held by pid %s, %s)" % (row["holder_pid"],
                                                         row["holder_state"] or "?")
            results.append(CheckResult(
                "cron_stuck", status, round(running, 1), "%s = %s" % (
                    threshold, human_duration(limit)),
                "%s has been running for %s%s%s" % (
                    _cron_label(row), human_duration(running), usual_text, holder),
                {"cron_id": row["id"], "cron_name": row["cron_name"], "reason": "running",
                 "running_seconds": round(running, 1), "measured_from": source,
                 "last_duration": usual, "holder_pid": row["holder_pid"],
                 "holder_application": row["holder_application"],
                 "holder_state": row["holder_state"], "lastcall": row["lastcall"]},
                "cron:%s" % row["id"]))
    ctx.counters["cron_locked_since"] = since_map
    if has_progress:
        died = _query(cursor, f"""
            SELECT c.id, c.cron_name, lp.timed_out_counter, lp.create_date,
                   EXTRACT(EPOCH FROM {NOW_UTC} - lp.create_date)::float8 AS age
              FROM ir_cron c
              JOIN LATERAL (
                  SELECT p.timed_out_counter, p.create_date FROM ir_cron_progress p
                   WHERE p.cron_id = c.id ORDER BY p.id DESC LIMIT 1) lp ON TRUE
             WHERE c.active AND lp.timed_out_counter > 0 AND NOT (c.id = ANY(%s))
             ORDER BY lp.timed_out_counter DESC, c.id
             LIMIT %s""", (locked, s["max_rows"]))
        for row in died:
            count = row["timed_out_counter"]
            status = CRITICAL if count >= ODOO_CONSECUTIVE_TIMEOUTS else WARNING
            results.append(CheckResult(
                "cron_stuck", status, count,
                "%d timeouts in a row count as a failure" % ODOO_CONSECUTIVE_TIMEOUTS,
                "%s did not finish its run started %s ago: the worker was killed "
                "(time limit or memory); %d timeout(s) in a row" % (
                    _cron_label(row), human_duration(row["age"]), count),
                {"cron_id": row["id"], "cron_name": row["cron_name"], "reason": "killed",
                 "timed_out_counter": count, "run_started": row["create_date"]},
                "cron:%s" % row["id"]))
    if not results:
        return _ok("cron_stuck", len(locked), threshold,
                   "%d cron(s) running, none for too long" % len(locked), "crons",
                   {"running_cron_ids": locked})
    return results


def check_cron_never_run(cursor, settings=None, ctx=None):
    """Active crons that never ran although their nextcall is long past."""
    s = resolve_settings(settings)
    rows = _query(cursor, f"""
        SELECT id, cron_name, nextcall,
               EXTRACT(EPOCH FROM {NOW_UTC} - nextcall)::float8 AS overdue_seconds
          FROM ir_cron
         WHERE active AND lastcall IS NULL
           AND nextcall < {NOW_UTC} - %s * interval '1 hour'
         ORDER BY nextcall, id
         LIMIT %s""", (s["cron_never_run_hours"], s["max_rows"]))
    warn, crit = s["cron_never_run_hours"] * 3600, s["cron_never_run_crit_hours"] * 3600
    threshold = "overdue >= %s (critical >= %s), never run" % (
        human_duration(warn), human_duration(crit))
    if not rows:
        return _ok("cron_never_run", 0, threshold, "no active cron is overdue without a run",
                   "crons")
    return [CheckResult(
        "cron_never_run", by_thresholds(row["overdue_seconds"], warn, crit),
        round(row["overdue_seconds"]), threshold,
        "%s has never run although it was due %s ago (are the cron workers running? "
        "max_cron_threads, --no-cron?)" % (_cron_label(row),
                                           human_duration(row["overdue_seconds"])),
        {"cron_id": row["id"], "cron_name": row["cron_name"], "nextcall": row["nextcall"],
         "overdue_seconds": row["overdue_seconds"]},
        "cron:%s" % row["id"]) for row in rows]


# --------------------------------------------------------------------------
# modules


def check_module_operation_stuck(cursor, settings=None, ctx=None):
    """Modules left 'to install', 'to upgrade' or 'to remove'.

    While one is, Odoo 18's cron runner runs no job at all
    (``_check_modules_state``) and resets the states itself after 5 hours.
    """
    s = resolve_settings(settings)
    warn, crit = s["module_stuck_minutes"] * 60, s["module_stuck_crit_minutes"] * 60
    rows = _query(cursor, f"""
        SELECT name, state, latest_version, write_date,
               EXTRACT(EPOCH FROM {NOW_UTC} - write_date)::float8 AS age
          FROM ir_module_module
         WHERE state IN ('to install', 'to upgrade', 'to remove')
           AND (write_date IS NULL OR write_date < {NOW_UTC} - %s * interval '1 second')
         ORDER BY write_date NULLS FIRST, name
         LIMIT %s""", (warn, s["max_rows"]))
    threshold = "unchanged >= %s (critical >= %s)" % (human_duration(warn), human_duration(crit))
    if not rows:
        return _ok("module_operation_stuck", 0, threshold,
                   "no module is stuck in an install, upgrade or removal", "modules")
    return [CheckResult(
        "module_operation_stuck",
        CRITICAL if row["age"] is None else by_thresholds(row["age"], warn, crit),
        round(row["age"]) if row["age"] is not None else None, threshold,
        "Module %s is stuck in state '%s'%s; Odoo runs no scheduled action meanwhile" % (
            row["name"], row["state"],
            (" for %s" % human_duration(row["age"])) if row["age"] is not None else ""),
        {"module": row["name"], "state": row["state"], "write_date": row["write_date"],
         "latest_version": row["latest_version"], "age_seconds": row["age"]},
        "module:%s" % row["name"]) for row in rows]


# --------------------------------------------------------------------------
# PostgreSQL


def check_pg_connections(cursor, settings=None, ctx=None):
    """Client connections of the whole cluster against max_connections."""
    s = resolve_settings(settings)
    row = _query(cursor, """
        SELECT count(*) FILTER (WHERE backend_type = 'client backend') AS used,
               count(*) FILTER (WHERE backend_type = 'client backend'
                                  AND datname = current_database()) AS this_database,
               current_setting('max_connections')::int AS max_connections,
               current_setting('superuser_reserved_connections')::int
                 + COALESCE(NULLIF(current_setting('reserved_connections', true), ''), '0')::int
                 AS reserved,
               (SELECT json_agg(t) FROM (
                    SELECT datname, usename, application_name, count(*) AS connections
                      FROM pg_stat_activity WHERE backend_type = 'client backend'
                     GROUP BY 1, 2, 3 ORDER BY 4 DESC LIMIT 5) t) AS top
          FROM pg_stat_activity""")[0]
    available = max(1, row["max_connections"] - row["reserved"])
    percent = round(100.0 * row["used"] / available, 1)
    status = by_thresholds(percent, s["connections_warn_percent"], s["connections_crit_percent"])
    threshold = "warn >= %g%% crit >= %g%% of %d" % (
        s["connections_warn_percent"], s["connections_crit_percent"], available)
    message = "%d of %d connections in use (%.1f%%), %d on this database" % (
        row["used"], available, percent, row["this_database"])
    return [CheckResult(
        "pg_connections_high", status, percent, threshold, message,
        {"used": row["used"], "available": available, "max_connections": row["max_connections"],
         "reserved": row["reserved"], "this_database": row["this_database"],
         "top": row["top"] or []},
        "cluster:connections")]


def _session_details(row):
    return {"pid": row["pid"], "user": row["usename"], "application": row["application_name"],
            "client": row["client"], "query": _query_text(row["query"])}


def check_pg_idle_in_transaction(cursor, settings=None, ctx=None):
    """Sessions of this database idle inside an open transaction for too long.

    They hold their locks and keep vacuum from cleaning up. The session of
    an Odoo cron worker holding a running job's lock looks like one: it is
    left to :func:`check_cron_stuck`.
    """
    s = resolve_settings(settings)
    warn = s["idle_in_transaction_warn_minutes"] * 60
    crit = s["idle_in_transaction_crit_minutes"] * 60
    rows = _query(cursor, """
        SELECT pid, usename, application_name, client_addr::text AS client, state,
               EXTRACT(EPOCH FROM clock_timestamp() - state_change)::float8 AS idle_seconds,
               EXTRACT(EPOCH FROM clock_timestamp() - xact_start)::float8 AS xact_seconds,
               left(query, 2000) AS query
          FROM pg_stat_activity
         WHERE state IN ('idle in transaction', 'idle in transaction (aborted)')
           AND datname = current_database() AND pid <> pg_backend_pid()
           AND state_change < clock_timestamp() - %s * interval '1 second'
         ORDER BY state_change
         LIMIT %s""", (warn, s["max_rows"]))
    ignored = _names(s["ignore_applications"])
    threshold = "idle >= %s (critical >= %s)" % (human_duration(warn), human_duration(crit))
    results, cron_workers = [], 0
    for row in rows:
        if row["application_name"] in ignored:
            continue
        if _ODOO_CRON_LOCK.search(row["query"] or ""):
            cron_workers += 1
            continue
        details = _session_details(row)
        details.update(state=row["state"], idle_seconds=row["idle_seconds"],
                       transaction_seconds=row["xact_seconds"])
        results.append(CheckResult(
            "pg_idle_in_transaction", by_thresholds(row["idle_seconds"], warn, crit),
            round(row["idle_seconds"]), threshold,
            "pid %s (%s, %s) has been %s for %s; last query: %s" % (
                row["pid"], row["usename"], row["application_name"] or "-", row["state"],
                human_duration(row["idle_seconds"]), _query_text(row["query"])),
            details, "pid:%s" % row["pid"]))
    if not results:
        return _ok("pg_idle_in_transaction", 0, threshold,
                   "no session idle in a transaction for too long", "sessions",
                   {"cron_workers_holding_jobs": cron_workers})
    return results


def check_pg_long_queries(cursor, settings=None, ctx=None):
    """Queries of this database running for too long (lock waits excluded)."""
    s = resolve_settings(settings)
    warn, crit = s["long_query_warn_minutes"] * 60, s["long_query_crit_minutes"] * 60
    rows = _query(cursor, """
        SELECT pid, usename, application_name, client_addr::text AS client,
               wait_event_type, wait_event,
               EXTRACT(EPOCH FROM clock_timestamp() - query_start)::float8 AS run_seconds,
               left(query, 2000) AS query
          FROM pg_stat_activity
         WHERE state = 'active' AND backend_type = 'client backend'
           AND datname = current_database() AND pid <> pg_backend_pid()
           AND wait_event_type IS DISTINCT FROM 'Lock'
           AND query_start < clock_timestamp() - %s * interval '1 second'
         ORDER BY query_start
         LIMIT %s""", (warn, s["max_rows"]))
    ignored = _names(s["ignore_applications"])
    threshold = "running >= %s (critical >= %s)" % (human_duration(warn), human_duration(crit))
    results = []
    for row in rows:
        if row["application_name"] in ignored:
            continue
        details = _session_details(row)
        details.update(run_seconds=row["run_seconds"], wait_event_type=row["wait_event_type"],
                       wait_event=row["wait_event"])
        results.append(CheckResult(
            "pg_long_query", by_thresholds(row["run_seconds"], warn, crit),
            round(row["run_seconds"]), threshold,
            "pid %s (%s, %s) has been running one query for %s: %s" % (
                row["pid"], row["usename"], row["application_name"] or "-",
                human_duration(row["run_seconds"]), _query_text(row["query"])),
            details, "pid:%s" % row["pid"]))
    if not results:
        return _ok("pg_long_query", 0, threshold, "no query running for too long", "sessions")
    return results


def check_pg_blocked_sessions(cursor, settings=None, ctx=None):
    """Sessions waiting for a lock, grouped by the session that blocks them."""
    s = resolve_settings(settings)
    ctx = ctx or CheckContext.probe(cursor)
    warn, crit = s["blocked_warn_seconds"], s["blocked_crit_seconds"]
    if ctx.server_version >= 140000:  # pg_locks.waitstart: when the wait began
        waited = """EXTRACT(EPOCH FROM clock_timestamp() - COALESCE(
                        (SELECT min(l.waitstart) FROM pg_locks l
                          WHERE l.pid = a.pid AND NOT l.granted), a.query_start))::float8"""
    else:
        waited = "EXTRACT(EPOCH FROM clock_timestamp() - a.query_start)::float8"
    waiting = _query(cursor, f"""
        SELECT a.pid, pg_blocking_pids(a.pid) AS blockers, a.wait_event, a.usename,
               a.application_name, {waited} AS wait_seconds, left(a.query, 2000) AS query
          FROM pg_stat_activity a
         WHERE a.wait_event_type = 'Lock' AND a.datname = current_database()
           AND a.pid <> pg_backend_pid()
         ORDER BY a.query_start
         LIMIT 200""")
    waiting = [row for row in waiting if row["blockers"]]
    threshold = "waiting >= %s (critical >= %s)" % (human_duration(warn), human_duration(crit))
    by_pid = {row["pid"]: row for row in waiting}
    roots = blocking_roots({row["pid"]: list(row["blockers"]) for row in waiting})
    holders = {}
    if roots:
        holders = {row["pid"]: row for row in _query(cursor, """
            SELECT pid, state, usename, application_name, client_addr::text AS client,
                   EXTRACT(EPOCH FROM clock_timestamp() - xact_start)::float8 AS xact_seconds,
                   EXTRACT(EPOCH FROM clock_timestamp() - state_change)::float8
                       AS state_seconds,
                   left(query, 2000) AS query
              FROM pg_stat_activity WHERE pid = ANY(%s)""", (list(roots),))}
    results = []
    for root, victims in list(roots.items())[: s["max_rows"]]:
        longest = max(by_pid[pid]["wait_seconds"] or 0 for pid in victims)
        status = by_thresholds(longest, warn, crit)
        if status == OK:
            continue
        holder = holders.get(root, {})
        first = max(victims, key=lambda pid: by_pid[pid]["wait_seconds"] or 0)
        results.append(CheckResult(
            "pg_blocked_sessions", status, round(longest), threshold,
            "pid %s (%s, %s, %s) blocks %d session(s); the longest has waited %s: %s" % (
                root, holder.get("usename") or "?", holder.get("application_name") or "-",
                holder.get("state") or "?", len(victims), human_duration(longest),
                _query_text(by_pid[first]["query"])),
            {"blocking_pid": root, "blocked_pids": victims,
             "blocker_state": holder.get("state"), "blocker_user": holder.get("usename"),
             "blocker_application": holder.get("application_name"),
             "blocker_transaction_seconds": holder.get("xact_seconds"),
             "blocker_query": _query_text(holder.get("query")),
             "waits": [{"pid": pid, "wait_seconds": by_pid[pid]["wait_seconds"],
                        "wait_event": by_pid[pid]["wait_event"],
                        "query": _query_text(by_pid[pid]["query"])} for pid in victims[:10]]},
            "pid:%s" % root))
    if not results:
        return _ok("pg_blocked_sessions", len(waiting), threshold,
                   "%d session(s) waiting for a lock, none for too long" % len(waiting),
                   "sessions")
    return results


def check_pg_deadlocks(cursor, settings=None, ctx=None):
    """Growth of this database's deadlock counter since the previous run."""
    s = resolve_settings(settings)
    ctx = ctx or CheckContext.probe(cursor)
    row = _query(cursor, """
        SELECT deadlocks, stats_reset::text AS stats_reset,
               EXTRACT(EPOCH FROM clock_timestamp())::float8 AS now
          FROM pg_stat_database WHERE datname = current_database()""")[0]
    count = int(row["deadlocks"] or 0)
    previous = ctx.previous.get("deadlocks")
    ctx.counters["deadlocks"] = {"count": count, "stats_reset": row["stats_reset"],
                                 "at": row["now"]}
    delta = deadlock_delta(previous, count, row["stats_reset"])
    threshold = "new deadlocks >= %d (critical >= %d)" % (s["deadlocks_warn"],
                                                          s["deadlocks_crit"])
    subject = "database:%s" % ctx.database
    if delta is None:
        return _ok("pg_deadlocks_growing", 0, threshold,
                   "%d deadlock(s) counted; first measure (baseline)" % count, subject,
                   {"count": count})
    elapsed = row["now"] - float(previous.get("at") or row["now"])
    status = by_thresholds(delta, s["deadlocks_warn"], s["deadlocks_crit"])
    return [CheckResult(
        "pg_deadlocks_growing", status, delta, threshold,
        "%d new deadlock(s) in database %s in the last %s (%d in total)" % (
            delta, ctx.database, human_duration(elapsed), count),
        {"new": delta, "count": count, "since_seconds": round(elapsed)}, subject)]


def check_pg_database_growth(cursor, settings=None, ctx=None):
    """Growth of this database's size, in percent per day, since a previous measure.

    Measures closer than ``db_growth_min_interval_hours`` keep the older
    baseline, so growth is always measured over a span long enough to mean
    something.
    """
    s = resolve_settings(settings)
    ctx = ctx or CheckContext.probe(cursor)
    row = _query(cursor, """
        SELECT pg_database_size(current_database()) AS bytes,
               EXTRACT(EPOCH FROM clock_timestamp())::float8 AS now""")[0]
    size, now = int(row["bytes"]), row["now"]
    previous = ctx.previous.get("db_size") or {}
    min_interval = s["db_growth_min_interval_hours"] * 3600
    threshold = "warn >= %g%%/day crit >= %g%%/day (and >= %g MiB/day)" % (
        s["db_growth_warn_percent_per_day"], s["db_growth_crit_percent_per_day"],
        s["db_growth_min_mib_per_day"])
    subject = "database:%s" % ctx.database
    details = {"bytes": size}
    if not previous.get("bytes") or now - float(previous.get("at") or now) < min_interval:
        if previous.get("bytes") and now >= float(previous.get("at") or now):
            ctx.counters["db_size"] = dict(previous)  # too soon: keep the older baseline
        else:
            ctx.counters["db_size"] = {"bytes": size, "at": now}
        return _ok("pg_database_growth", 0.0, threshold,
                   "database %s: %s (growth needs a measure %s old)" % (
                       ctx.database, human_bytes(size), human_duration(min_interval)),
                   subject, details)
    ctx.counters["db_size"] = {"bytes": size, "at": now}
    percent, per_day = growth_per_day(int(previous["bytes"]), float(previous["at"]), size, now)
    status = by_thresholds(percent, s["db_growth_warn_percent_per_day"],
                           s["db_growth_crit_percent_per_day"])
    if per_day < s["db_growth_min_mib_per_day"] * 1024 * 1024:
        status = OK
    details.update(previous_bytes=int(previous["bytes"]), bytes_per_day=per_day,
                   since_seconds=round(now - float(previous["at"])))
    return [CheckResult(
        "pg_database_growth", status, percent, threshold,
        "database %s grows %.1f%% a day (%s/day; %s now, %s %s ago)" % (
            ctx.database, percent, human_bytes(per_day), human_bytes(size),
            human_bytes(int(previous["bytes"])), human_duration(now - float(previous["at"]))),
        details, subject)]


def check_pg_autovacuum(cursor, settings=None, ctx=None):
    """Tables with many dead rows that no vacuum has touched for a long time."""
    s = resolve_settings(settings)
    stale = s["autovacuum_stale_days"] * 86400
    rows = _query(cursor, """
        SELECT t.schemaname, t.relname, t.n_live_tup, t.n_dead_tup,
               t.last_autovacuum, t.last_vacuum,
               EXTRACT(EPOCH FROM clock_timestamp()
                       - GREATEST(t.last_autovacuum, t.last_vacuum))::float8 AS since_seconds,
               array_to_string(c.reloptions, ',') AS reloptions
          FROM pg_stat_user_tables t
          JOIN pg_class c ON c.oid = t.relid
         WHERE t.n_dead_tup >= %s
           AND t.n_dead_tup >= %s / 100.0 * GREATEST(t.n_live_tup, 1)
           AND (GREATEST(t.last_autovacuum, t.last_vacuum) IS NULL
                OR GREATEST(t.last_autovacuum, t.last_vacuum)
                   < clock_timestamp() - %s * interval '1 second')
         ORDER BY t.n_dead_tup DESC
         LIMIT %s""", (s["autovacuum_min_dead_tuples"], s["autovacuum_dead_percent"], stale,
                       s["max_rows"]))
    threshold = "dead rows >= %d and >= %g%% of live, not vacuumed for %s" % (
        s["autovacuum_min_dead_tuples"], s["autovacuum_dead_percent"], human_duration(stale))
    if not rows:
        return _ok("pg_autovacuum_stale", 0, threshold,
                   "no table waits for a vacuum for too long", "tables")
    results = []
    for row in rows:
        percent = 100.0 * row["n_dead_tup"] / max(row["n_live_tup"], 1)
        status = CRITICAL if percent >= s["autovacuum_crit_dead_percent"] else WARNING
        never = row["since_seconds"] is None
        disabled = "autovacuum_enabled=false" in (row["reloptions"] or "").lower()
        results.append(CheckResult(
            "pg_autovacuum_stale", status, row["n_dead_tup"], threshold,
            "table %s.%s has %d dead rows (%.0f%% of %d live) and %s%s" % (
                row["schemaname"], row["relname"], row["n_dead_tup"], percent,
                row["n_live_tup"],
                "was never vacuumed" if never else
                "was last vacuumed %s ago" % human_duration(row["since_seconds"]),
                "; autovacuum is disabled on it" if disabled else ""),
            {"table": "%s.%s" % (row["schemaname"], row["relname"]),
             "dead_tuples": row["n_dead_tup"], "live_tuples": row["n_live_tup"],
             "dead_percent": round(percent, 1), "last_autovacuum": row["last_autovacuum"],
             "last_vacuum": row["last_vacuum"], "autovacuum_disabled": disabled},
            "table:%s.%s" % (row["schemaname"], row["relname"])))
    return results


# --------------------------------------------------------------------------
# filestore


def check_filestore_missing(cursor, settings=None, ctx=None, rng=None):
    """Attachments whose file is not in the filestore, on a bounded sample.

    The sample is the newest ``filestore_sample_newest`` attachments with a
    file (a window of the primary key below its maximum) plus
    ``filestore_sample_random`` picked at random ids: each pick is an index
    lookup of the first attachment with a file at or after a random id,
    within a bounded id range. No query reads the whole table.
    """
    s = resolve_settings(settings)
    filestore = s["filestore_path"]
    threshold = "missing files: warn >= 1, crit >= %g%% of the sample" % (
        s["filestore_missing_crit_percent"])
    subject = "filestore:%s" % (filestore or "-")
    if not filestore:
        return _ok("filestore_files_missing", 0, threshold,
                   "skipped: no filestore_path given", subject, {"skipped": True})
    bounds = _query(cursor, "SELECT min(id) AS low, max(id) AS high FROM ir_attachment")[0]
    low, high = bounds["low"], bounds["high"]
    if high is None:
        return _ok("filestore_files_missing", 0, threshold, "no attachment", subject,
                   {"checked": 0})
    newest, picks = s["filestore_sample_newest"], s["filestore_sample_random"]
    columns = "id, store_fname, name, res_model, res_id"
    rows = _query(cursor, f"""
        SELECT {columns} FROM ir_attachment
         WHERE id > %s AND store_fname IS NOT NULL
         ORDER BY id DESC LIMIT %s""", (high - 20 * max(newest, 1), newest))
    span = max(1000, (high - low + 1) // max(picks, 1))
    starts = sample_starts(low, high, picks, rng)
    if starts:
        rows += _query(cursor, f"""
            SELECT a.* FROM unnest(%s::bigint[]) AS g(start)
            CROSS JOIN LATERAL (
                SELECT {columns} FROM ir_attachment
                 WHERE id >= g.start AND id < g.start + %s AND store_fname IS NOT NULL
                 ORDER BY id LIMIT 1) a""", (starts, span))
    sample = {row["id"]: row for row in rows}
    missing = [row for _, row in sorted(sample.items())
               if not os.path.isfile(filestore_full_path(filestore, row["store_fname"]))]
    checked = len(sample)
    percent = round(100.0 * len(missing) / checked, 1) if checked else 0.0
    details = {"checked": checked, "missing": len(missing), "filestore": filestore,
               "examples": [{"id": row["id"], "store_fname": row["store_fname"],
                             "name": row["name"], "res_model": row["res_model"],
                             "res_id": row["res_id"]} for row in missing[:20]]}
    if not missing:
        return _ok("filestore_files_missing", 0, threshold,
                   "%d sampled attachment file(s) all present" % checked, subject, details)
    status = CRITICAL if percent >= s["filestore_missing_crit_percent"] else WARNING
    return [CheckResult(
        "filestore_files_missing", status, len(missing), threshold,
        "%d of %d sampled attachments have no file in %s (%.1f%%), e.g. id %s %s" % (
            len(missing), checked, filestore, percent, missing[0]["id"],
            missing[0]["store_fname"]),
        details, subject)]


def check_filestore_writable(cursor=None, settings=None, ctx=None):
    """Create, write and remove a temporary file in the filestore.

    Needs no database: the watchdog runs it as Odoo's OS user.
    """
    s = resolve_settings(settings)
    filestore = s["filestore_path"]
    subject = "filestore:%s" % (filestore or "-")
    threshold = "a file can be created and removed"
    if not filestore:
        return _ok("filestore_not_writable", None, threshold,
                   "skipped: no filestore_path given", subject, {"skipped": True})
    details = {"filestore": filestore, "uid": os.geteuid()}
    try:
        usage = shutil.disk_usage(filestore)
        details["free_percent"] = round(100.0 * usage.free / usage.total, 1)
    except OSError:
        pass
    step = "create"
    try:
        handle, path = tempfile.mkstemp(dir=filestore, prefix=".auto_heal-probe-")
        try:
            step = "write"
            os.write(handle, b"auto_heal write probe\n")
            os.fsync(handle)
        finally:
            os.close(handle)
            step = "remove"
            os.unlink(path)
    except OSError as exc:
        details.update(step=step, errno=exc.errno, error=exc.strerror or str(exc))
        return [CheckResult(
            "filestore_not_writable", CRITICAL, False, threshold,
            "the filestore %s cannot be written (%s failed: %s, uid %d); new attachments "
            "fail" % (filestore, step, exc.strerror or exc, os.geteuid()),
            details, subject)]
    return _ok("filestore_not_writable", True, threshold,
               "the filestore %s is writable" % filestore, subject, details)


# --------------------------------------------------------------------------
# queue_job


def check_queue_job_stuck(cursor, settings=None, ctx=None):
    """OCA queue_job: jobs left 'started' or 'enqueued' for too long, per channel."""
    s = resolve_settings(settings)
    ctx = ctx or CheckContext.probe(cursor)
    started, enqueued = s["queue_job_started_minutes"] * 60, s["queue_job_enqueued_minutes"] * 60
    factor = s["queue_job_crit_factor"]
    threshold = "started >= %s, enqueued >= %s (critical x%g)" % (
        human_duration(started), human_duration(enqueued), factor)
    if "queue_job" not in ctx.tables:
        return _ok("queue_job_stuck", 0, threshold, "skipped: queue_job is not installed",
                   "queue_job", {"skipped": True})
    rows = _query(cursor, f"""
        SELECT state, channel, count(*) AS jobs, max(age)::float8 AS oldest,
               (array_agg(uuid ORDER BY age DESC))[1:5] AS examples
          FROM (SELECT state, channel, uuid,
                       EXTRACT(EPOCH FROM {NOW_UTC}
                               - CASE WHEN state = 'started' THEN date_started
                                      ELSE date_enqueued END) AS age
                  FROM queue_job
                 WHERE (state = 'started'
                        AND date_started < {NOW_UTC} - %s * interval '1 second')
                    OR (state = 'enqueued'
                        AND date_enqueued < {NOW_UTC} - %s * interval '1 second')
                 LIMIT 10000) j
         GROUP BY state, channel
         ORDER BY oldest DESC
         LIMIT %s""", (started, enqueued, s["max_rows"]))
    if not rows:
        return _ok("queue_job_stuck", 0, threshold, "no job stuck in started or enqueued",
                   "queue_job")
    results = []
    for row in rows:
        limit = started if row["state"] == "started" else enqueued
        status = by_thresholds(row["oldest"], limit, limit * factor)
        results.append(CheckResult(
            "queue_job_stuck", status, row["jobs"], threshold,
            "%d job(s) of channel %s stuck in '%s', the oldest for %s" % (
                row["jobs"], row["channel"] or "?", row["state"],
                human_duration(row["oldest"])),
            {"state": row["state"], "channel": row["channel"], "jobs": row["jobs"],
             "oldest_seconds": row["oldest"], "examples": row["examples"]},
            "queue_job:%s:%s" % (row["state"], row["channel"] or "-")))
    return results


# --------------------------------------------------------------------------
# the registry and the runner

#: check name -> function; the names are the ``check`` of data/patterns.json.
CHECKS = {
    "cron_failing": check_cron_failing,
    "cron_near_deactivation": check_cron_near_deactivation,
    "cron_switched_off": check_cron_switched_off,
    "cron_stuck": check_cron_stuck,
    "cron_never_run": check_cron_never_run,
    "module_operation_stuck": check_module_operation_stuck,
    "pg_connections_high": check_pg_connections,
    "pg_idle_in_transaction": check_pg_idle_in_transaction,
    "pg_long_query": check_pg_long_queries,
    "pg_blocked_sessions": check_pg_blocked_sessions,
    "pg_deadlocks_growing": check_pg_deadlocks,
    "pg_database_growth": check_pg_database_growth,
    "pg_autovacuum_stale": check_pg_autovacuum,
    "filestore_files_missing": check_filestore_missing,
    "filestore_not_writable": check_filestore_writable,
    "queue_job_stuck": check_queue_job_stuck,
}

#: Settings :func:`run_checks` applies around every check (timeouts) or every check
#: reads (``max_rows``): a bad value of one of these cannot be blamed on one check.
COMMON_SETTINGS = ("statement_timeout_ms", "lock_timeout_ms", "max_rows")

#: The settings each check reads besides :data:`COMMON_SETTINGS` (a test keeps this
#: in step with the code), so that a bad value stops only the checks that use it.
CHECK_SETTINGS = {
    "cron_failing": ("cron_failing_min_failures",),
    "cron_near_deactivation": ("cron_near_failures", "cron_near_age_hours"),
    "cron_switched_off": ("cron_switched_off_margin_seconds",),
    "cron_stuck": ("cron_stuck_minutes", "cron_stuck_factor", "cron_stuck_crit_factor"),
    "cron_never_run": ("cron_never_run_hours", "cron_never_run_crit_hours"),
    "module_operation_stuck": ("module_stuck_minutes", "module_stuck_crit_minutes"),
    "pg_connections_high": ("connections_warn_percent", "connections_crit_percent"),
    "pg_idle_in_transaction": ("idle_in_transaction_warn_minutes",
                               "idle_in_transaction_crit_minutes", "ignore_applications"),
    "pg_long_query": ("long_query_warn_minutes", "long_query_crit_minutes",
                      "ignore_applications"),
    "pg_blocked_sessions": ("blocked_warn_seconds", "blocked_crit_seconds"),
    "pg_deadlocks_growing": ("deadlocks_warn", "deadlocks_crit"),
    "pg_database_growth": ("db_growth_warn_percent_per_day", "db_growth_crit_percent_per_day",
                           "db_growth_min_mib_per_day", "db_growth_min_interval_hours"),
    "pg_autovacuum_stale": ("autovacuum_min_dead_tuples", "autovacuum_dead_percent",
                            "autovacuum_stale_days", "autovacuum_crit_dead_percent"),
    "filestore_files_missing": ("filestore_path", "filestore_sample_newest",
                                "filestore_sample_random", "filestore_missing_crit_percent"),
    "filestore_not_writable": ("filestore_path",),
    "queue_job_stuck": ("queue_job_started_minutes", "queue_job_enqueued_minutes",
                        "queue_job_crit_factor"),
}

# The check families of engine/checks/ (PostgreSQL safety, mail, backups, deployment):
# each module imports the helpers above and brings its CHECKS, DEFAULTS, CHECK_SETTINGS.
from .checks import backup, deployment, mail, postgres  # noqa: E402

FAMILIES = (postgres, mail, backup, deployment)
for _family in FAMILIES:
    CHECKS.update(_family.CHECKS)
    DEFAULTS.update(_family.DEFAULTS)
    CHECK_SETTINGS.update(_family.CHECK_SETTINGS)


def split_settings(settings):
    """Check each setting on its own: ``(usable settings, {key: error line})``.

    :func:`resolve_settings` refuses a whole dict for one bad value; a caller
    reading settings typed by a person (ir.config_parameter) uses this
    instead, keeps the good values and reports the bad ones.

    >>> good, bad = split_settings({"max_rows": "10", "idle_in_transaction_warn_minutes": "soon"})
    >>> good
    {'max_rows': '10'}
    >>> bad
    {'idle_in_transaction_warn_minutes': "setting idle_in_transaction_warn_minutes: 'soon' \
is not a float"}
    """
    good, bad = {}, {}
    for key, value in (settings or {}).items():
        try:
            resolve_settings({key: value})
        except ValueError as exc:
            bad[key] = str(exc)
        else:
            good[key] = value
    return good, bad


def blocked_checks(bad_settings, names=None):
    """``{check: [error, ...]}``: the checks of *names* that read a bad setting.

    Settings of :data:`COMMON_SETTINGS` block nothing: the caller uses their
    defaults (every check would stop otherwise).

    >>> blocked_checks({"ignore_applications": "x", "max_rows": "y"},
    ...                ["pg_long_query", "cron_failing", "pg_idle_in_transaction"])
    {'pg_long_query': ['x'], 'pg_idle_in_transaction': ['x']}
    """
    names = list(CHECKS) if names is None else list(names)
    blocked = {}
    for name in names:
        errors = [bad_settings[key] for key in CHECK_SETTINGS.get(name, ())
                  if key in bad_settings]
        if errors:
            blocked[name] = errors
    return blocked


_SAVEPOINT = "auto_heal_checks"


class _CountingCursor:
    """Counts statements; asks Odoo's cursor not to log a check's failed query."""

    def __init__(self, cursor):
        self._cursor = cursor
        self.statements = 0
        self._kwargs = {}
        try:
            if "log_exceptions" in inspect.signature(cursor.execute).parameters:
                self._kwargs = {"log_exceptions": False}
        except (TypeError, ValueError):
            pass

    def execute(self, sql, params=None):
        self.statements += 1
        if params is None:
            return self._cursor.execute(sql, **self._kwargs)
        return self._cursor.execute(sql, params, **self._kwargs)

    def __getattr__(self, name):
        return getattr(self._cursor, name)


def _autocommit(cursor):
    connection = getattr(cursor, "connection", None)
    return bool(getattr(connection, "autocommit", False))


def run_checks(cursor, names=None, settings=None, previous=None, facts=None):
    """Run the checks *names* (all of :data:`CHECKS` by default), each bounded and isolated.

    Every check runs under ``statement_timeout`` and ``lock_timeout`` set
    locally, inside one savepoint that is rolled back after it: whatever a
    check did or failed at, the caller's transaction is left as it was. A
    check that fails adds ``"name: error"`` to ``errors``, the others run.

    *previous* is the ``counters`` of the previous run (a JSON-able dict);
    the counters of this run come back in :class:`CheckRun` ``counters``:
    ``deadlocks``, ``db_size`` and ``cron_locked_since``. A check that fails
    keeps its previous counters.

    On a connection in autocommit mode the run opens (and rolls back) its own
    transaction. *facts* (JSON-able) reach the checks as ``ctx.facts``.
    """
    started = time.monotonic()
    conf = resolve_settings(settings)
    names = list(CHECKS) if names is None else list(names)
    counted = _CountingCursor(cursor)
    results, errors, per_check = [], [], {}
    own_transaction = _autocommit(cursor)
    counters = {}
    try:
        if own_transaction:
            counted.execute("BEGIN")
        counted.execute("SAVEPOINT %s" % _SAVEPOINT)
        # pg_stat_clear_snapshot: PostgreSQL keeps the first pg_stat_activity and
        # pg_stat_database it read in a transaction until the transaction ends; a caller
        # whose transaction read them earlier (a long test, a busy request) would see
        # stale sessions and counters.
        counted.execute("SELECT set_config('statement_timeout', %s, true), "
                        "set_config('lock_timeout', %s, true), pg_stat_clear_snapshot()",
                        (str(int(conf["statement_timeout_ms"])),
                         str(int(conf["lock_timeout_ms"]))))
        ctx = CheckContext.probe(counted, previous)
        counted.execute("ROLLBACK TO SAVEPOINT %s" % _SAVEPOINT)
    except Exception as exc:  # noqa: BLE001 - no database, no checks: one error line
        _recover(counted, own_transaction)
        return CheckRun([], ["(setup): %s" % one_line(exc)], dict(previous or {}),
                        {"statements": counted.statements,
                         "seconds": round(time.monotonic() - started, 3), "checks": {}})
    ctx.counters = counters
    ctx.facts = dict(facts or {})
    try:
        for name in names:
            function = CHECKS.get(name)
            if function is None:
                errors.append("%s: unknown check" % name)
                continue
            before, clock = counted.statements, time.monotonic()
            try:
                counted.execute("SELECT set_config('statement_timeout', %s, true), "
                                "set_config('lock_timeout', %s, true)",
                                (str(int(conf["statement_timeout_ms"])),
                                 str(int(conf["lock_timeout_ms"]))))
                results.extend(function(counted, conf, ctx))
            except Exception as exc:  # noqa: BLE001 - a broken check must not stop the others
                errors.append("%s: %s" % (name, one_line(exc)))
            finally:
                counted.execute("ROLLBACK TO SAVEPOINT %s" % _SAVEPOINT)
            per_check[name] = {"statements": counted.statements - before,
                               "seconds": round(time.monotonic() - clock, 4)}
        counted.execute("RELEASE SAVEPOINT %s" % _SAVEPOINT)
        if own_transaction:
            counted.execute("ROLLBACK")
    except Exception as exc:  # noqa: BLE001 - the savepoint itself failed: stop here
        errors.append("(run): %s" % one_line(exc))
        _recover(counted, own_transaction)
    for key, value in (previous or {}).items():
        counters.setdefault(key, value)  # a check that failed keeps its baseline
    stats = {"statements": counted.statements, "seconds": round(time.monotonic() - started, 3),
             "checks": per_check}
    return CheckRun(results, errors, counters, stats)


def _recover(counted, own_transaction):
    try:
        counted.execute("ROLLBACK" if own_transaction else "ROLLBACK TO SAVEPOINT %s" % _SAVEPOINT)
    except Exception:  # noqa: BLE001, S110 - best effort; the caller's transaction is lost
        pass


def status_of(results):
    """The worst status of *results* (ok for none).

    >>> status_of([CheckResult("a", OK, 0, "", ""), CheckResult("b", WARNING, 1, "", "")])
    'warning'
    """
    return worst(*(r.status for r in results))


# --------------------------------------------------------------------------
# findings


def _check_patterns(patterns):
    if isinstance(patterns, PatternSet):
        patterns = patterns.checks
    elif isinstance(patterns, dict):
        patterns = patterns.values()
    return {p.check: p for p in patterns if getattr(p, "check", "") and p.active}


def to_findings(results, patterns, database=None, now=None):
    """Findings of the non-ok *results*, for the incident machinery.

    *patterns* is a :class:`~engine.patterns.PatternSet` (its checks), or
    patterns / a dict of them; a result whose check has no active pattern
    gives no finding (the admin switched the check off). The fingerprint
    holds the pattern type, the database and the subject, so a subject's
    findings fold into one incident whatever their figures.

    >>> from engine.patterns import PatternSet
    >>> patterns = PatternSet.from_entries([{"type": "cron_failing", "check": "cron_failing",
    ...                                      "severity": "medium"}])
    >>> results = [CheckResult("cron_failing", WARNING, n, ">= 1",
    ...                        "Cron 'x' (id 7) failed %d time(s) in a row" % n,
    ...                        {"cron_id": 7}, "cron:7") for n in (1, 2)]
    >>> a, b = to_findings(results, patterns, database="prod")
    >>> a.fingerprint == b.fingerprint, a.pattern_type, a.severity, a.captures["subject"]
    (True, 'cron_failing', 'medium', 'cron:7')
    >>> a.signature
    'cron_failing | prod | cron_failing: cron:<n> | subject=cron:7'
    """
    by_check = _check_patterns(patterns)
    moment = now or datetime.now(timezone.utc).replace(tzinfo=None)
    findings = []
    for result in results:
        if result.status == OK:
            continue
        pattern = by_check.get(result.check)
        if pattern is None:
            continue
        subject = mask_secrets(result.subject or "-")
        digest, signature = fingerprint(pattern.type, "%s: %s" % (result.check, subject),
                                        database=database, fields={"subject": subject})
        captures = {"check": result.check, "subject": subject, "status": result.status,
                    "value": "" if result.value is None else str(result.value),
                    "threshold": result.threshold}
        for key, value in result.details.items():
            if isinstance(value, (str, int, float, bool)) and key not in captures:
                captures[key] = mask_secrets(str(value))
        findings.append(Finding(
            pattern_type=pattern.type,
            severity=severity_for(pattern.severity, result.status),
            fingerprint=digest,
            signature=mask_secrets(signature),
            message=mask_secrets(result.message),
            path="check:%s" % result.check,
            line=0,
            timestamp=moment,
            sample=make_sample(_sample_text(result)),
            level=None,
            database=database,
            logger="auto_heal.dbchecks",
            captures=captures,
            fix_script=pattern.fix_script,
        ))
    return findings


def _sample_text(result):
    """A readable excerpt of a result: the message, then its figures, one a line."""
    lines = [result.message, "status: %s, value: %s, threshold: %s" % (
        result.status, result.value, result.threshold)]
    for key, value in result.details.items():
        if isinstance(value, (list, dict)):
            value = _compact(value)
        lines.append("%s: %s" % (key, value))
    return "\n".join(lines)


def _compact(value, limit=500):
    text = json.dumps(value, default=str, ensure_ascii=False)
    return text if len(text) <= limit else text[:limit] + "..."
