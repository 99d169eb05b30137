"""The log scan (incremental cursors in the state) and the host fixes [fixes] auto allows
for what it finds. A part of :class:`host.monitor.Monitor`, whose docstring draws the
cycle.
"""

import os

from engine.errors import EngineError, LogSourceError
from host import config as cfg
from host.approved import HostParams

from .common import (
    LOG,
    ScanStopped,
)


class ScanMixin:
    """The log scan of the Monitor."""

    def _patterns_path(self):
        from engine.scanner import DEFAULT_PATTERNS

        if self.patterns_override:
            return self.patterns_override
        if self.config["scan"]["patterns"]:
            return self.config["scan"]["patterns"]
        exported = cfg.exported_patterns(self.config)
        return exported if os.path.isfile(exported) else DEFAULT_PATTERNS

    def scanner(self):
        from engine.patterns import load_patterns
        from engine.scanner import DEFAULT_PATTERNS, Scanner

        path = self._patterns_path()
        try:
            st = os.stat(path)
            key = (path, st.st_mtime_ns, st.st_size)
        except OSError:
            key = (path, None, None)
        if key == self._patterns_key and self._scanner is not None:
            return self._scanner
        try:
            pattern_set = load_patterns(path)
        except EngineError as exc:
            if path == DEFAULT_PATTERNS:
                raise
            LOG.error("patterns %s: %s; using %s", path, exc, DEFAULT_PATTERNS)
            pattern_set = load_patterns(DEFAULT_PATTERNS)
        for message in pattern_set.errors:
            LOG.warning("patterns: %s", message)
        from engine.matcher import prepare_cache_dir

        # The compiled database is kept in <state_dir>/cache, keyed by the patterns' hash.
        self._scanner = Scanner(pattern_set, cache_dir=prepare_cache_dir(
            os.path.join(cfg.state_dir(self.config), "cache")))
        self._patterns_key = key
        LOG.info("patterns: %d from %s", len(pattern_set.patterns), path)
        return self._scanner

    def scan_logs(self, now):
        from engine.incidents import aggregate
        from engine.patterns import SEVERITY_RANK

        scan = self.config["scan"]
        logs = self.config["odoo"]["logs"]
        if not scan["enabled"] or not logs:
            return []
        scanner = self.scanner()
        # a bounded read per log and cycle: a 1 GB backlog is read over many cycles,
        # and the probes keep their period (and READY comes in time)
        budget = scan["max_mb_per_cycle"] * 1024 * 1024
        findings, done = [], []
        try:
            self.scanning = True  # SIGTERM now stops the scan (ScanStopped)
            for path in logs:
                try:
                    result = scanner.scan_file(path, self.state.cursor(path), final=False,
                                               settle_seconds=scan["settle"], max_bytes=budget)
                except LogSourceError as exc:
                    self._once(f"log:{path}", LOG.warning, f"log: {exc}")
                    continue
                done.append((path, result))
        except ScanStopped:
            LOG.info("stopping in the middle of a scan: the rest is read at the next start "
                     "(the cursors stay where the read records end)")
        finally:
            self.scanning = False
        for path, result in done:
            self._forget(f"log:{path}", f"log {path} readable again")
            for message in result.warnings:
                LOG.warning("log %s: %s", path, message)
            self.state.set_cursor(path, result.cursor)
            findings.extend(result.findings)
        floor = SEVERITY_RANK[scan["min_severity"]]
        incidents = [i for i in aggregate(findings) if SEVERITY_RANK.get(i.severity, 3) >= floor]
        down = not self._odoo_answers()
        for incident in incidents:
            self._count("findings", incident.pattern, incident.count)
            LOG.warning("finding: [%s] %s x%d at %s:%s: %s", incident.severity, incident.pattern,
                        incident.count, incident.source_path, incident.source_line,
                        incident.message.split("\n")[0][:200])
            record = self.fix_from_log(incident, now)
            if self.config["handover"]["incidents"] == "always" or down or record is not None:
                self.emit({"kind": "incident", "incident": incident.to_dict()})
            if record is not None:
                self.emit({"kind": "fix_run", "record": record.to_dict()})
        return incidents

    def fix_from_log(self, incident, now):
        """Run the incident's host fix when [fixes] auto allows it here; the record or None."""
        action = incident.fix_script
        fixes = self.config["fixes"]
        if action == "restore_config" and action in fixes["auto"]:
            # db_auth_failed and friends: only a config changed since Odoo was last
            # healthy is put back (restore_refused_config records its own run)
            self.restore_refused_config(now)
            return None
        if action not in ("remove_deprecated_cron_fields", "fix_permissions"):
            return None  # odoo-level, or restart_service: the probes decide restarts
        if action not in fixes["auto"]:
            self._once(f"fix:{action}", LOG.info,
                       f"{action} is not in [fixes] auto here: {incident.pattern} is spooled "
                       "as a finding for Odoo")
            return None
        if not fixes["roots"]:
            self._once(f"roots:{action}", LOG.warning,
                       f"{action} needs [fixes] roots (the only folders it may touch)")
            return None
        from engine.actions import get_action
        from engine.actions.params import capture_map

        # the log names the file (data, checked against the roots); this host's
        # config says everything else
        engine_action = get_action(action)
        captures = incident.captures or {}
        data = {param: captures[capture] for capture, param in capture_map(engine_action).items()
                if captures.get(capture) not in (None, "")}
        if not data:
            return None
        try:
            params = HostParams.from_config(self.config).for_action(engine_action, data)
        except EngineError as exc:
            self._once(f"params:{action}", LOG.warning, f"{action} cannot run here: {exc}")
            return None
        roots = fixes["roots"]
        planned = self._run_plan(action, params, roots)
        history = self.store.history(action, planned) if planned else ()
        record = self._run(action, params, incident=incident.fingerprint,
                           budget=self._fix_budget(), history=history, roots=roots)
        self._count("fixes", f"{action}:{record.state}")
        (LOG.warning if record.state in ("done", "noop") else LOG.error)(
            "fix %s for %s: run %s %s%s", action, incident.pattern, record.run_id,
            record.state, ": " + record.error if record.error else "")
        return record

    def _run_plan(self, action, params, roots):
        import dataclasses

        from engine.actions.runner import execute

        context = dataclasses.replace(self._context(roots), audit=None)
        try:
            return execute(action, context, params, dry_run=True).target
        except EngineError:
            return ""
