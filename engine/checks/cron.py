"""Crons (``ir_cron``): failing, about to be switched off, switched off, stuck, never run.

Odoo 18 switches a cron off by itself after repeated failures, and a cron
worker killed in the middle of a job leaves no trace in the log: these checks
read ``ir_cron`` and ``ir_cron_progress`` to see both coming. The probe of
running crons asks for Odoo's own row lock (``FOR NO KEY UPDATE SKIP
LOCKED``), released at once by the rollback to the run's savepoint.
"""

from .base import (
    CRITICAL,
    NOW_UTC,
    OK,
    WARNING,
    CheckContext,
    CheckResult,
    _ok,
    _query,
    by_thresholds,
    human_duration,
    resolve_settings,
)
from .registry import check

#: Odoo 18's ir_cron.py: a cron is switched off at a failure once it has
#: failed MIN_FAILURE_COUNT_BEFORE_DEACTIVATION times in a row AND its first
#: failure is older than MIN_DELTA_BEFORE_DEACTIVATION; three timeouts in a row
#: (CONSECUTIVE_TIMEOUT_FOR_FAILURE) count as one failure.
ODOO_DEACTIVATION_FAILURES = 5
ODOO_DEACTIVATION_DAYS = 7
ODOO_CONSECUTIVE_TIMEOUTS = 3


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



def _cron_label(row):
    return "Cron %r (id %s)" % (row.get("cron_name") or "?", row["id"])



@check("cron_failing", settings={
    "cron_failing_min_failures": 1,  # failure_count >= this: cron_failing (warning)
})
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



@check("cron_near_deactivation", settings={
    "cron_near_failures": 3,  # failure_count >= this: cron_near_deactivation (warning)
    "cron_near_age_hours": 120.0,  # or failing for this long (Odoo's limit is 7 days)
})
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



@check("cron_switched_off", settings={
    "cron_switched_off_margin_seconds": 2.0,  # lastcall newer than write_date by more
})
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



@check("cron_stuck", settings={
    "cron_stuck_minutes": 60.0,  # a running cron is stuck after max(this, factor * last run)
    "cron_stuck_factor": 10.0,
    "cron_stuck_crit_factor": 3.0,  # critical at this many times the stuck threshold
})
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



@check("cron_never_run", settings={
    "cron_never_run_hours": 24.0,  # active, never ran, nextcall this far in the past
    "cron_never_run_crit_hours": 168.0,
})
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
