"""PostgreSQL as its statistics views see it: sessions, locks, deadlocks, size, dead rows.

- ``pg_connections_high``: client connections against ``max_connections``;
- ``pg_idle_in_transaction``, ``pg_long_query``: sessions of this database idle
  in a transaction or running one query for too long (``pg_stat_activity``);
- ``pg_blocked_sessions``: sessions waiting for a lock, per blocking session;
- ``pg_deadlocks_growing``, ``pg_database_growth``: the deadlock counter and
  the database's size against the previous run's (``pg_stat_database``);
- ``pg_autovacuum_stale``: tables with many dead rows no vacuum touched
  (``pg_stat_user_tables``).

The catalog checks (wraparound, sequences, invalid indexes, prepared
transactions, replication slots) are in :mod:`engine.checks.postgres`.
"""

import re

from .base import (
    CRITICAL,
    OK,
    WARNING,
    CheckContext,
    CheckResult,
    _names,
    _ok,
    _query,
    _query_text,
    by_thresholds,
    human_bytes,
    human_duration,
    resolve_settings,
)
from .registry import check

_ODOO_CRON_LOCK = re.compile(r"\bFROM\s+ir_cron\b.*\bFOR\s+NO\s+KEY\s+UPDATE\s+SKIP\s+LOCKED",
                             re.S | re.I)


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



@check("pg_connections_high", settings={
    "connections_warn_percent": 80.0,  # of max_connections minus the reserved slots
    "connections_crit_percent": 95.0,
})
def check_pg_connections_high(cursor, settings=None, ctx=None):
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



@check("pg_idle_in_transaction", settings={
    "idle_in_transaction_warn_minutes": 10.0,
    "idle_in_transaction_crit_minutes": 60.0,
    "ignore_applications": "pg_dump,pg_restore,pg_basebackup",  # not reported
})
def check_pg_idle_in_transaction(cursor, settings=None, ctx=None):
    """Sessions of this database idle inside an open transaction for too long.

    They hold their locks and keep vacuum from cleaning up. The session of
    an Odoo cron worker holding a running job's lock looks like one: it is
    left to :func:`engine.checks.cron.check_cron_stuck`.
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



@check("pg_long_query", settings={
    "long_query_warn_minutes": 15.0,
    "long_query_crit_minutes": 60.0,
    "ignore_applications": "pg_dump,pg_restore,pg_basebackup",  # not reported
})
def check_pg_long_query(cursor, settings=None, ctx=None):
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



@check("pg_blocked_sessions", settings={
    "blocked_warn_seconds": 60.0,  # a session waiting for a lock this long
    "blocked_crit_seconds": 300.0,
})
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



@check("pg_deadlocks_growing", settings={
    "deadlocks_warn": 1,  # new deadlocks since the previous run
    "deadlocks_crit": 10,
})
def check_pg_deadlocks_growing(cursor, settings=None, ctx=None):
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



@check("pg_database_growth", settings={
    "db_growth_warn_percent_per_day": 10.0,
    "db_growth_crit_percent_per_day": 25.0,
    "db_growth_min_mib_per_day": 100.0,  # smaller growth is never reported
    "db_growth_min_interval_hours": 1.0,  # measure over at least this long
})
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



@check("pg_autovacuum_stale", settings={
    "autovacuum_min_dead_tuples": 100000,
    "autovacuum_dead_percent": 20.0,  # of the live tuples
    "autovacuum_stale_days": 7.0,  # not vacuumed (auto or by hand) for this long
    "autovacuum_crit_dead_percent": 100.0,
})
def check_pg_autovacuum_stale(cursor, settings=None, ctx=None):
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
