"""The outgoing mail queue (``mail.mail``), per mail server.

When Odoo 18 cannot connect or log in to the SMTP server, ``mail.mail.send``
marks the whole batch ``exception`` with ``failure_type = 'mail_smtp'`` and
the server's error as ``failure_reason``, and logs nothing (the log pattern
machinery cannot see it). Mails that stay ``outgoing`` long after they were
due mean the queue does not run ("Mail: Email Queue Manager").

Failures that are about one recipient (invalid or missing address,
blacklist, opt-out, duplicate) are not the server's: they are left out.

Bound: one query on ``mail_mail`` (filtered on its state and dates, at most
10,000 rows grouped) joined to ``mail_message`` by primary key.
"""

from .base import (
    NOW_UTC,
    OK,
    CheckContext,
    CheckResult,
    _ok,
    _query,
    by_thresholds,
    human_duration,
    resolve_settings,
    worst,
)
from .registry import check

#: Odoo 18 failure types that are one recipient's problem, not the mail server's.
RECIPIENT_FAILURES = ("mail_email_invalid", "mail_email_missing", "mail_bl", "mail_optout",
                      "mail_dup")


@check("mail_queue_stuck", settings={
    "mail_exception_warn": 1,  # server-side failures within the window
    "mail_exception_crit": 10,
    "mail_exception_window_hours": 24,
    "mail_outgoing_warn_minutes": 30,  # the oldest mail still waiting to be sent
    "mail_outgoing_crit_minutes": 240,
})
def check_mail_queue_stuck(cursor, settings=None, ctx=None):
    """Mails failed by their server in the window, or outgoing for too long, per server."""
    s = resolve_settings(settings)
    ctx = ctx or CheckContext.probe(cursor)
    window = s["mail_exception_window_hours"] * 3600
    warn_wait, crit_wait = s["mail_outgoing_warn_minutes"] * 60, \
        s["mail_outgoing_crit_minutes"] * 60
    warn_failed, crit_failed = s["mail_exception_warn"], s["mail_exception_crit"]
    threshold = ("failed >= %d in %s (critical >= %d); waiting >= %s (critical >= %s)" % (
        warn_failed, human_duration(window), crit_failed, human_duration(warn_wait),
        human_duration(crit_wait)))
    if "mail_mail" not in ctx.tables:
        return _ok("mail_queue_stuck", 0, threshold, "skipped: mail is not installed",
                   "mail", {"skipped": True})
    rows = _query(cursor, f"""
        SELECT COALESCE(msg.mail_server_id, 0) AS server_id, srv.name AS server_name,
               srv.smtp_host, srv.smtp_port,
               count(*) FILTER (WHERE q.state = 'exception') AS failed,
               count(*) FILTER (WHERE q.state = 'outgoing') AS waiting,
               max(q.waited) FILTER (WHERE q.state = 'outgoing') AS oldest_wait,
               (array_agg(q.id ORDER BY q.id DESC))[1:5] AS examples,
               (array_agg(q.failure_type ORDER BY q.id DESC)
                    FILTER (WHERE q.state = 'exception'))[1] AS failure_type,
               (array_agg(left(q.failure_reason, 300) ORDER BY q.id DESC)
                    FILTER (WHERE q.failure_reason IS NOT NULL))[1] AS failure_reason
          FROM (SELECT m.id, m.mail_message_id, m.state, m.failure_type, m.failure_reason,
                       EXTRACT(EPOCH FROM {NOW_UTC} - COALESCE(m.scheduled_date,
                                                               m.create_date))::float8
                           AS waited
                  FROM mail_mail m
                 WHERE (m.state = 'exception'
                        AND m.write_date > {NOW_UTC} - %s * interval '1 second'
                        AND (m.failure_type IS NULL OR NOT (m.failure_type = ANY(%s))))
                    OR (m.state = 'outgoing'
                        AND COALESCE(m.scheduled_date, m.create_date)
                            < {NOW_UTC} - %s * interval '1 second')
                 ORDER BY m.id DESC
                 LIMIT 10000) q
          JOIN mail_message msg ON msg.id = q.mail_message_id
          LEFT JOIN ir_mail_server srv ON srv.id = msg.mail_server_id
         GROUP BY 1, 2, 3, 4
         ORDER BY count(*) DESC
         LIMIT %s""", (window, list(RECIPIENT_FAILURES), warn_wait, s["max_rows"]))
    results = []
    for row in rows:
        failed_status = by_thresholds(row["failed"], warn_failed, crit_failed) \
            if row["failed"] else OK
        wait_status = by_thresholds(row["oldest_wait"] or 0, warn_wait, crit_wait) \
            if row["waiting"] else OK
        status = worst(failed_status, wait_status)
        if status == OK:
            continue
        server = ("mail server %r (%s:%s)" % (row["server_name"], row["smtp_host"],
                                              row["smtp_port"]) if row["server_id"]
                  else "the default mail server (no server set on the mails)")
        parts = []
        if row["failed"]:
            reason = " ".join((row["failure_reason"] or "").split())[:200]
            parts.append("%d mail(s) failed in the last %s%s" % (
                row["failed"], human_duration(window),
                " (%s)" % ": ".join(filter(None, (row["failure_type"], reason)))
                if row["failure_type"] or reason else ""))
        if row["waiting"]:
            parts.append("%d mail(s) waiting to be sent, the oldest for %s" % (
                row["waiting"], human_duration(row["oldest_wait"])))
        todo = []
        if row["failed"]:
            todo.append("Odoo marks mails 'Delivery Failed' without a log line when it "
                        "cannot connect or log in to the SMTP server: test the server "
                        "(Settings > Technical > Outgoing Mail Servers > Test Connection), "
                        "fix its host, port, encryption or credentials, then retry the "
                        "failed mails (Settings > Technical > Emails, filter Delivery "
                        "Failed, Retry)")
        if row["waiting"]:
            todo.append("mails that stay outgoing mean the queue does not run: is the "
                        "'Mail: Email Queue Manager' scheduled action active, and do the "
                        "cron workers run for this database?")
        subject = "mail_server:%s" % (row["server_id"] or "default")
        results.append(CheckResult(
            "mail_queue_stuck", status, row["failed"] if failed_status != OK
            else round(row["oldest_wait"] or 0), threshold,
            "%s: %s" % (server, "; ".join(parts)),
            {"server_id": row["server_id"] or None, "server_name": row["server_name"],
             "smtp_host": row["smtp_host"], "smtp_port": row["smtp_port"],
             "failed": row["failed"], "waiting": row["waiting"],
             "oldest_wait_seconds": row["oldest_wait"], "failure_type": row["failure_type"],
             "failure_reason": row["failure_reason"], "examples": row["examples"],
             "what_to_do": "; ".join(todo) + "."},
            subject))
    if not results:
        return _ok("mail_queue_stuck", 0, threshold,
                   "no mail failed by its server in the last %s, none waiting for %s" % (
                       human_duration(window), human_duration(warn_wait)), "mail")
    return results
