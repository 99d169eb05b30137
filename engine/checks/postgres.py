"""PostgreSQL failures that stop a whole Odoo with no warning in its log.

What check_postgres (``txn_wraparound``, ``sequence``, ``prepared_txns``,
``replication_slots``) and PgHero (``transaction_id_danger``,
``sequence_danger``, invalid indexes) watch, for an Odoo 18 database:

- ``pg_xid_wraparound``: the age of ``datfrozenxid`` per database and of the
  oldest tables, against ``autovacuum_freeze_max_age``, and what holds the
  freeze horizon back (a long transaction, a prepared transaction, a
  replication slot, a table with autovacuum off);
- ``id_sequence_exhaustion``: every int2/int4 column fed by a sequence (Odoo
  18's ``id`` is a SERIAL: int4, at most 2,147,483,647), the share of its
  range used and the days left at the growth the scans measure;
- ``pg_invalid_indexes``: indexes left invalid (a failed ``CREATE INDEX
  CONCURRENTLY``) and constraints not validated, with the Odoo module that
  owns them (``ir_model_constraint``, ``ir_model_data``);
- ``pg_prepared_transactions``: prepared transactions (Odoo never makes one)
  older than a threshold;
- ``pg_replication_slots``: inactive slots and the WAL they keep.

Every query reads catalog views (``pg_database``, ``pg_class``,
``pg_sequence``, ``pg_index``, ``pg_constraint``, ``pg_prepared_xacts``,
``pg_replication_slots``, ``pg_stat_activity``), whose size does not grow with
the data; none reads a table's rows.
"""

from .base import (
    CRITICAL,
    OK,
    WARNING,
    CheckContext,
    CheckResult,
    _ok,
    _query,
    _query_text,
    by_thresholds,
    human_bytes,
    human_duration,
    resolve_settings,
)
from .registry import check

#: PostgreSQL's transaction ID space: a database whose oldest unfrozen ID gets this
#: old has wrapped around; PostgreSQL stops assigning IDs 3 million before.
XID_WRAPAROUND = 2 ** 31
XID_STOP_MARGIN = 3_000_000



def _n(value):
    """A big integer, readable.

    >>> _n(2147483647), _n(None)
    ('2,147,483,647', '?')
    """
    return "?" if value is None else f"{int(value):,}"


def xid_status(age, freeze_max_age, warn_percent=150.0, crit_percent=50.0):
    """``(status, percent of freeze_max_age, percent of the wraparound, ids left)``.

    >>> xid_status(310_000_000, 200_000_000)
    ('warning', 155.0, 14.4, 1834483648)
    >>> xid_status(1_200_000_000, 200_000_000)[0], xid_status(1000, 200_000_000)[0]
    ('critical', 'ok')
    """
    warn = freeze_max_age * warn_percent / 100.0
    crit = XID_WRAPAROUND * crit_percent / 100.0
    status = by_thresholds(age, warn, crit)
    left = XID_WRAPAROUND - XID_STOP_MARGIN - age
    return (status, round(100.0 * age / max(freeze_max_age, 1), 1),
            round(100.0 * age / XID_WRAPAROUND, 1), left)


def xid_holders(rows, database_age):
    """The rows (sessions, prepared transactions, slots) that hold the freeze horizon.

    A holder's own transaction ID age is at least half the database's: the
    vacuum cannot freeze past it.

    >>> xid_holders([{"kind": "session", "age": 900}, {"kind": "slot", "age": 10},
    ...              {"kind": "prepared", "age": None}], 1000)
    [{'kind': 'session', 'age': 900}]
    """
    return [row for row in rows if row.get("age") is not None
            and row["age"] >= database_age / 2.0]


def _holder_text(holder):
    kind = holder["kind"]
    if kind == "session":
        return "session pid %s (%s, %s, %s) with a snapshot %s transactions old" % (
            holder["id"], holder.get("owner") or "?", holder.get("application") or "-",
            holder.get("state") or "?", _n(holder["age"]))
    if kind == "prepared":
        return "prepared transaction %r (database %s) %s transactions old" % (
            holder["id"], holder.get("database") or "?", _n(holder["age"]))
    return "replication slot %r (%s) holding xmin %s transactions old" % (
        holder["id"], holder.get("state") or "?", _n(holder["age"]))


@check("pg_xid_wraparound", settings={
    "xid_age_warn_freeze_max_percent": 150.0,  # of autovacuum_freeze_max_age
    "xid_age_crit_wraparound_percent": 50.0,  # of the 2^31 transaction ID space
})
def check_pg_xid_wraparound(cursor, settings=None, ctx=None):
    """The transaction ID age of every database, and what holds the horizon back."""
    s = resolve_settings(settings)
    ctx = ctx or CheckContext.probe(cursor)
    row = _query(cursor, """
        SELECT current_setting('autovacuum_freeze_max_age')::bigint AS freeze_max_age,
               current_setting('autovacuum') AS autovacuum,
               (SELECT json_agg(d ORDER BY d.age DESC) FROM (
                    SELECT datname, age(datfrozenxid)::bigint AS age
                      FROM pg_database ORDER BY age(datfrozenxid) DESC LIMIT %s) d)
                   AS databases,
               (SELECT json_agg(t) FROM (
                    SELECT COALESCE(owner_ns.nspname, n.nspname) || '.'
                               || COALESCE(o.relname, c.relname) AS name,
                           age(c.relfrozenxid)::bigint AS age,
                           COALESCE(array_to_string(COALESCE(o.reloptions, c.reloptions), ','),
                                    '') AS reloptions
                      FROM pg_class c
                      JOIN pg_namespace n ON n.oid = c.relnamespace
                      LEFT JOIN pg_class o ON c.relkind = 't' AND o.reltoastrelid = c.oid
                      LEFT JOIN pg_namespace owner_ns ON owner_ns.oid = o.relnamespace
                     WHERE c.relkind IN ('r', 'm', 't') AND c.relfrozenxid <> '0'
                       AND COALESCE(owner_ns.nspname, n.nspname)
                           NOT IN ('pg_catalog', 'information_schema')
                     ORDER BY COALESCE(array_to_string(COALESCE(o.reloptions, c.reloptions),
                                                       ','), '')
                                  ~* 'autovacuum_enabled=(false|off|0|no)' DESC,
                              age(c.relfrozenxid) DESC
                     LIMIT 5) t) AS tables""",
                 (s["max_rows"],))[0]
    freeze_max = int(row["freeze_max_age"])
    warn_percent = s["xid_age_warn_freeze_max_percent"]
    crit_percent = s["xid_age_crit_wraparound_percent"]
    threshold = "age >= %g%% of autovacuum_freeze_max_age (%s); critical >= %g%% of the " \
                "wraparound (%s)" % (warn_percent, _n(freeze_max * warn_percent / 100.0),
                                     crit_percent, _n(XID_WRAPAROUND * crit_percent / 100.0))
    databases = row["databases"] or []
    tables = [dict(t, autovacuum_disabled=_autovacuum_off(t["reloptions"]))
              for t in row["tables"] or []]
    problems = []
    for database in databases:
        status = xid_status(database["age"], freeze_max, warn_percent, crit_percent)[0]
        if status != OK:
            problems.append((database, status))
    if not problems:
        oldest = databases[0] if databases else {"datname": "-", "age": 0}
        return _ok("pg_xid_wraparound", oldest["age"], threshold,
                   "the oldest database (%s) is %s transactions old, %.1f%% of "
                   "autovacuum_freeze_max_age" % (oldest["datname"], _n(oldest["age"]),
                                                  100.0 * oldest["age"] / max(freeze_max, 1)),
                   "cluster:xid", {"freeze_max_age": freeze_max, "databases": databases[:5],
                                   "oldest_tables": tables})
    holders_rows = _query(cursor, """
        SELECT 'session' AS kind, pid::text AS id, datname AS database, usename AS owner,
               application_name AS application, state,
               age(backend_xmin)::bigint AS age,
               EXTRACT(EPOCH FROM clock_timestamp() - xact_start)::float8 AS seconds,
               left(query, 2000) AS query
          FROM pg_stat_activity
         WHERE backend_xmin IS NOT NULL AND pid <> pg_backend_pid()
        UNION ALL
        SELECT 'prepared', gid, database, owner, NULL, 'prepared',
               age(transaction)::bigint,
               EXTRACT(EPOCH FROM clock_timestamp() - prepared)::float8, NULL
          FROM pg_prepared_xacts
        UNION ALL
        SELECT 'slot', slot_name, database, slot_type,
               plugin, CASE WHEN active THEN 'active' ELSE 'inactive' END,
               GREATEST(age(xmin), age(catalog_xmin))::bigint, NULL, NULL
          FROM pg_replication_slots
         WHERE xmin IS NOT NULL OR catalog_xmin IS NOT NULL
         ORDER BY age DESC NULLS LAST
         LIMIT 20""")
    off = [t for t in tables if t["autovacuum_disabled"]]
    results = []
    for database, status in problems:
        percent_freeze, percent_wrap, left = xid_status(
            database["age"], freeze_max, warn_percent, crit_percent)[1:]
        holders = xid_holders(holders_rows, database["age"])
        here = database["datname"] == ctx.database
        held = [_holder_text(h) for h in holders[:5]]
        if here:
            held += ["table %s with autovacuum disabled (%s transactions old)" % (
                t["name"], _n(t["age"])) for t in off if t["age"] >= database["age"] / 2.0]
        if row["autovacuum"] == "off":
            held.append("autovacuum is off for the whole cluster")
        todo = ("End what holds the horizon (ROLLBACK PREPARED or COMMIT PREPARED an "
                "orphan prepared transaction, end a session that keeps a transaction "
                "open, drop an unused replication slot, enable autovacuum on the "
                "table), then freeze the database: vacuumdb --freeze --dbname %s (or "
                "VACUUM (FREEZE, VERBOSE) on its oldest tables%s). PostgreSQL stops writing "
                "when %s transaction IDs are left." % (
                    database["datname"], (": " + ", ".join(t["name"] for t in tables[:3]))
                    if here and tables else "", _n(XID_STOP_MARGIN)))
        results.append(CheckResult(
            "pg_xid_wraparound", status, database["age"], threshold,
            "database %s: its oldest unfrozen transaction ID is %s transactions old (%.0f%% "
            "of autovacuum_freeze_max_age %s, %.1f%% of the way to wraparound, %s left)%s" % (
                database["datname"], _n(database["age"]), percent_freeze, _n(freeze_max),
                percent_wrap, _n(left),
                "; held back by " + "; ".join(held) if held else
                "; nothing holds the horizon now: autovacuum has not caught up"),
            {"database": database["datname"], "age": database["age"],
             "freeze_max_age": freeze_max, "percent_of_freeze_max_age": percent_freeze,
             "percent_of_wraparound": percent_wrap, "xids_left": left,
             "holders": [dict(h, query=_query_text(h.get("query"))) for h in holders[:10]],
             "oldest_tables": tables if here else [], "what_to_do": todo},
            "database:%s" % database["datname"]))
    return results


def _autovacuum_off(reloptions):
    """Whether *reloptions* switch autovacuum off for the table.

    >>> _autovacuum_off("fillfactor=90,autovacuum_enabled=false"), _autovacuum_off("")
    (True, False)
    """
    options = {part.strip().lower() for part in (reloptions or "").split(",")}
    return bool(options & {"autovacuum_enabled=false", "autovacuum_enabled=off",
                           "autovacuum_enabled=0", "autovacuum_enabled=no"})


def sequence_outlook(last, minimum, limit, per_day, warn=80.0, crit=90.0, crit_days=30.0):
    """``(status, percent used, days left or None)`` of an ascending sequence.

    >>> sequence_outlook(1_900_000_000, 1, 2_147_483_647, None)
    ('warning', 88.5, None)
    >>> sequence_outlook(2_000_000_000, 1, 2_147_483_647, 10_000_000)
    ('critical', 93.1, 14.7)
    >>> sequence_outlook(1_000_000_000, 1, 2_147_483_647, 50_000_000)    # 23 days left
    ('critical', 46.6, 22.9)
    >>> sequence_outlook(5_000, 1, 2_147_483_647, 100)
    ('ok', 0.0, 21474786.5)
    """
    span = max(limit - minimum, 1)
    percent = round(100.0 * (last - minimum) / span, 1)
    days = round((limit - last) / per_day, 1) if per_day and per_day > 0 else None
    status = by_thresholds(percent, warn, crit)
    if days is not None and days < crit_days:
        status = CRITICAL
    return status, percent, days


@check("id_sequence_exhaustion", settings={
    "sequence_warn_percent": 80.0,  # of the column's range
    "sequence_crit_percent": 90.0,
    "sequence_crit_days": 30.0,  # critical when it runs out sooner at the measured growth
    "sequence_track_percent": 1.0,  # sequences past this share are followed between scans
    "sequence_growth_min_hours": 24,  # growth is measured over at least this long
})
def check_id_sequence_exhaustion(cursor, settings=None, ctx=None):
    """int2/int4 columns fed by a sequence: the share of the range used, the days left."""
    s = resolve_settings(settings)
    ctx = ctx or CheckContext.probe(cursor)
    rows = _query(cursor, """
        SELECT q.* FROM (
            SELECT n.nspname AS schema, sc.relname AS sequence, t.relname AS table_name,
                   a.attname AS column_name, format_type(a.atttypid, NULL) AS column_type,
                   sq.seqmin, LEAST(sq.seqmax, CASE a.atttypid WHEN 'int2'::regtype
                                                    THEN 32767 ELSE 2147483647 END) AS limit_value,
                   CASE WHEN has_sequence_privilege(sc.oid, 'SELECT,USAGE')
                        THEN pg_sequence_last_value(sc.oid) END AS last_value,
                   (SELECT count(*) FROM pg_constraint f
                     WHERE f.confrelid = t.oid AND f.contype = 'f') AS referencing
              FROM pg_sequence sq
              JOIN pg_class sc ON sc.oid = sq.seqrelid
              JOIN pg_namespace n ON n.oid = sc.relnamespace
              JOIN pg_depend d ON d.classid = 'pg_class'::regclass AND d.objid = sc.oid
                              AND d.refclassid = 'pg_class'::regclass AND d.deptype IN ('a', 'i')
              JOIN pg_class t ON t.oid = d.refobjid
              JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = d.refobjsubid
             WHERE a.atttypid IN ('int2'::regtype, 'int4'::regtype) AND sq.seqincrement > 0
               AND n.nspname NOT IN ('pg_catalog', 'information_schema')) q
         WHERE q.last_value IS NOT NULL
           AND q.last_value - q.seqmin >= %s / 100.0 * (q.limit_value - q.seqmin)
         ORDER BY (q.last_value - q.seqmin)::float8 / GREATEST(q.limit_value - q.seqmin, 1) DESC
         LIMIT %s""", (s["sequence_track_percent"], s["max_rows"]))
    warn, crit, crit_days = (s["sequence_warn_percent"], s["sequence_crit_percent"],
                             s["sequence_crit_days"])
    threshold = "used >= %g%% (critical >= %g%% or fewer than %g days left)" % (
        warn, crit, crit_days)
    previous = ctx.previous.get("sequences") or {}
    min_interval = s["sequence_growth_min_hours"] * 3600
    counters, results = {}, []
    for row in rows:
        key = "%s.%s" % (row["schema"], row["sequence"])
        last, before = int(row["last_value"]), previous.get(key) or {}
        per_day = since = None
        if before.get("value") is not None and ctx.now - float(before.get("at") or ctx.now) \
                >= min_interval:
            since = ctx.now - float(before["at"])
            per_day = (last - int(before["value"])) * 86400.0 / since
            counters[key] = {"value": last, "at": ctx.now}
        elif before.get("value") is not None and int(before["value"]) <= last:
            counters[key] = dict(before)  # too soon: keep the older baseline
        else:
            counters[key] = {"value": last, "at": ctx.now}
        status, percent, days = sequence_outlook(last, int(row["seqmin"]),
                                                 int(row["limit_value"]), per_day, warn, crit,
                                                 crit_days)
        if status == OK:
            continue
        table = "%s.%s" % (row["schema"], row["table_name"])
        results.append(CheckResult(
            "id_sequence_exhaustion", status, percent, threshold,
            "%s.%s (%s, fed by %s) has used %.1f%% of its range: %s of %s%s" % (
                table, row["column_name"], row["column_type"], key, percent, _n(last),
                _n(row["limit_value"]),
                "; at %s a day it runs out in %s days" % (_n(per_day), days)
                if days is not None else
                "; not growing" if per_day is not None else
                "; the growth is measured over %s between scans" % human_duration(min_interval)),
            {"table": table, "column": row["column_name"], "column_type": row["column_type"],
             "sequence": key, "last_value": last, "limit": int(row["limit_value"]),
             "percent_used": percent, "per_day": round(per_day, 1) if per_day else per_day,
             "days_left": days, "measured_over_seconds": round(since) if since else None,
             "referencing_foreign_keys": row["referencing"],
             "what_to_do": "Widen the column before it runs out (inserts then fail with "
                           "'nextval: reached maximum value of sequence'): ALTER SEQUENCE "
                           "%s AS bigint; ALTER TABLE %s ALTER COLUMN %s TYPE bigint. This "
                           "rewrites the table under an exclusive lock: plan a maintenance "
                           "window. The %d foreign key column(s) pointing at it are int4 "
                           "too and need the same change." % (
                               key, table, row["column_name"], row["referencing"])},
            "sequence:%s" % key))
    ctx.counters["sequences"] = counters
    if not results:
        top = sequence_outlook(int(rows[0]["last_value"]), int(rows[0]["seqmin"]),
                               int(rows[0]["limit_value"]), None)[1] if rows else 0.0
        return _ok("id_sequence_exhaustion", top, threshold,
                   "%d int4 sequence(s) past %g%% of their range, the fullest at %.1f%%" % (
                       len(rows), s["sequence_track_percent"], top) if rows else
                   "no int4 sequence has used %g%% of its range" % s["sequence_track_percent"],
                   "sequences", {"tracked": len(rows)})
    return results


def _owning_modules(cursor, ctx, indexes, constraints):
    """``{("index"|"constraint", name): module}`` through Odoo's own tables.

    A constraint (or the unique index of an SQL constraint) is in
    ``ir_model_constraint``; an index Odoo made for a field is named
    ``<table>__<column>_index`` and the field's ``ir_model_data`` names its
    module; failing both, the module that created the table's model.
    """
    needed = {"ir_model_constraint", "ir_model_fields", "ir_model_data", "ir_model"}
    if not needed <= ctx.tables or not (indexes or constraints):
        return {}
    items = [("index", row["name"], row["table_name"]) for row in indexes] + \
            [("constraint", row["name"], row["table_name"]) for row in constraints]
    rows = _query(cursor, """
        SELECT i.kind, i.name, COALESCE(cm.name, fm.module, tm.module) AS module
          FROM unnest(%s::text[], %s::text[], %s::text[]) AS i(kind, name, table_name)
          LEFT JOIN ir_model_constraint c ON c.name = i.name
          LEFT JOIN ir_module_module cm ON cm.id = c.module
          LEFT JOIN LATERAL (
              SELECT d.module FROM ir_model_fields f
                JOIN ir_model_data d ON d.model = 'ir.model.fields' AND d.res_id = f.id
               WHERE i.kind = 'index' AND i.name = i.table_name || '__' || f.name || '_index'
                 AND replace(f.model, '.', '_') = i.table_name
               ORDER BY d.id LIMIT 1) fm ON TRUE
          LEFT JOIN LATERAL (
              SELECT d.module FROM ir_model m
                JOIN ir_model_data d ON d.model = 'ir.model' AND d.res_id = m.id
               WHERE replace(m.model, '.', '_') = i.table_name
               ORDER BY d.id LIMIT 1) tm ON TRUE""",
                  ([k for k, _, _ in items], [n for _, n, _ in items],
                   [t for _, _, t in items]))
    return {(row["kind"], row["name"]): row["module"] for row in rows if row["module"]}


@check("pg_invalid_indexes")
def check_pg_invalid_indexes(cursor, settings=None, ctx=None):
    """Invalid indexes (``indisvalid = false``) and constraints not validated.

    An index whose table has a CREATE INDEX under way is being built (it is
    invalid until the build ends): it is left out.
    """
    s = resolve_settings(settings)
    ctx = ctx or CheckContext.probe(cursor)
    indexes = _query(cursor, """
        SELECT n.nspname AS schema, ic.relname AS name, tc.relname AS table_name,
               i.indisunique AS is_unique, i.indisready AS is_ready,
               pg_relation_size(ic.oid) AS bytes, pg_get_indexdef(ic.oid) AS definition
          FROM pg_index i
          JOIN pg_class ic ON ic.oid = i.indexrelid
          JOIN pg_class tc ON tc.oid = i.indrelid
          JOIN pg_namespace n ON n.oid = ic.relnamespace
         WHERE NOT i.indisvalid
           AND NOT EXISTS (SELECT 1 FROM pg_stat_progress_create_index p
                            WHERE p.relid = i.indrelid)
         ORDER BY n.nspname, ic.relname
         LIMIT %s""", (s["max_rows"],))
    constraints = _query(cursor, """
        SELECT n.nspname AS schema, c.conname AS name, t.relname AS table_name,
               c.contype::text AS kind, pg_get_constraintdef(c.oid) AS definition
          FROM pg_constraint c
          JOIN pg_class t ON t.oid = c.conrelid
          JOIN pg_namespace n ON n.oid = t.relnamespace
         WHERE NOT c.convalidated
         ORDER BY n.nspname, c.conname
         LIMIT %s""", (s["max_rows"],))
    threshold = "indisvalid = false or convalidated = false"
    if not indexes and not constraints:
        return _ok("pg_invalid_indexes", 0, threshold,
                   "no invalid index, every constraint validated", "indexes")
    modules = _owning_modules(cursor, ctx, indexes, constraints)
    results = []
    for row in indexes:
        module = modules.get(("index", row["name"]))
        name = "%s.%s" % (row["schema"], row["name"])
        results.append(CheckResult(
            "pg_invalid_indexes", WARNING, 1, threshold,
            "index %s on %s is invalid (%s): queries do not use it%s%s" % (
                name, row["table_name"], "module %s" % module if module else
                "no Odoo module owns it", ", but every write still updates it"
                if row["is_ready"] else "", " and it still refuses duplicates"
                if row["is_unique"] and row["is_ready"] else ""),
            {"index": name, "table": "%s.%s" % (row["schema"], row["table_name"]),
             "module": module, "unique": row["is_unique"], "ready": row["is_ready"],
             "bytes": row["bytes"], "definition": row["definition"],
             "what_to_do": "An interrupted or failed CREATE INDEX CONCURRENTLY leaves the "
                           "index invalid (for a unique index: duplicate rows). %sDROP INDEX "
                           "CONCURRENTLY %s; then build it again: %s." % (
                               "Find and merge the duplicates first. " if row["is_unique"]
                               else "", name, "`odoo -u %s` recreates it" % module
                               if module else "CREATE INDEX CONCURRENTLY ...")},
            "index:%s" % name))
    for row in constraints:
        module = modules.get(("constraint", row["name"]))
        table = "%s.%s" % (row["schema"], row["table_name"])
        results.append(CheckResult(
            "pg_invalid_indexes", WARNING, 1, threshold,
            "constraint %s on %s is not validated (%s): existing rows were never checked "
            "against %s" % (row["name"], table, "module %s" % module if module else
                            "no Odoo module owns it", _query_text(row["definition"])),
            {"constraint": row["name"], "table": table, "module": module,
             "kind": row["kind"], "definition": row["definition"],
             "what_to_do": "ALTER TABLE %s VALIDATE CONSTRAINT %s; it names the rows that "
                           "break it if any do: fix them, then validate again." % (
                               table, row["name"])},
            "constraint:%s.%s" % (table, row["name"])))
    return results


@check("pg_prepared_transactions", settings={
    "prepared_xact_warn_minutes": 5,
    "prepared_xact_crit_minutes": 60,
})
def check_pg_prepared_transactions(cursor, settings=None, ctx=None):
    """Prepared transactions (two-phase commit) older than a threshold, cluster-wide."""
    s = resolve_settings(settings)
    warn = s["prepared_xact_warn_minutes"] * 60
    crit = s["prepared_xact_crit_minutes"] * 60
    rows = _query(cursor, """
        SELECT p.gid, p.database, p.owner, p.prepared, age(p.transaction)::bigint AS xid_age,
               EXTRACT(EPOCH FROM clock_timestamp() - p.prepared)::float8 AS seconds,
               (SELECT count(*) FROM pg_locks l
                 WHERE l.pid IS NULL AND l.virtualtransaction = (
                       SELECT x.virtualtransaction FROM pg_locks x
                        WHERE x.locktype = 'transactionid' AND x.transactionid = p.transaction
                        LIMIT 1)) AS locks,
               current_setting('max_prepared_transactions')::int AS max_prepared
          FROM pg_prepared_xacts p
         WHERE p.prepared < clock_timestamp() - %s * interval '1 second'
         ORDER BY p.prepared
         LIMIT %s""", (warn, s["max_rows"]))
    threshold = "prepared >= %s ago (critical >= %s)" % (human_duration(warn),
                                                          human_duration(crit))
    if not rows:
        return _ok("pg_prepared_transactions", 0, threshold,
                   "no prepared transaction older than %s" % human_duration(warn),
                   "prepared_transactions")
    return [CheckResult(
        "pg_prepared_transactions", by_thresholds(row["seconds"], warn, crit),
        round(row["seconds"]), threshold,
        "prepared transaction %r (database %s, role %s) has waited %s for its COMMIT "
        "PREPARED; it holds %d lock(s) and keeps vacuum from freezing past it (%s "
        "transactions old)" % (row["gid"], row["database"], row["owner"],
                               human_duration(row["seconds"]), row["locks"],
                               _n(row["xid_age"])),
        {"gid": row["gid"], "database": row["database"], "owner": row["owner"],
         "prepared": row["prepared"], "seconds": row["seconds"], "locks": row["locks"],
         "xid_age": row["xid_age"],
         "what_to_do": "Odoo never prepares transactions: this one was left by another "
                       "program or a transaction manager that died. Find which one, then, "
                       "connected to database %s as %s or a superuser: ROLLBACK PREPARED "
                       "%s (or COMMIT PREPARED if it must be kept). A PostgreSQL restart "
                       "does not remove it." % (row["database"], row["owner"],
                                                _sql_literal(row["gid"]))},
        "prepared:%s" % row["gid"]) for row in rows]


def _sql_literal(text):
    """*text* as an SQL string literal (for the "what to do" text).

    >>> _sql_literal("it's")
    "'it''s'"
    """
    return "'" + str(text).replace("'", "''") + "'"


@check("pg_replication_slots", settings={
    "slot_retained_warn_mib": 1024,  # WAL an inactive replication slot keeps
    "slot_retained_crit_mib": 10240,
})
def check_pg_replication_slots(cursor, settings=None, ctx=None):
    """Inactive replication slots and the WAL they keep (or lost)."""
    s = resolve_settings(settings)
    warn = s["slot_retained_warn_mib"] * 1024 * 1024
    crit = s["slot_retained_crit_mib"] * 1024 * 1024
    rows = _query(cursor, """
        SELECT slot_name, slot_type, plugin, database, active, temporary,
               wal_status, safe_wal_size,
               pg_wal_lsn_diff(CASE WHEN pg_is_in_recovery() THEN pg_last_wal_receive_lsn()
                                    ELSE pg_current_wal_lsn() END, restart_lsn)::bigint
                   AS retained,
               GREATEST(age(xmin), age(catalog_xmin))::bigint AS xmin_age,
               current_setting('max_slot_wal_keep_size') AS max_slot_wal_keep_size
          FROM pg_replication_slots
         ORDER BY active, retained DESC NULLS LAST
         LIMIT %s""", (s["max_rows"],))
    threshold = "inactive, keeping >= %s of WAL (critical >= %s, or WAL lost)" % (
        human_bytes(warn), human_bytes(crit))
    results = []
    for row in rows:
        if row["active"]:
            continue
        retained = row["retained"] or 0
        status = by_thresholds(retained, warn, crit)
        if row["wal_status"] == "lost":
            status = CRITICAL
        if status == OK:
            continue
        results.append(CheckResult(
            "pg_replication_slots", status, retained, threshold,
            "replication slot %r (%s%s) is inactive and %s" % (
                row["slot_name"], row["slot_type"],
                ", %s, database %s" % (row["plugin"], row["database"]) if row["plugin"]
                else "",
                "has lost the WAL it needed: its consumer can no longer resume"
                if row["wal_status"] == "lost" else
                "keeps %s of WAL on the server's disk%s" % (
                    human_bytes(retained), "; it also holds xmin back (%s transactions)"
                    % _n(row["xmin_age"]) if row["xmin_age"] else "")),
            {"slot": row["slot_name"], "type": row["slot_type"], "plugin": row["plugin"],
             "database": row["database"], "retained_bytes": retained,
             "wal_status": row["wal_status"], "safe_wal_size": row["safe_wal_size"],
             "xmin_age": row["xmin_age"],
             "max_slot_wal_keep_size": row["max_slot_wal_keep_size"],
             "what_to_do": "If its consumer (a standby, a logical subscriber, a CDC tool) "
                           "is gone for good: SELECT pg_drop_replication_slot(%s). Else bring "
                           "the consumer back. Set max_slot_wal_keep_size so that a slot "
                           "cannot fill the disk (it is %s)." % (
                               _sql_literal(row["slot_name"]),
                               row["max_slot_wal_keep_size"])},
            "slot:%s" % row["slot_name"]))
    if not results:
        return _ok("pg_replication_slots", 0, threshold,
                   "%d replication slot(s), %d active, none keeping too much WAL" % (
                       len(rows), sum(1 for row in rows if row["active"])), "slots")
    return results
