"""Config drift: baselines of the watched files, and a broken odoo.conf restored
(restore_config) when [fixes] auto allows. A part of :class:`host.monitor.Monitor`,
whose docstring draws the cycle.
"""

import os
import time
from dataclasses import asdict

from engine import drift as drift_mod
from engine.errors import EngineError
from host import config as cfg

from .common import (
    LOG,
    mtime,
)


class DriftMixin:
    """The config drift of the Monitor."""

    def check_drift(self, now, force=False):
        files = cfg.watched_files(self.config)
        if not files:
            return
        if not force and now - self.wd.get("drift_checked", 0) < self.config["drift"]["period"]:
            return
        self.wd["drift_checked"] = now
        try:
            drifts = drift_mod.check(files, self.baseline, self.versions)
        except EngineError as exc:
            self._once("drift", LOG.error, f"config drift check failed: {exc}")
            return
        reported = self.wd.setdefault("drift_reported", {})
        for change in drifts:
            entry = self.baseline.get(change.path)
            key = f"{change.kind}:{change.sha256}:{bool(change.parse_error)}"
            why = f"it does not parse ({change.parse_error})"
            if change.parse_error and reported.get(change.path, {}).get("key") == key:
                # still broken, reported already: only the restore is tried again
                self.restore_config(change.path, reported[change.path]["incident"], why, now)
                continue
            if entry is not None:
                entry["changed_at"] = now
            kind = "config_broken" if change.parse_error else f"config_{change.kind}"
            severity = "high" if change.parse_error or change.kind != "changed" else "low"
            message = change.parse_error or f"{change.path}: {change.kind}"
            LOG.warning("config drift: %s%s", message,
                        "" if not change.diff else " (%d diff lines)" % len(
                            change.diff.splitlines()))
            incident = self.event_incident(kind, severity, message, subject=change.path,
                                           sample=change.diff, now=now)
            reported[change.path] = {"key": key, "incident": incident}
            self.emit({"kind": "drift", "drift": asdict(change), "incident": incident})
            if change.parse_error and change.kind == "changed":
                self.restore_config(change.path, incident, why, now)
        if drifts:
            self.commit()

    def restore_config(self, path, incident, why, now):
        """Put back the last known good version of *path*, when [fixes] auto allows it."""
        if "restore_config" not in self.config["fixes"]["auto"]:
            self._once(f"norestore:{path}", LOG.warning,
                       f"{path}: {why}; restore_config is not in [fixes] auto here: "
                       "reported only")
            return None
        good = drift_mod.last_good(path, self.baseline, self.versions)
        if good is None:
            self.alert(f"nogood:{path}", "high", f"{path}: {why}, and there is no last known "
                       "good version to restore", now, kind="config_broken", subject=path)
            return None
        from engine.budget import decide

        history = self.store.history("restore_config", os.path.realpath(path))
        verdict = decide(self._fix_budget(), history, time.time())
        if not verdict.allowed:  # asked again each cycle: say it once, store no refused run
            self._once(f"restore-wait:{path}", LOG.error if verdict.escalate else LOG.warning,
                       f"restore of {path} ({why}) waits: {verdict.reason}")
            if verdict.escalate:
                self.alert(f"restore:{path}", "critical", f"{path}: {why}; restore_config is "
                           f"over its budget: {verdict.reason}", now, kind="config_broken",
                           subject=path)
            return None
        self._forget(f"restore-wait:{path}")
        params = {"config": path, "version": good.name, "versions_dir": self.versions}
        record = self._run("restore_config", params, incident=incident["fingerprint"],
                           budget=self._fix_budget(), history=history)
        self._count("fixes", f"restore_config:{record.state}")
        if record.state == "done":
            drift_mod.accept_restored(path, self.baseline, good, now)
            self.wd.get("drift_reported", {}).pop(path, None)
            self.clear_alert(f"config:{path}", f"{path} restored")
            self.odoo["config_restored_at"] = now
            LOG.warning("restored %s from the last known good version %s (%s): run %s",
                        path, good.name, why, record.run_id)
        else:
            LOG.error("restore of %s: run %s %s: %s", path, record.run_id, record.state,
                      record.error)
        self.emit({"kind": "fix_run", "record": record.to_dict(), "incident": incident})
        self.commit()
        return record

    def restore_refused_config(self, now):
        """Odoo refuses to start with a changed config: go back to the last known good.

        Suspect when the config differs from the last version Odoo was healthy
        with, and since that change Odoo died within [drift] crash_window of
        its start, or a restart did not come up.
        """
        path = self.config["odoo"]["config"]
        entry = self.baseline.get(path) if path else None
        if not entry or entry.get("state") != "ok":
            return None
        good = drift_mod.last_good(path, self.baseline, self.versions)
        if good is None or good.sha256 == entry.get("sha256"):
            return None
        changed_at = mtime(path)
        lifetime = self.odoo.get("lifetime")
        died_young = lifetime is not None and lifetime < self.config["drift"]["crash_window"] \
            and (self.odoo.get("started") or 0) + 1 >= changed_at
        failed = bool(self.odoo.get("restart_failed")) and \
            (self.odoo.get("restarted_at") or 0) >= changed_at
        if not (died_young or failed):
            return None
        why = ("Odoo exited %.0fs after it started" % lifetime if died_young
               else "Odoo did not come back after a restart") + \
            " with a config changed since it was last healthy"
        incident = self.event_incident("config_refused", "high", f"{path}: {why}",
                                       subject=path, now=now)
        return self.restore_config(path, incident, why, now)
