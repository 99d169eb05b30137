"""The checks the watchdog runs on the host, where Odoo cannot look itself.

::

    [backup]      --> backup_stale: the dumps folder (``backup --db``'s --dest or
                      any folder of pg_dump -Fc files), the filestore copy
    [deployment]  --> realtime_unavailable, workers_sizing, database_manager_exposed:
                      odoo.conf + the Odoo process's command line, the host's CPUs
                      and memory, a WebSocket handshake through the public URL
          |
          v
    run_host_checks(names, settings, facts, previous) -> HostRun(results, errors, counters)
          |
          v
    alert_plan(results, patterns) -> raise / clear, one alert per check and subject
                                     and status (the monitor's alerts, then Odoo's
                                     incidents through the hand-over)

The check functions are those of :mod:`engine.checks` (the "scan database"
cron runs them too), called without a database cursor. Nothing here comes
from Odoo but the patterns' severities: folders, binaries and URLs are the
watchdog's own configuration.
"""

from dataclasses import dataclass, field
from typing import NamedTuple

from .checks import CHECKS, CheckContext, one_line, resolve_settings, severity_for
from .checks.backup import BackupCheckError
from .checks.deployment_facts import effective_options, host_resources, read_config_file
from .health import OK
from .patterns import PatternSet

FAMILIES = {
    "backup": ("backup_stale",),
    "deployment": ("realtime_unavailable", "workers_sizing", "database_manager_exposed"),
}


class HostRun(NamedTuple):
    results: list  # [engine.health.CheckResult]
    errors: list  # ["check: one line"]
    counters: dict  # the next run's previous


@dataclass
class Alert:
    """One alert to raise (``raise_=True``) or to clear, keyed per check, subject, status."""

    key: str
    check: str
    subject: str
    status: str = OK
    severity: str = ""
    message: str = ""
    sample: str = ""
    raise_: bool = True
    clear: list = field(default_factory=list)  # keys of the other statuses of the subject


def backup_settings(section):
    """The settings of ``backup_stale`` from the watchdog's ``[backup]`` section.

    >>> s = backup_settings({"dumps_dir": "/srv/dumps", "database": "prod", "crit_hours": 30,
    ...                      "filestore_dir": "", "live_filestore": "/var/lib/odoo/fs/prod"})
    >>> s["backup_dumps_dir"], s["backup_crit_hours"], s["filestore_path"]
    ('/srv/dumps', 30, '/var/lib/odoo/fs/prod')
    """
    return {"backup_dumps_dir": section.get("dumps_dir") or "",
            "backup_database": section.get("database") or "",
            "backup_filestore_dir": section.get("filestore_dir") or "",
            "backup_crit_hours": section.get("crit_hours") or 26,
            "filestore_path": section.get("live_filestore") or ""}


def process_argv(pid):
    """The command line of process *pid* as a list (``/proc``), or []."""
    if not pid:
        return []
    try:
        with open("/proc/%d/cmdline" % int(pid), "rb") as handle:
            raw = handle.read(1 << 16)
    except (OSError, ValueError):
        return []
    return [part.decode("utf-8", "replace") for part in raw.split(b"\0") if part]


def deployment_facts(conf_path="", argv=(), public_url="", environment="prod", databases=()):
    """The facts of the deployment checks, from odoo.conf and the process's command line.

    Raises :class:`engine.checks.deployment_facts.ConfigReadError` when odoo.conf is
    named but cannot be read (missing, not a regular file, too big, no parse).
    """
    text = read_config_file(conf_path) if conf_path else None
    options = effective_options(text, argv)
    cpus, memory = host_resources()
    names = [name for name in (*databases, options.get("db_name")) if name]
    return {"source": "odoo.conf" if conf_path else "command line", "options": options,
            "cpu_count": cpus, "memory_bytes": memory, "gevent": None,
            "public_url": public_url, "environment": environment or "prod",
            "databases": list(dict.fromkeys(names))}


def run_host_checks(names, settings=None, facts=None, previous=None):
    """Run the checks *names* without a database; a failing one is one error line."""
    conf = resolve_settings(settings)
    counters = {}
    ctx = CheckContext(previous=dict(previous or {}), counters=counters,
                       facts=dict(facts or {}))
    results, errors = [], []
    for name in names:
        function = CHECKS.get(name)
        if function is None:
            errors.append("%s: unknown check" % name)
            continue
        try:
            results.extend(function(None, conf, ctx))
        except BackupCheckError as exc:
            errors.append("%s: %s" % (name, exc))
        except Exception as exc:  # noqa: BLE001 - one broken check, one line; the rest run
            errors.append("%s: %s" % (name, one_line(exc)))
    for key, value in (previous or {}).items():
        counters.setdefault(key, value)
    return HostRun(results, errors, counters)


def _sample(result):
    lines = [result.message]
    todo = result.details.get("what_to_do")
    if todo:
        lines.append("what to do: %s" % todo)
    return "\n".join(lines)


def alert_key(check, subject, status):
    """The monitor's alert key of one check, subject and status.

    >>> alert_key("backup_stale", "backup:prod", "critical")
    'check:backup_stale:backup:prod:critical'
    """
    return "check:%s:%s:%s" % (check, subject, status)


def alert_plan(results, patterns):
    """What the monitor raises and clears for *results*.

    A result whose check has no active pattern raises nothing (the check was
    switched off in Odoo); its alerts are cleared. The severity is the
    pattern's for a warning, a rank more when critical.

    >>> from engine.health import CheckResult
    >>> patterns = PatternSet.from_entries([{"type": "backup_stale", "check": "backup_stale",
    ...                                      "severity": "high"}])
    >>> old = CheckResult("backup_stale", "critical", 100000, "26 h", "too old",
    ...                   subject="backup:prod")
    >>> [a] = alert_plan([old], patterns)
    >>> a.key, a.severity, a.raise_, a.clear
    ('check:backup_stale:backup:prod:critical', 'critical', True, \
['check:backup_stale:backup:prod:warning'])
    >>> [ok] = alert_plan([CheckResult("backup_stale", "ok", 10, "26 h", "fresh",
    ...                                subject="backup:prod")], patterns)
    >>> ok.raise_, ok.clear
    (False, ['check:backup_stale:backup:prod:warning', 'check:backup_stale:backup:prod:critical'])
    """
    if isinstance(patterns, PatternSet):
        patterns = patterns.checks
    by_check = {p.check: p for p in patterns if getattr(p, "check", "") and p.active}
    plan = []
    for result in results:
        if result.details.get("skipped"):
            continue
        keys = {status: alert_key(result.check, result.subject, status)
                for status in ("warning", "critical")}
        pattern = by_check.get(result.check)
        if result.status == OK or pattern is None:
            plan.append(Alert(key="", check=result.check, subject=result.subject,
                              raise_=False, clear=list(keys.values()),
                              message=result.message))
            continue
        plan.append(Alert(
            key=keys[result.status], check=result.check, subject=result.subject,
            status=result.status, severity=severity_for(pattern.severity, result.status),
            message=result.message, sample=_sample(result),
            clear=[k for s, k in keys.items() if s != result.status]))
    return plan


def describe(run):
    """One line about a host check run, for the watchdog's log.

    >>> describe(HostRun([], ["backup_stale: pg_restore not found"], {}))
    '0 result(s), 0 problem(s), 1 error(s): backup_stale: pg_restore not found'
    """
    problems = [r for r in run.results if r.status != OK]
    text = "%d result(s), %d problem(s), %d error(s)" % (len(run.results), len(problems),
                                                          len(run.errors))
    if run.errors:
        text += ": " + "; ".join(run.errors)
    return text

