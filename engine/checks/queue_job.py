"""OCA ``queue_job``, when its table exists: jobs left started or enqueued, per channel."""

from .base import (
    NOW_UTC,
    CheckContext,
    CheckResult,
    _ok,
    _query,
    by_thresholds,
    human_duration,
    resolve_settings,
)
from .registry import check


@check("queue_job_stuck", settings={
    "queue_job_started_minutes": 60.0,
    "queue_job_enqueued_minutes": 30.0,
    "queue_job_crit_factor": 4.0,
})
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
