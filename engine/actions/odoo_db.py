"""Odoo-level fix actions: plain, parameterised SQL on Odoo's own database.

They run inside Odoo (``runs_on = "odoo"``) through :func:`engine.actions.runner.execute`
with ``context.cursor`` set to a DB-API cursor (Odoo passes ``env.cr``; the tests
a psycopg2 cursor on a throwaway database). They never import ``odoo``: the few
things only Odoo's API can do come from ``context.hooks``, which the addon fills::

    registry_ready()            -> (ok, detail)  the registry of this process is loaded,
                                                 no module is being loaded right now
    assets_deleted(store_fnames) -> text         mark the files of deleted bundles for
                                                 the filestore's garbage collector and
                                                 clear Odoo's asset cache
    regenerate_assets(bundle)   -> (ok, detail)  build a bundle's CSS and JS again
                                                 (ir.qweb / AssetsBundle)

Each step runs in a savepoint of its own, so a failing statement never leaves
the caller's transaction aborted: a failed apply is undone by the savepoint,
and the runner's rollback can still run. Rows are locked with
``FOR NO KEY UPDATE SKIP LOCKED`` (as ``ir_cron.py`` does); a row another
transaction holds makes the step fail instead of waiting for it.

============================  =============================================  ==================
action                        changes                                        rollback
============================  =============================================  ==================
reset_stuck_module_states     ir_module_module.state: 'to install' ->        the previous states
                              uninstalled, 'to upgrade'/'to remove' ->
                              installed
reactivate_cron               ir_cron.active = true, failure_count = 0,      the previous values
                              first_failure_date = NULL
clear_asset_bundles           deletes the /web/assets/ attachments Odoo       regenerate (the old
                              builds from the modules' files                 cache is not restored)
============================  =============================================  ==================

Why one module of ~670 lines: the three Odoo-level actions share the cursor,
savepoint and lock helpers above; each action is one class.
"""

import json
import uuid
from contextlib import contextmanager
from datetime import datetime

from .base import ActionError, FixAction, Plan, Precondition, register
from .params import DATA, Param

#: Transient module states and the state each one goes back to.
TRANSIENT_STATES = {"to install": "uninstalled", "to upgrade": "installed",
                    "to remove": "installed"}
#: Table locks that mean "this session writes (or is about to write) the table".
#: Table locks that change no row: a read; VACUUM, ANALYZE (autovacuum's too) and
#: CREATE INDEX. Only the other modes are a writer's.
_READ_ONLY_LOCKS = ("AccessShareLock", "ShareUpdateExclusiveLock", "ShareLock")
#: Rows changed more recently than this may belong to an upgrade between two commits.
DEFAULT_MIN_AGE = 120
#: Incident states that count as "resolved" for the cause of a deactivated cron.
RESOLVED_INCIDENT_STATES = ("resolved",)
#: The bundle whose loading proves that the backend works again.
DEFAULT_VERIFY_BUNDLE = "web.assets_backend"
#: How many rows a plan lists by name; the rest are counted.
_LIST_LIMIT = 20


@contextmanager
def savepoint(cursor):
    """Run a block in a savepoint: on error roll it back and re-raise.

    Keeps the surrounding transaction usable after a failing statement.
    """
    name = f"auto_heal_{uuid.uuid4().hex[:12]}"
    cursor.execute(f"SAVEPOINT {name}")
    try:
        yield cursor
    except BaseException:
        cursor.execute(f"ROLLBACK TO SAVEPOINT {name}")
        cursor.execute(f"RELEASE SAVEPOINT {name}")
        raise
    cursor.execute(f"RELEASE SAVEPOINT {name}")


def _cursor(context):
    if context.cursor is None:
        raise ActionError("an Odoo-level action needs a database cursor (context.cursor)")
    return context.cursor


def _iso(value):
    return value.isoformat() if isinstance(value, datetime) else value


def _names(names):
    shown = ", ".join(names[:_LIST_LIMIT])
    more = len(names) - _LIST_LIMIT
    return shown + (f" and {more} more" if more > 0 else "")


def _current_database(cursor):
    cursor.execute("SELECT current_database()")
    return cursor.fetchone()[0]


def _table_exists(cursor, table):
    cursor.execute("SELECT to_regclass(%s) IS NOT NULL", (table,))
    return bool(cursor.fetchone()[0])


def _lock(cursor, table, ids):
    """Lock rows *ids* of *table* without waiting (``FOR NO KEY UPDATE SKIP LOCKED``).

    Raises :class:`ActionError` naming the rows another transaction holds (a cron
    worker running the job, an upgrade writing the module) or that are gone.
    """
    ids = sorted(set(ids))
    if not ids:
        return
    cursor.execute(f"SELECT id FROM {table} WHERE id = ANY(%s) FOR NO KEY UPDATE SKIP LOCKED",
                   (ids,))
    busy = sorted(set(ids) - {row[0] for row in cursor.fetchall()})
    if busy:
        raise ActionError(f"{table} row(s) {', '.join(map(str, busy))} are locked by another "
                          "transaction (running, or being changed) or gone")


def _call_hook(context, name, *args):
    hook = (context.hooks or {}).get(name)
    if hook is None:
        return None
    return hook(*args)


# -- reset_stuck_module_states -------------------------------------------------------------


def other_sessions_on_modules(cursor):
    """Other sessions of this database that write, or read in a transaction, ir_module_module.

    Returns ``(writers, readers)``: lists of short descriptions. A writer holds (or
    waits for) a lock stronger than a plain read on the table: an upgrade that
    updated module rows keeps it until its commit. A reader is a session whose
    current or last statement of its open transaction names the table: a
    registry being loaded reads it first thing.

    Only client sessions count: an autovacuum worker on the table changes no
    module row. pg_stat_activity is a snapshot taken once per transaction; it is
    cleared first, or a long transaction (Odoo's cron, a test) would see the past.
    """
    cursor.execute("SELECT pg_stat_clear_snapshot()")
    cursor.execute("""
        SELECT l.pid, l.mode, l.granted, coalesce(a.application_name, ''),
               coalesce(a.state, ''), left(coalesce(a.query, ''), 160)
          FROM pg_locks l
          LEFT JOIN pg_stat_activity a ON a.pid = l.pid
         WHERE l.locktype = 'relation'
           AND l.relation = to_regclass('ir_module_module')
           AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
           AND l.pid <> pg_backend_pid()
           AND coalesce(a.backend_type, 'client backend') = 'client backend'
           AND NOT (l.mode = ANY(%s))
         ORDER BY l.pid
    """, (list(_READ_ONLY_LOCKS),))
    writers = [f"pid {pid} ({app or 'no application name'}, {state or 'unknown state'}) "
               f"{'holds' if granted else 'waits for'} {mode}: {' '.join(query.split())}"
               for pid, mode, granted, app, state, query in cursor.fetchall()]
    cursor.execute("""
        SELECT pid, coalesce(application_name, ''), state, left(query, 160)
          FROM pg_stat_activity
         WHERE datname = current_database()
           AND pid <> pg_backend_pid()
           AND backend_type = 'client backend'
           AND state IN ('active', 'idle in transaction', 'idle in transaction (aborted)')
           AND query ILIKE %s
         ORDER BY pid
    """, ("%ir_module_module%",))
    readers = [f"pid {pid} ({app or 'no application name'}, {state}): {' '.join(query.split())}"
               for pid, app, state, query in cursor.fetchall()]
    return writers, readers


@register
class ResetStuckModuleStates(FixAction):
    """Put back modules left 'to install', 'to upgrade' or 'to remove'.

    Odoo itself does this (``odoo.modules.loading.reset_modules_state``) only
    after a failed load in the same process; a process killed in the middle of
    an upgrade leaves the states behind, and while they stay, Odoo's cron
    skips every job of the database ("Skipping database ... because of modules
    to install/upgrade/remove"). So this action is run from the backend's Run
    button or by the watchdog, not by the cron.

    Parameters: ``modules`` (optional list of names; default every module in
    a transient state), ``min_age`` (seconds a row must be unchanged, default
    120: an upgrade between two commits changed its rows a moment ago).
    """

    name = "reset_stuck_module_states"
    runs_on = "odoo"
    description = ("Reset modules left in 'to install' (-> uninstalled), 'to upgrade' or "
                   "'to remove' (-> installed) when no upgrade is running.")
    params = (
        Param("modules", "names", DATA, "only these modules (default: every stuck one)",
              capture="module", metavar="MODULE"),
        Param("min_age", "number", DATA, "seconds a row must be unchanged",
              default=DEFAULT_MIN_AGE, low=0, high=7 * 86400, metavar="SECONDS"),
    )

    def _stuck_rows(self, cursor, modules):
        query = """
            SELECT id, name, state, write_date,
                   extract(epoch FROM (clock_timestamp() AT TIME ZONE 'UTC') - write_date)
              FROM ir_module_module
             WHERE state = ANY(%s)
        """
        args = [list(TRANSIENT_STATES)]
        if modules:
            query += " AND name = ANY(%s)"
            args.append(list(modules))
        cursor.execute(query + " ORDER BY name", args)
        return cursor.fetchall()

    def plan(self, context, params):
        cursor = _cursor(context)
        modules = [str(name) for name in params.get("modules") or []]
        min_age = float(params.get("min_age", DEFAULT_MIN_AGE))
        with savepoint(cursor):
            database = _current_database(cursor)
            rows = self._stuck_rows(cursor, modules)
            writers, readers = other_sessions_on_modules(cursor)
        # Named modules are their own target: the budget counts them apart.
        target = f"ir_module_module@{database}" + (f":{','.join(sorted(modules))}"
                                                    if modules else "")
        steps = [f"{name}: {state} -> {TRANSIENT_STATES[state]}"
                 for _id, name, state, _date, _age in rows[:_LIST_LIMIT]]
        if len(rows) > _LIST_LIMIT:
            steps.append(f"... and {len(rows) - _LIST_LIMIT} more module(s)")
        ready = _call_hook(context, "registry_ready")
        young = [f"{name} ({age:.0f} s)" for _id, name, _state, _date, age in rows
                 if age is not None and float(age) < min_age]
        busy = ("an upgrade or install may be running: wait until it ends (or stop the "
                "process named), then check the plan again")
        preconditions = [
            Precondition("no other database session writes ir_module_module",
                         not writers, "; ".join(writers), remedy=busy),
            Precondition("no other transaction reads or writes ir_module_module",
                         not readers, "; ".join(readers), remedy=busy),
            Precondition("the Odoo registry is loaded (no module is loading)",
                         bool(ready and ready[0]),
                         ready[1] if ready else "not measured: no registry_ready hook, "
                         "so an upgrade in this process cannot be ruled out", remedy=busy),
            Precondition(f"the rows were last changed at least {min_age:g} s ago",
                         not young, ", ".join(young),
                         remedy=f"an upgrade may be writing these rows right now: wait until "
                                f"they are {min_age:g} s old, then check the plan again (or "
                                "lower the parameter min_age if you know no upgrade runs)"),
        ]
        summary = (f"reset {len(rows)} module(s) left in a transient state"
                   if rows else "no module is left in a transient state")
        return Plan(
            self.name, target, summary, steps=steps, preconditions=preconditions,
            changes=bool(rows),
            details={"ids": [row[0] for row in rows], "modules": modules,
                     "note": "Odoo's cron skips the database while these states stay."},
            target_label=(f"Module states of {', '.join(sorted(modules))}" if modules
                          else "Module states (every module)"))

    def backup(self, context, plan):
        cursor = _cursor(context)
        with savepoint(cursor):
            cursor.execute("SELECT id, name, state, write_date FROM ir_module_module "
                           "WHERE id = ANY(%s) ORDER BY id", (plan.details["ids"],))
            rows = [{"id": row_id, "name": name, "state": state, "write_date": _iso(date)}
                    for row_id, name, state, date in cursor.fetchall()]
        return {"table": "ir_module_module", "rows": rows}

    def apply(self, context, plan, backup):
        cursor = _cursor(context)
        rows = [row for row in backup["rows"] if row["state"] in TRANSIENT_STATES]
        ids = [row["id"] for row in rows]
        with savepoint(cursor):
            _lock(cursor, "ir_module_module", ids)
            changed = []
            for row in rows:
                cursor.execute(
                    "UPDATE ir_module_module SET state = %s, "
                    "write_date = clock_timestamp() AT TIME ZONE 'UTC' "
                    "WHERE id = %s AND state = %s RETURNING name",
                    (TRANSIENT_STATES[row["state"]], row["id"], row["state"]))
                changed += [f"{name}: {row['state']} -> {TRANSIENT_STATES[row['state']]}"
                            for (name,) in cursor.fetchall()]
        return "\n".join(changed) or "no row was still in its transient state"

    def verify(self, context, plan):
        cursor = _cursor(context)
        with savepoint(cursor):
            rows = self._stuck_rows(cursor, plan.details.get("modules"))
        if rows:
            return False, "still in a transient state: " + _names(
                [f"{name} ({state})" for _id, name, state, _date, _age in rows])
        return True, "no module left in a transient state"

    def rollback(self, context, plan, backup):
        cursor = _cursor(context)
        by_id = {row["id"]: row for row in backup["rows"]}
        restored = []
        with savepoint(cursor):
            # Only the rows that differ, so that an apply that changed nothing (or a
            # second rollback) never waits for a lock.
            cursor.execute("SELECT id, state FROM ir_module_module WHERE id = ANY(%s)",
                           (list(by_id),))
            differ = [row_id for row_id, state in cursor.fetchall()
                      if state != by_id[row_id]["state"]]
            _lock(cursor, "ir_module_module", differ)
            for row_id in differ:
                row = by_id[row_id]
                cursor.execute("UPDATE ir_module_module SET state = %s, write_date = %s "
                               "WHERE id = %s", (row["state"], row["write_date"], row_id))
                restored.append(f"{row['name']}: back to {row['state']}")
        return "\n".join(restored) or "every module was already in its previous state"


# -- reactivate_cron -----------------------------------------------------------------------


#: Incidents of a job's failure itself: reactivating waits until they are resolved.
CRON_FAILURE_TYPES = ("cron_job_failed",)
#: Incidents of the switch-off (Odoo's "has been deactivated" record, which the scanner
#: folds the failure into, and the database check): the cause once a person took it.
CRON_SWITCH_OFF_TYPES = ("cron_job_deactivated", "cron_switched_off")
#: States of a switch-off incident that say a person has dealt with its cause.
TAKEN_INCIDENT_STATES = ("acknowledged", "resolved")


def cron_failure_incidents(cursor, server_action_id, fingerprints=(), cron_id=None):
    """The incidents behind a cron's failures: ``[(fingerprint, state, name, type)]``.

    With *fingerprints*, exactly those incidents; otherwise the incidents of
    the ``cron_job_failed`` pattern whose captured ``action_id`` is the
    cron's server action (Odoo 18 logs "server action #N failed"), or, when
    there is none, those of the switch-off (:data:`CRON_SWITCH_OFF_TYPES`)
    whose captured ``cron_id`` is *cron_id*.
    """
    if fingerprints:
        cursor.execute("SELECT fingerprint, state, coalesce(name, fingerprint), "
                       "coalesce(pattern_type, '') FROM auto_heal_incident "
                       "WHERE fingerprint = ANY(%s) ORDER BY id", (list(fingerprints),))
        return cursor.fetchall()
    wanted = {kind: str(server_action_id) for kind in CRON_FAILURE_TYPES}
    if cron_id is not None:
        wanted.update({kind: str(cron_id) for kind in CRON_SWITCH_OFF_TYPES})
    cursor.execute("SELECT fingerprint, state, coalesce(name, fingerprint), pattern_type, "
                   "captures FROM auto_heal_incident WHERE pattern_type = ANY(%s) "
                   "AND captures LIKE ANY(%s) ORDER BY id",
                   (list(wanted), [f"%{value}%" for value in set(wanted.values())]))
    found = []
    for fingerprint, state, name, kind, captures in cursor.fetchall():
        try:
            captured = json.loads(captures or "{}")
        except ValueError:
            continue
        if not isinstance(captured, dict):
            continue
        key = "action_id" if kind in CRON_FAILURE_TYPES else "cron_id"
        if str(captured.get(key)) == wanted[kind]:
            found.append((fingerprint, state, name, kind))
    failures = [row for row in found if row[3] in CRON_FAILURE_TYPES]
    # The failure's own incident is the cause when it exists; the switch-off stands in
    # for it only when the failing record was folded into it (or only the check saw it).
    return failures or found


def cause_taken(kind, state):
    """Whether an incident behind a cron's failures lets the cron run again.

    A failure incident must be resolved. A switch-off incident holds the
    failure itself (the scanner folds the failing record into it; the check
    sees only the switch-off), and the reactivation resolves it: it counts
    once a person acknowledged it, saying the cause is dealt with.

    >>> cause_taken("cron_job_failed", "acknowledged"), cause_taken("cron_job_failed", "resolved")
    (False, True)
    >>> cause_taken("cron_switched_off", "new"), cause_taken("cron_switched_off", "acknowledged")
    (False, True)
    """
    if kind in CRON_SWITCH_OFF_TYPES:
        return state in TAKEN_INCIDENT_STATES
    return state in RESOLVED_INCIDENT_STATES


@register
class ReactivateCron(FixAction):
    """Switch an ir.cron back on that Odoo 18 switched off after failures.

    Odoo 18 deactivates a job after 5 failures over 7 days (and resets its
    counters when it does); a job an admin stopped by hand has no incident, so
    no fix run. The job is switched on again only once the cause of its
    failures is dealt with, else it would fail again: the ``cron_job_failed``
    incidents of its server action are resolved, and the incidents of the
    switch-off itself (the "has been deactivated" record, into which the
    scanner folds the failure, or the ``cron_switched_off`` check) are
    acknowledged or resolved by a person.

    Parameters: ``cron_id`` (required), ``cause`` (optional fingerprint or
    list of fingerprints of the incidents behind the failures; default: the
    incidents above).
    """

    name = "reactivate_cron"
    title = "Reactivate a scheduled action"
    runs_on = "odoo"
    params = (
        Param("cron_id", "int", DATA, "the scheduled action", required=True, low=1,
              high=2**31 - 1, capture="cron_id", metavar="ID"),
        Param("cause", "texts", DATA, "the incidents behind its failures (fingerprints)",
              metavar="FINGERPRINT", refers="incident"),
    )
    description = ("Re-enable a scheduled action Odoo 18 switched off after repeated "
                   "failures, once the cause of the failures is dealt with, and reset its "
                   "failure counters.")

    @staticmethod
    def _read(cursor, cron_id):
        cursor.execute("SELECT id, cron_name, active, failure_count, first_failure_date, "
                       "ir_actions_server_id FROM ir_cron WHERE id = %s", (cron_id,))
        return cursor.fetchone()

    def plan(self, context, params):
        cursor = _cursor(context)
        try:
            cron_id = int(params["cron_id"])
        except (TypeError, ValueError):
            raise ActionError(f"cron_id must be a number, not {params['cron_id']!r}") from None
        cause = params.get("cause") or []
        cause = [cause] if isinstance(cause, str) else [str(item) for item in cause]
        with savepoint(cursor):
            database = _current_database(cursor)
            row = self._read(cursor, cron_id)
            if row is None:
                raise ActionError(f"no scheduled action with id {cron_id} in {database}")
            _id, name, active, failures, first_failure, server_action = row
            has_table = _table_exists(cursor, "auto_heal_incident")
            incidents = cron_failure_incidents(cursor, server_action, cause, cron_id) \
                if has_table else []
        changes = not active or bool(failures) or first_failure is not None
        # Switch-off incidents all tell the same switch-off: one a person took is enough.
        switch_offs = [row for row in incidents if row[3] in CRON_SWITCH_OFF_TYPES]
        switch_off_taken = any(cause_taken(kind, state) for _fp, state, _l, kind in switch_offs)
        waiting = [f"{label} ({state})" for _fp, state, label, kind in incidents
                   if not cause_taken(kind, state)
                   and not (kind in CRON_SWITCH_OFF_TYPES and switch_off_taken)]
        missing = sorted(set(cause) - {fp for fp, _state, _label, _kind in incidents})
        remedy = ""
        if not has_table:
            ok, detail = False, "no auto_heal_incident table to look the incidents up in"
        elif missing:
            ok, detail = False, f"unknown incident(s): {', '.join(missing)}"
            remedy = "pick existing incidents as the cause, or leave it empty"
        elif not incidents:
            ok, detail = False, (f"no incident of this job's failures is known (patterns "
                                 f"cron_job_failed of server action #{server_action}, "
                                 f"cron_job_deactivated or cron_switched_off of job "
                                 f"#{cron_id})")
            remedy = "pick the incident behind the failures as the cause"
        else:
            ok, detail = not waiting, ("not dealt with yet: " + ", ".join(waiting) if waiting
                                       else ", ".join(label for _fp, _s, label, _k in incidents))
            if waiting:
                remedy = ("read the traceback of the cause and fix it; then acknowledge the "
                          "incident of the switch-off (or resolve the failure's incident) and "
                          "check the plan again")
        steps = []
        if not active:
            steps.append(f"set active = true on scheduled action {name!r} (#{cron_id})")
        if failures or first_failure is not None:
            steps.append(f"reset failure_count {failures} -> 0 and first_failure_date "
                         f"{_iso(first_failure) or 'empty'} -> empty")
        return Plan(
            self.name, f"ir_cron#{cron_id}@{database}",
            f"reactivate scheduled action {name!r}" if changes else
            f"scheduled action {name!r} is active and has no failures",
            steps=steps, changes=changes,
            preconditions=[Precondition("the cause of the job's failures is dealt with", ok,
                                        detail, remedy=remedy)],
            details={"cron_id": cron_id, "cron_name": name, "server_action_id": server_action,
                     "cause": [fp for fp, _state, _label, _kind in incidents]},
            target_label=f"Scheduled action {name!r} (#{cron_id})")

    def backup(self, context, plan):
        cursor = _cursor(context)
        with savepoint(cursor):
            row = self._read(cursor, plan.details["cron_id"])
        if row is None:
            raise ActionError(f"scheduled action #{plan.details['cron_id']} is gone")
        return {"table": "ir_cron", "id": row[0], "name": row[1], "active": row[2],
                "failure_count": row[3], "first_failure_date": _iso(row[4])}

    def apply(self, context, plan, backup):
        cursor = _cursor(context)
        with savepoint(cursor):
            _lock(cursor, "ir_cron", [backup["id"]])
            cursor.execute("UPDATE ir_cron SET active = true, failure_count = 0, "
                           "first_failure_date = NULL WHERE id = %s", (backup["id"],))
        return (f"scheduled action {backup['name']!r} (#{backup['id']}): active "
                f"{backup['active']} -> True, failure_count {backup['failure_count']} -> 0")

    def verify(self, context, plan):
        cursor = _cursor(context)
        with savepoint(cursor):
            row = self._read(cursor, plan.details["cron_id"])
        if row is None:
            return False, f"scheduled action #{plan.details['cron_id']} is gone"
        _id, name, active, failures, first_failure, _server = row
        ok = bool(active) and not failures and first_failure is None
        return ok, (f"{name!r}: active={active}, failure_count={failures}, "
                    f"first_failure_date={_iso(first_failure) or 'empty'}")

    def rollback(self, context, plan, backup):
        cursor = _cursor(context)
        previous = (backup["active"], backup["failure_count"], backup["first_failure_date"])
        with savepoint(cursor):
            row = self._read(cursor, backup["id"])
            if row is not None and (row[2], row[3], _iso(row[4])) == previous:
                return f"scheduled action {backup['name']!r} (#{backup['id']}) was unchanged"
            _lock(cursor, "ir_cron", [backup["id"]])
            cursor.execute("UPDATE ir_cron SET active = %s, failure_count = %s, "
                           "first_failure_date = %s WHERE id = %s",
                           (backup["active"], backup["failure_count"],
                            backup["first_failure_date"], backup["id"]))
        return (f"scheduled action {backup['name']!r} (#{backup['id']}) restored: "
                f"active={backup['active']}, failure_count={backup['failure_count']}")


# -- clear_asset_bundles -------------------------------------------------------------------


def _like_escape(text):
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


#: The attachments Odoo 18 builds for asset bundles, exactly as
#: ``ir.attachment.regenerate_assets_bundles`` selects them (create_uid 1: the superuser).
_ASSET_WHERE = """
    url LIKE '/web/assets/%%' AND res_model = 'ir.ui.view' AND coalesce(res_id, 0) = 0
    AND public AND create_uid = 1
"""


@register
class ClearAssetBundles(FixAction):
    """Delete the cached asset bundles so that Odoo builds them again.

    Odoo 18 keeps each built bundle as a public ir.attachment with a url
    ``/web/assets/<version>/<bundle>[.rtl].<ext>`` (``AssetsBundle.save_attachment``)
    and builds it again whenever it is missing. Bundles whose file went missing
    from the filestore, or that were built from a broken asset, are served
    broken until they are deleted.

    Parameters: ``bundle`` (optional: only this bundle, e.g. ``web.assets_backend``),
    ``verify_bundle`` (the bundle that must build again, default ``web.assets_backend``).
    """

    name = "clear_asset_bundles"
    runs_on = "odoo"
    description = ("Delete the cached asset bundle attachments (/web/assets/...) so that Odoo "
                   "builds them again, then check that the backend bundle builds.")
    params = (
        Param("bundle", "text", DATA, "only this bundle, e.g. web.assets_backend",
              capture="bundle", metavar="BUNDLE"),
        Param("verify_bundle", "text", DATA, "the bundle that must build again",
              default=DEFAULT_VERIFY_BUNDLE, metavar="BUNDLE"),
    )

    @staticmethod
    def _rows(cursor, bundle):
        query = ("SELECT id, name, url, checksum, store_fname FROM ir_attachment WHERE "
                 + _ASSET_WHERE)
        args = []
        if bundle:
            query += " AND name LIKE %s"
            args.append(_like_escape(bundle) + ".%")
        cursor.execute(query + " ORDER BY id", args)
        return cursor.fetchall()

    def plan(self, context, params):
        cursor = _cursor(context)
        bundle = params.get("bundle") or ""
        verify_bundle = params.get("verify_bundle") or bundle or DEFAULT_VERIFY_BUNDLE
        with savepoint(cursor):
            database = _current_database(cursor)
            rows = self._rows(cursor, bundle)
        names = sorted({row[1] for row in rows})
        steps = [f"delete {len(rows)} ir.attachment row(s) of "
                 f"{'bundle ' + bundle if bundle else 'every asset bundle'}: {_names(names)}"
                 ] if rows else []
        if rows:
            steps += ["mark their files for the filestore's garbage collector and clear "
                      "Odoo's asset cache",
                      f"build {verify_bundle} again and check its CSS and JS attachments"]
        has_hook = bool((context.hooks or {}).get("regenerate_assets"))
        return Plan(
            self.name, f"ir_attachment /web/assets/{bundle or '*'}@{database}",
            f"clear {len(rows)} cached asset bundle attachment(s)" if rows else
            "no cached asset bundle to clear",
            steps=steps, changes=bool(rows),
            preconditions=[Precondition(
                f"the bundle {verify_bundle} can be built to verify (regenerate_assets hook)",
                has_hook, "" if has_hook else "no regenerate_assets hook",
                remedy="run this fix inside Odoo (the backend's Run Now), which builds bundles")],
            target_label=(f"Cached asset bundle {bundle}" if bundle
                          else "Cached asset bundles (all)"),
            details={"ids": [row[0] for row in rows], "bundle": bundle,
                     "verify_bundle": verify_bundle,
                     "note": "Rollback builds the bundles again; the deleted cache itself is "
                             "not restored (Odoo rebuilds it from the modules' files)."})

    def backup(self, context, plan):
        cursor = _cursor(context)
        with savepoint(cursor):
            cursor.execute("SELECT id, name, url, checksum, store_fname FROM ir_attachment "
                           "WHERE id = ANY(%s) ORDER BY id", (plan.details["ids"],))
            rows = [{"id": row_id, "name": name, "url": url, "checksum": checksum,
                     "store_fname": store_fname}
                    for row_id, name, url, checksum, store_fname in cursor.fetchall()]
        return {"table": "ir_attachment", "rows": rows,
                "restore": "regenerate (the deleted cache is not restored)"}

    def apply(self, context, plan, backup):
        cursor = _cursor(context)
        ids = [row["id"] for row in backup["rows"]]
        with savepoint(cursor):
            cursor.execute(
                "DELETE FROM ir_attachment WHERE id IN (SELECT id FROM ir_attachment "
                "WHERE id = ANY(%s) AND " + _ASSET_WHERE + " FOR NO KEY UPDATE SKIP LOCKED) "
                "RETURNING id, store_fname", (ids,))
            deleted = cursor.fetchall()
        fnames = sorted({fname for _id, fname in deleted if fname})
        note = _call_hook(context, "assets_deleted", fnames)
        lines = [f"deleted {len(deleted)} of {len(ids)} asset attachment(s)"]
        if note is None and fnames:
            note = (f"{len(fnames)} filestore file(s) were not marked for garbage collection "
                    "(no assets_deleted hook)")
        return "\n".join(filter(None, lines + [note]))

    def _regenerate(self, context, plan):
        result = _call_hook(context, "regenerate_assets", plan.details["verify_bundle"])
        if result is None:
            return False, "no regenerate_assets hook to build the bundle"
        return result

    def verify(self, context, plan):
        cursor = _cursor(context)
        bundle = plan.details["verify_bundle"]
        ok, detail = self._regenerate(context, plan)
        with savepoint(cursor):
            rows = self._rows(cursor, bundle)
        kinds = {"css" if row[1].endswith(".css") else "js" for row in rows
                 if row[1].endswith((".css", ".js"))}
        if not ok:
            return False, f"{bundle} does not build: {detail}"
        if kinds != {"css", "js"}:
            return False, (f"{bundle} built, but its attachments are "
                           f"{', '.join(sorted(row[1] for row in rows)) or 'missing'}")
        return True, (f"{bundle} builds again: "
                      f"{', '.join(sorted(row[1] for row in rows))} ({detail})")

    def rollback(self, context, plan, backup):
        ok, detail = self._regenerate(context, plan)
        if not ok:
            raise ActionError(f"{plan.details['verify_bundle']} does not build: {detail}")
        return (f"{plan.details['verify_bundle']} built again ({detail}); the "
                f"{len(backup['rows'])} deleted attachment(s) are not restored: they were "
                "a cache")
