"""Modules (``ir_module_module``) left half installed, upgraded or removed."""

from .base import (
    CRITICAL,
    NOW_UTC,
    CheckResult,
    _ok,
    _query,
    by_thresholds,
    human_duration,
    resolve_settings,
)
from .registry import check


@check("module_operation_stuck", settings={
    "module_stuck_minutes": 30.0,  # 'to install/upgrade/remove' unchanged for this long
    "module_stuck_crit_minutes": 120.0,  # (Odoo's cron runner stops meanwhile)
})
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
