"""auto_heal engine: plain Python that decides; it never imports odoo or host/.

Both the addon and the watchdog (``bin/auto-heal``) call it; readme/DEVELOP.md
maps the routes through it. What it holds, from the bytes up:

Reading logs
  ``records``      parse Odoo log records (header, continuation lines, prefixes)
  ``reader``       read a log incrementally with a cursor (rotation, truncation)
  ``patterns``     load and validate the pattern database (lists of alternatives)
  ``linear``       which regexes may run at all: linear-time engines only
  ``literals``     the words a regex needs, for the prefilter without hyperscan/RE2
  ``matcher``      prefilter every pattern at once, classify each hit record
  ``classify``     innermost cause, frame causes, one category per failure
  ``fingerprint``  group records that differ only in volatile values
  ``incidents``    findings and incidents (aggregation, samples)
  ``scanner``      all of the above for one file: the API both hosts share

Checking and deciding
  ``checks``       database, backup and deployment checks: one module per
                   family, ``@check(key, settings)``, the runner
  ``health``, ``probes``    the result of every check, probes of Odoo,
                   PostgreSQL, disk and logs; the watchdog's probes
  ``hostchecks``   the checks the watchdog runs on the host
  ``watchdog``     the watchdog's decisions (restart policy, escalation)
  ``budget``       run budgets: N within a window, growing delays
  ``policy``       which fix runs need approval
  ``approval``     expiry, four eyes, distinct approvers
  ``planhash``     the hash of a plan, compared at run time
  ``fixrun``       the fix run's state machine: states, verbs, the runner's outcomes
  ``drift``        config baselines, masked diffs, last known good

Changing things safely
  ``actions``      fix actions (plan, backup, apply, verify, rollback), their
                   declared parameters and the one runner
  ``safefs``       file changes on descriptors, never on a path resolved twice
  ``fsutil``       atomic writes of auto_heal's own files, backups, diffs, locks
  ``roots``        which folders a host fix may touch
  ``xmledit``      the byte-exact XML editor (ir.cron fields)
  ``backup``       versions of odoo.conf

Telling people
  ``secrets``      mask secrets in any text that is stored or sent
  ``audit``        one JSON line per automated step
  ``notify``       notification payloads and throttle
  ``outbox``       the notification outbox: retries, never a drop
  ``spool``        what the watchdog keeps for Odoo while it is down
  ``errors``       the one-line errors of bad input
"""
