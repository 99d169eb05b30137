"""The watchdog's host checks: ``[backup]`` and ``[deployment]``, each on its period.

The logic is in :mod:`engine.hostchecks`; this module feeds it from the
watchdog's configuration and state, and turns the results into what the
monitor already knows how to do::

    due? --> facts (odoo.conf, the Odoo process seen by the process probe)
         --> engine.hostchecks.run_host_checks --> alert_plan
               | raise: Monitor.alert (log, spool, hook; Odoo gets an incident
               |        of the check's pattern through the hand-over)
               | clear: Monitor.clear_alert
         --> spool entry {"kind": "health", "family", "checks"}: the addon's health
             report shows the newest backup result

The verdicts the checks keep between runs (which dumps pg_restore already
listed, the master password's) live in the state file under
``watchdog.host_checks``.
"""

import logging

from engine import hostchecks
from engine.checks.deployment_facts import ConfigReadError
from engine.patterns import load_patterns

LOG = logging.getLogger("auto_heal.watchdog")


def _configured(config, family):
    if family == "backup":
        section = config["backup"]
        return bool(section["dumps_dir"] or section["filestore_dir"])
    # Without odoo.conf the options (the master password first) would be guesses.
    return config["deployment"]["enabled"] and bool(config["odoo"]["config"])


def _inputs(monitor, family):
    """``(check names, settings, facts)`` of *family*."""
    config = monitor.config
    if family == "backup":
        return (hostchecks.FAMILIES["backup"], hostchecks.backup_settings(config["backup"]),
                {"pg_restore": config["backup"]["pg_restore"]})
    process = monitor.last_process
    argv = hostchecks.process_argv(process.pid) if process and process.alive else []
    section = config["deployment"]
    facts = hostchecks.deployment_facts(
        config["odoo"]["config"], argv, section["public_url"] or config["odoo"]["url"],
        section["environment"], [config["handover"]["db"]])
    return hostchecks.FAMILIES["deployment"], {}, facts


def run_due(monitor, now):
    """Run each configured family whose period is over; never raises."""
    state = monitor.wd.setdefault("host_checks", {})
    for family in ("backup", "deployment"):
        if not _configured(monitor.config, family):
            continue
        last = state.setdefault("last_run", {}).get(family, 0.0)
        if now - last < monitor.config[family]["period"]:
            continue
        state["last_run"][family] = now
        try:
            run_family(monitor, family, now)
        except ConfigReadError as exc:
            monitor._once("host_check:%s" % family, LOG.error,
                          "host check %s: %s" % (family, exc))
        except Exception:  # a bug must not stop the probes
            LOG.exception("host check %s failed (a bug)", family)


def run_family(monitor, family, now):
    names, settings, facts = _inputs(monitor, family)
    state = monitor.wd.setdefault("host_checks", {})
    counters = state.setdefault("counters", {})
    run = hostchecks.run_host_checks(names, settings, facts, counters.get(family))
    counters[family] = run.counters
    if run.errors:
        monitor._once("host_check:%s" % family, LOG.error,
                      "host check %s: %s" % (family, "; ".join(run.errors)))
    else:
        monitor._forget("host_check:%s" % family, "host check %s: runs again" % family)
    patterns = load_patterns(monitor._patterns_path())
    for alert in hostchecks.alert_plan(run.results, patterns):
        for key in alert.clear:
            monitor.clear_alert(key, "%s %s: %s" % (alert.check, alert.subject, alert.message))
        if alert.raise_:
            monitor.alert(alert.key, alert.severity, alert.message, now, kind=alert.check,
                          subject=alert.subject, sample=alert.sample)
    LOG.info("host check %s: %s", family, hostchecks.describe(run))
    monitor.emit({"kind": "health", "family": family,
                  "checks": [result.to_dict() for result in run.results],
                  "errors": run.errors})
    return run
