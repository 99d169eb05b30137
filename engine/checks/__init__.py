"""The health checks of an Odoo 18 database and its deployment: one module per family.

Each check is a function ``check_<key>(cursor, settings, ctx) -> [CheckResult]``
(bounded, read-only; :mod:`.base` holds what it is written with) registered
by ``@check(key, settings={...})`` (:mod:`.registry`): the key is the ``check``
of data/patterns.json, the settings are those it reads, with their defaults.
``CHECKS``, ``CHECK_SETTINGS`` and ``DEFAULTS`` are derived from the
registrations, in the order below (the order the checks run in)::

    cron             cron_failing, cron_near_deactivation, cron_switched_off,
                     cron_stuck, cron_never_run
    modules          module_operation_stuck
    postgres_stats   pg_connections_high, pg_idle_in_transaction, pg_long_query,
                     pg_blocked_sessions, pg_deadlocks_growing, pg_database_growth,
                     pg_autovacuum_stale
    filestore        filestore_files_missing, filestore_not_writable
    queue_job        queue_job_stuck
    postgres         pg_xid_wraparound, id_sequence_exhaustion, pg_invalid_indexes,
                     pg_prepared_transactions, pg_replication_slots
    mail             mail_queue_stuck
    backup           backup_stale
    deployment       realtime_unavailable, base_url_mismatch, workers_sizing,
                     database_manager_exposed
                     (fed by deployment_facts: odoo.conf, the command line, the host,
                     the network probes)

:mod:`.runner` runs them (``run_checks``: a savepoint, timeouts and statistics
per check) and turns their problems into findings (``to_findings``). The
results are :class:`engine.health.CheckResult`, the one result type of every
health check. The "scan database" cron (models/auto_heal_db_scan.py) and the
watchdog (engine/hostchecks.py) call the same code; nothing here imports odoo.

>>> list(CHECKS)[:2], CHECK_SETTINGS["cron_failing"], DEFAULTS["max_rows"]
(['cron_failing', 'cron_near_deactivation'], ('cron_failing_min_failures',), 50)
"""

# The families register their checks as they are imported: the order below is the order
# the checks run in (and after the registry and the helpers they use).
# isort: off
from .registry import (
    CHECK_SETTINGS,
    CHECKS,
    COMMON_SETTINGS,
    DEFAULTS,
    blocked_checks,
    check,
    resolve_settings,
    split_settings,
)
from .base import (
    CRITICAL,
    OK,
    WARNING,
    CheckContext,
    CheckResult,
    by_thresholds,
    human_bytes,
    human_duration,
    one_line,
    severity_for,
)
from . import cron, modules, postgres_stats, filestore, queue_job
from . import postgres, mail, backup, deployment
# isort: on
from .runner import CheckRun, run_checks, status_of, to_findings

FAMILIES = (cron, modules, postgres_stats, filestore, queue_job, postgres, mail, backup,
            deployment)
