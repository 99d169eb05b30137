"""The probes: PostgreSQL, the Odoo process, startup / liveness / readiness over HTTP, disk
and log freshness, and the observation the decision reads. A part of
:class:`host.monitor.Monitor`, whose docstring draws the cycle.
"""

import os

from engine import health
from engine.probes import http_probe, probe_process
from engine.watchdog import (
    FAILING,
    OK,
    UNKNOWN,
    Observation,
)

from .common import (
    LOG,
)


class ProbesMixin:
    """The probes of the Monitor."""

    def _observe(self, tracker, ok, now, detail):
        before = tracker.status
        after = tracker.observe(ok, now, detail)
        if after != before:
            log = LOG.warning if after == FAILING else LOG.info
            log("probe %s: %s -> %s (%s)", tracker.spec.name, before, after, detail)
        elif not ok:
            LOG.debug("probe %s failed %d time(s): %s", tracker.spec.name, tracker.failures,
                      detail)
        return after

    def probe_postgres(self, now):
        dsn = self.config["postgresql"]["dsn"]
        tracker = self.trackers["postgresql"]
        if not dsn or not tracker.due(now):
            return
        check = health.check_postgres(dsn, timeout=tracker.spec.timeout)
        self._observe(tracker, check.status == health.OK, now, check.message)

    def _process_configured(self):
        return bool(self.config["odoo"]["pidfile"] or self.config["odoo"]["cmdline"])

    def probe_process(self, now):
        if not self._process_configured():
            return
        tracker = self.trackers["process"]
        if not tracker.due(now):
            return
        conf = self.config["odoo"]
        info = probe_process(pidfile=conf["pidfile"] or None,
                             cmdline_regex=conf["cmdline"] or None, now=now)
        self.last_process = info
        ok = info.alive and not info.zombie
        known = (self.odoo.get("pid"), self.odoo.get("started"))
        if ok and info.started is not None and (info.pid, round(info.started, 2)) != known:
            self._new_odoo_process(now, info)
        if not ok and self.odoo.get("pid") and not self.odoo.get("exited_at"):
            self.odoo["exited_at"] = now
            started = self.odoo.get("started")
            self.odoo["lifetime"] = round(now - started, 1) if started else None
            LOG.warning("Odoo process pid %s is gone (%s)%s", self.odoo["pid"], info.detail,
                        " after %.0fs" % self.odoo["lifetime"] if started else "")
        self._observe(tracker, ok, now, info.detail)
        probe = self.config["probes"]["process"]
        if ok and probe["rss_warn_mb"] and info.rss_mb > probe["rss_warn_mb"]:
            self.alert("rss", "medium", f"Odoo uses {info.rss_mb:g} MiB of memory (RSS), over "
                       f"{probe['rss_warn_mb']:g} MiB", now, kind="watchdog_memory_high")
        elif ok:
            self.clear_alert("rss")
        cpu = info.cpu_percent
        if ok and probe["cpu_warn_percent"] and cpu is not None and \
                cpu > probe["cpu_warn_percent"]:
            self.alert("cpu", "medium", f"Odoo uses {cpu:g}% CPU, over "
                       f"{probe['cpu_warn_percent']:g}%", now, kind="watchdog_cpu_high")
        elif ok and cpu is not None:
            self.clear_alert("cpu")

    def _new_odoo_process(self, now, info):
        LOG.info("Odoo process: pid %s (%s)", info.pid, info.detail)
        self.odoo.update(pid=info.pid, started=round(info.started, 2), startup_done=False,
                         startup_began=now, exited_at=None, lifetime=None)
        for name in ("startup", "liveness", "readiness"):
            self.trackers[name].reset()

    def probe_http(self, now):
        url = self.config["odoo"]["url"]
        self._http_failed_now = False
        if not self.odoo.get("startup_done"):
            tracker = self.trackers["startup"]
            if not tracker.due(now):
                return
            self.odoo.setdefault("startup_began", now)
            check = http_probe(url, tracker.spec.timeout)
            ok = check.status == health.OK
            self._observe(tracker, ok, now, check.message)
            if ok and tracker.status == OK:
                began = self.odoo.get("startup_began") or now
                LOG.info("Odoo answers /web/health: started (%.1fs after the start was seen)",
                         now - began)
                self.odoo["startup_done"] = True
                self.trackers["liveness"].reset()
                self.trackers["liveness"].observe(True, now, check.message)
            self._http_failed_now = not ok
        else:
            tracker = self.trackers["liveness"]
            if tracker.due(now):
                check = http_probe(url, tracker.spec.timeout)
                self._observe(tracker, check.status == health.OK, now, check.message)
                self._http_failed_now = check.status != health.OK
        tracker = self.trackers["readiness"]
        if self.odoo.get("startup_done") and tracker.due(now) and not self._http_failed_now:
            check = http_probe(url, tracker.spec.timeout, db_status=True)
            self._observe(tracker, check.status == health.OK, now, check.message)

    def probe_resources(self, now):
        disk = self.config["probes"]["disk"]
        if disk["paths"] and now - self.wd.get("disk_checked", 0) >= disk["period"]:
            self.wd["disk_checked"] = now
            for path in disk["paths"]:
                check = health.check_disk(path, disk["warn_percent"], disk["crit_percent"])
                if check.status == health.OK:
                    self.clear_alert(f"disk:{path}", check.message)
                else:
                    self.alert(f"disk:{path}", "high" if check.status == health.CRITICAL
                               else "medium", f"free disk: {check.message}", now,
                               kind="watchdog_disk_low", subject=path)
        fresh = self.config["probes"]["log_freshness"]
        logs = self.config["odoo"]["logs"]
        if logs and now - self.wd.get("logs_checked", 0) >= fresh["period"]:
            self.wd["logs_checked"] = now
            for path in logs:
                check = health.check_log_freshness(path, fresh["warn_seconds"],
                                                   fresh["crit_seconds"], now=now)
                if check.status == health.OK:
                    self.clear_alert(f"log:{path}", check.message)
                else:
                    self.alert(f"log:{path}", "medium", f"Odoo's log: {check.message}", now,
                               kind="watchdog_log_stale", subject=path)

    def _startup_progressing(self, now):
        """Odoo is still loading: alive, and its log was written within two periods."""
        grace = self.config["probes"]["startup"]["progress_grace"]
        began = self.odoo.get("startup_began") or now
        if not grace or now - began > grace:
            return False
        if self._process_configured() and self.trackers["process"].status != OK:
            return False
        window = 2 * self.trackers["startup"].spec.period
        for path in self.config["odoo"]["logs"]:
            try:
                if now - os.stat(path).st_mtime <= window:
                    return True
            except OSError:
                continue
        return False

    def observation(self, now):
        startup = self.trackers["startup"].status
        if startup == FAILING and not self.odoo.get("startup_done") and \
                self._startup_progressing(now):
            self._once("startup", LOG.info, "Odoo is slow to start but its log grows (loading or "
                                            "upgrading modules): not killed for that")
            startup = UNKNOWN
        alive = zombie = None
        if self._process_configured():
            alive = {OK: True, FAILING: False}.get(self.trackers["process"].status)
            zombie = bool(alive is False and self.last_process and self.last_process.zombie)
        return Observation(
            postgres=self.trackers["postgresql"].status if self.config["postgresql"]["dsn"]
            else UNKNOWN,
            startup_done=bool(self.odoo.get("startup_done")), startup=startup,
            liveness=self.trackers["liveness"].status,
            readiness=self.trackers["readiness"].status,
            process_alive=alive, process_zombie=bool(zombie))
