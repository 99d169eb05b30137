"""Run checks, each bounded and isolated, and turn their problems into findings.

::

    run_checks(cursor, names, settings, previous, facts)
      |  SAVEPOINT auto_heal_checks
      |  for each check of CHECKS (engine.checks.registry):
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
"""

import inspect
import json
import time
from datetime import datetime, timezone
from typing import NamedTuple

from ..fingerprint import fingerprint
from ..health import OK, WARNING, CheckResult, overall  # noqa: F401 - the doctests use them
from ..incidents import Finding, make_sample
from ..patterns import PatternSet
from ..secrets import mask_secrets
from .base import CheckContext, one_line, severity_for
from .registry import CHECKS, resolve_settings


class CheckRun(NamedTuple):
    """What :func:`run_checks` returns."""

    results: list  # [CheckResult]
    errors: list  # ["check_name: one line"]
    counters: dict  # pass it as ``previous`` to the next run
    stats: dict  # statements, seconds, per check


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
    return overall(results)


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
            logger="auto_heal.dbchecks",  # the name findings of checks always had
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
