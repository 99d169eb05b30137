"""The hand-over: the spool sent to Odoo (auto_heal.handover) when it answers, in a worker
thread, the patterns pulled from Odoo, and (``[handover] run_approved``) the host fix
runs approved in Odoo for this host claimed, run here and reported back, as
``bin/auto-heal run-approved`` does (host/approved.py: data from Odoo, power from this
host). A part of :class:`host.monitor.Monitor`, whose docstring draws the cycle.
"""

import json
import threading

from engine.errors import EngineError
from engine.watchdog import (
    FAILING,
    OK,
)
from host import config as cfg
from host.approved import HostParams, run_claim
from host.rpc import OdooRPC, read_api_key

from .common import (
    APPROVED_POLL,
    FIX_RUN_MODEL,
    HANDOVER_MODEL,
    LOG,
    PATTERNS_REFRESH,
    naive_utc,
)


class HandoverMixin:
    """The hand-over of the Monitor."""

    def _odoo_answers(self):
        return bool(self.odoo.get("startup_done")) and \
            self.trackers["liveness"].status == OK and \
            self.trackers["readiness"].status != FAILING

    def client(self):
        conf = self.config["handover"]
        key = read_api_key(conf["api_key_file"])
        return OdooRPC(conf["url"] or self.config["odoo"]["url"], conf["db"], conf["login"],
                       key, timeout=conf["timeout"])

    def _handover_due(self, now, force):
        conf = self.config["handover"]
        if not conf["db"]:
            return False
        if force:
            return True
        return self._odoo_answers() and now >= self.wd.get("handover_retry", 0)

    def handover(self, now, force=False):
        """Send the spool to Odoo now, in this thread; the number of entries Odoo took."""
        if not self._handover_due(now, force):
            return None
        refresh = now - self.wd.get("patterns_pulled", 0) >= PATTERNS_REFRESH
        if refresh:
            self.wd["patterns_pulled"] = now
        claims = self._claims_due(now)
        if claims:
            self.wd["approved_polled"] = now
        result = self._handover_job(refresh, now, claims)
        self._apply_handover(result, now)
        return result["sent"]

    def _claims_due(self, now):
        return bool(self.config["handover"]["run_approved"]) and \
            now - self.wd.get("approved_polled", 0) >= APPROVED_POLL

    def handover_async(self, now):
        """Start a hand-over in a thread: a slow or hanging Odoo never stops the probes.

        The thread only talks to Odoo and moves the spool's acknowledged offset
        (the spool locks its own files); its counts and errors are taken into
        the state by the loop, at the next cycle.
        """
        self.collect_handover(now)
        if self._worker is not None or not self._handover_due(now, False):
            return False
        refresh = now - self.wd.get("patterns_pulled", 0) >= PATTERNS_REFRESH
        claims = self._claims_due(now)
        if not refresh and not claims and not self.spool.pending(limit=1):
            return False
        if refresh:
            self.wd["patterns_pulled"] = now
        if claims:
            self.wd["approved_polled"] = now

        def job():
            self._worker_result = self._handover_job(refresh, now, claims)

        self._worker_result = None
        self._worker = threading.Thread(target=job, name="handover", daemon=True)
        self._worker.start()
        return True

    def collect_handover(self, now, wait=0.0):
        """Take the result of a finished hand-over thread into the state."""
        if self._worker is None:
            return
        self._worker.join(wait)
        if self._worker.is_alive():
            return
        self._worker = None
        if self._worker_result is not None:
            self._apply_handover(self._worker_result, now)
            self._worker_result = None

    def _handover_job(self, refresh, now, claims=False):
        """Talk to Odoo: pull the patterns if due, send the spool in batches, acknowledge,
        then run the approved host fix runs if due (*claims*)."""
        conf = self.config["handover"]
        result = {"sent": 0, "stored": 0, "ignored": 0, "approved": {}, "error": ""}
        try:
            client = self.client()
            if refresh:
                self.pull_patterns(client, now)
            pending = self.spool.pending(limit=conf["batch"])
            while pending:
                entries = [{k: v for k, v in e.items() if k != "_end"} for e in pending]
                answer = client.execute_kw(HANDOVER_MODEL, "watchdog_handover", [entries])
                if not isinstance(answer, dict):
                    raise EngineError("watchdog_handover did not answer an object")
                stored = [str(i) for i in answer.get("stored") or []]
                ignored = [str(i) for i in answer.get("ignored") or []]
                taken = set(stored) | set(ignored)
                missing = [e["id"] for e in entries if e["id"] not in taken]
                if missing:
                    raise EngineError(f"Odoo did not take {len(missing)} entr(y/ies), e.g. "
                                      f"{missing[0]}")
                self.spool.acknowledge(pending)  # only after Odoo's answer
                result["sent"] += len(entries)
                result["stored"] += len(stored)
                result["ignored"] += len(ignored)
                LOG.info("hand-over: %d entr(y/ies) to Odoo (%d stored, %d it already had)",
                         len(entries), len(stored), len(ignored))
                pending = self.spool.pending(limit=conf["batch"])
            if claims:
                result["approved"] = self.run_approved(client)
        except (EngineError, OSError) as exc:
            result["error"] = str(exc)
        return result

    def run_approved(self, client):
        """Claim this host's approved fix runs, run each here, report each back.

        What Odoo gives is data (which run, which file inside this host's roots,
        which service); this host's parameters come from its own config, and a
        run carrying a host parameter from Odoo is refused and reported as failed
        (:func:`host.approved.run_claim`). A report Odoo does not take is logged;
        the run's record stays in the runs folder. Returns {attempt state: count},
        counted by the loop (this may run in the hand-over thread).
        """
        claimed = client.execute_kw(FIX_RUN_MODEL, "watchdog_claim", [self.host])
        if not isinstance(claimed, list) or not all(isinstance(c, dict) for c in claimed):
            raise EngineError("watchdog_claim did not answer a list of runs")
        states = {}
        if not claimed:
            return states
        host_params = HostParams.from_config(self.config)
        for claim in claimed:
            record = run_claim(claim, host_params, self.store, self._context(),
                               self._fix_budget())
            states[record.state] = states.get(record.state, 0) + 1
            try:
                client.execute_kw(FIX_RUN_MODEL, "watchdog_report",
                                  [claim.get("id"), record.to_dict()],
                                  {"claim_token": claim.get("claim_token"), "host": self.host})
                reported = "reported"
            except EngineError as exc:
                reported = f"NOT reported ({exc})"
            log = LOG.info if record.state in ("done", "noop") else LOG.warning
            log("approved fix run %s: %s %s -> %s (run %s), %s%s", claim.get("id"),
                record.action, record.target or "-", record.state, record.run_id, reported,
                f": {record.error}" if record.error else "")
        return states

    def _apply_handover(self, result, now):
        conf = self.config["handover"]
        self._count("handover", "stored", result["stored"])
        self._count("handover", "ignored", result["ignored"])
        for state, count in result.get("approved", {}).items():
            self._count("approved_runs", state, count)
        self.handover_error = result["error"]
        if result["error"]:
            self.wd["handover_retry"] = now + conf["retry"]
            self._once("handover", LOG.warning, f"hand-over to Odoo failed, retried in "
                                                f"{conf['retry']:g}s: {result['error']}")
        else:
            self._forget("handover", "hand-over to Odoo works again")

    def pull_patterns(self, client, now):
        """Keep Odoo's patterns (with the admins' edits) for when Odoo is down."""
        from engine import fsutil
        from engine.patterns import PatternSet

        try:
            entries = client.execute_kw(HANDOVER_MODEL, "watchdog_patterns", [])
        except EngineError as exc:
            LOG.warning("patterns not pulled from Odoo: %s", exc)
            return False
        if not isinstance(entries, list) or not entries:
            return False
        pattern_set = PatternSet.from_entries(entries)
        if not pattern_set.patterns:
            LOG.warning("patterns from Odoo: none usable, the export is not replaced")
            return False
        data = json.dumps({"version": 1, "exported_at": naive_utc(now), "patterns": entries},
                          indent=1, sort_keys=True, default=str).encode() + b"\n"
        path = cfg.exported_patterns(self.config)
        fsutil.atomic_write(path, data, mode=0o600)
        LOG.info("patterns: %d pulled from Odoo into %s", len(pattern_set.patterns), path)
        return True
