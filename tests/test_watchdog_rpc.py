"""The watchdog contract over real JSON-RPC: ``bin/auto-heal run-approved`` against this Odoo.

A host fix run approved here is claimed by the real CLI (a separate process)
with a Manager's API key, run on the host, and reported back; the XML file on
disk is fixed and the run, its output and its incident are updated in Odoo.
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile

from odoo.tests import HttpCase, new_test_user, tagged

from .test_fix_actions import LEGACY_CRON

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(REPO, "bin", "auto-heal")


@tagged("post_install", "-at_install")
class TestWatchdogOverRpc(HttpCase):
    def test_run_approved_claims_runs_and_reports_back(self):
        self.env["ir.config_parameter"].set_param("auto_heal.environment", "prod")
        manager = new_test_user(
            self.env, "ah_watchdog", groups="base.group_user,auto_heal.group_auto_heal_manager")
        key = self.env["res.users.apikeys"].with_user(manager).sudo()._generate(
            None, "auto_heal watchdog", None)
        root = tempfile.mkdtemp(prefix="auto_heal-watchdog-")
        self.addCleanup(shutil.rmtree, root, True)
        xml = os.path.join(root, "legacy_cron", "data", "cron.xml")
        os.makedirs(os.path.dirname(xml))
        with open(xml, "wb") as handle:
            handle.write(LEGACY_CRON)

        pattern = self.env["auto_heal.pattern"].search([("type", "=", "cron_field_deprecated")])
        incident = self.env["auto_heal.incident"].create({
            "fingerprint": "ah-rpc-1", "pattern_id": pattern.id,
            "pattern_type": pattern.type, "severity": pattern.severity, "host": "wd-test",
            "message": "Invalid field 'numbercall' on model 'ir.cron'",
            "captures": json.dumps({"xml_file": xml}),
        })
        run = self.env["auto_heal.fix.run"]._plan_for_incidents(incident)
        self.assertEqual((run.runs_on, run.state), ("host", "pending"))
        run.with_user(manager).action_approve()
        self.env.flush_all()

        state = os.path.join(root, "state")
        result = subprocess.run(
            [sys.executable, BIN, "run-approved", "--url", self.base_url(),
             "--db", self.env.cr.dbname, "--login", manager.login, "--host", "wd-test",
             "--root", root, "--audit-log", os.path.join(state, "audit.jsonl"),
             "--backup-dir", os.path.join(state, "backups"),
             "--runs-dir", os.path.join(state, "runs")],
            env=dict(os.environ, AUTO_HEAL_API_KEY=key), capture_output=True, text=True,
            timeout=300, check=False)
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
        self.assertIn(f"fix run {run.id}: remove_deprecated_cron_fields", result.stdout)
        self.assertNotIn(key, result.stdout + result.stderr)

        self.env.invalidate_all()
        self.assertEqual((run.state, run.claimed_by), ("done", "wd-test"), run.error)
        self.assertIn("numbercall", run.plan)
        self.assertIn("verified", run.output)
        self.assertTrue(run.engine_run_id)
        self.assertTrue(os.path.exists(os.path.join(state, "runs", f"{run.engine_run_id}.json")))
        self.assertIn(os.path.join(state, "backups"), run.backup_location)
        self.assertEqual(incident.state, "resolved")
        with open(xml, "rb") as handle:
            fixed = handle.read()
        self.assertNotIn(b"numbercall", fixed)
        self.assertNotIn(b"doall", fixed)

    def test_a_watchdog_gets_only_its_hosts_runs_and_only_it_may_report(self):
        """Over real JSON-RPC: the real CLI as the watchdog of one host, then another
        Manager's key trying to report for the run that watchdog holds."""
        self.env["ir.config_parameter"].set_param("auto_heal.environment", "dev")
        groups = "base.group_user,auto_heal.group_auto_heal_manager"
        owner = new_test_user(self.env, "ah_wd_owner", groups=groups)
        other = new_test_user(self.env, "ah_wd_other", groups=groups)
        keys = {user: self.env["res.users.apikeys"].with_user(user).sudo()._generate(
            None, "auto_heal watchdog", None) for user in (owner, other)}
        pattern = self.env["auto_heal.pattern"].create({
            "type": "ah_rpc_host", "name": "x", "regex": r"ah_rpc_host \d+", "severity": "low",
            "auto_fix": True, "fix_script": "ah_test_host_fix"})
        runs = {}
        for host in ("wd-a", "wd-b"):
            incident = self.env["auto_heal.incident"].create({
                "fingerprint": f"ah-rpc-{host}", "pattern_id": pattern.id,
                "pattern_type": pattern.type, "severity": "low", "host": host,
                "message": "ah_rpc_host 1"})
            runs[host] = self.env["auto_heal.fix.run"]._plan_for_incidents(incident)
            self.assertEqual((runs[host].state, runs[host].runs_on), ("approved", "host"))
        self.env.flush_all()

        root = tempfile.mkdtemp(prefix="auto_heal-watchdog-")
        self.addCleanup(shutil.rmtree, root, True)
        result = subprocess.run(
            [sys.executable, BIN, "run-approved", "--url", self.base_url(),
             "--db", self.env.cr.dbname, "--login", owner.login, "--host", "wd-b",
             "--audit-log", os.path.join(root, "audit.jsonl"),
             "--runs-dir", os.path.join(root, "runs")],
            env=dict(os.environ, AUTO_HEAL_API_KEY=keys[owner]), capture_output=True,
            text=True, timeout=300, check=False)
        self.assertIn(f"fix run {runs['wd-b'].id}:", result.stdout, result.stderr)
        self.assertNotIn(f"fix run {runs['wd-a'].id}:", result.stdout)
        self.assertIn("1 run(s) claimed", result.stdout)
        self.env.invalidate_all()
        self.assertEqual(runs["wd-a"].state, "approved", "wd-b's watchdog took wd-a's run")
        # the unknown action was reported back by the watchdog that claimed it
        self.assertEqual((runs["wd-b"].state, runs["wd-b"].claimed_by), ("failed", "wd-b"))
        self.assertIn("unknown fix action", runs["wd-b"].error)

        def rpc(user, method, *args, **kwargs):
            response = self.opener.post(self.base_url() + "/jsonrpc", json={
                "jsonrpc": "2.0", "method": "call", "id": 1, "params": {
                    "service": "object", "method": "execute_kw", "args": [
                        self.env.cr.dbname, user.id, keys[user], "auto_heal.fix.run",
                        method, list(args), kwargs]}}, timeout=60)
            return response.json()

        claim = rpc(owner, "watchdog_claim", "wd-a")["result"]
        self.assertEqual([c["id"] for c in claim], [runs["wd-a"].id])
        forged = {"run_id": "f0", "action": "ah_test_host_fix", "target": "odoo",
                  "actor": "watchdog", "state": "done", "output": "all fine, trust me"}
        for user, kwargs in ((other, {}), (other, {"claim_token": claim[0].get("claim_token"),
                                                   "host": "wd-a"})):
            answer = rpc(user, "watchdog_report", runs["wd-a"].id, forged, **kwargs)
            self.assertIn("only that watchdog", (answer.get("error") or {}).get(
                "data", {}).get("message", ""), answer)
        self.env.invalidate_all()
        self.assertEqual(runs["wd-a"].state, "running")
        answer = rpc(owner, "watchdog_report", runs["wd-a"].id, forged,
                     claim_token=claim[0]["claim_token"], host="wd-a")
        self.assertEqual(answer["result"]["state"], "done")

    def test_a_plan_that_changed_on_the_host_is_refused_and_reported_back(self):
        """Approve the host's own plan (Settings): the real CLI plans on the host and
        reports; that plan is approved; the file changes; the real CLI refuses to run a
        plan nobody approved and reports it back: Odoo shows the run stale, both plans."""
        params = self.env["ir.config_parameter"]
        params.set_param("auto_heal.environment", "prod")
        params.set_param("auto_heal.host_plan_approval", "1")
        manager = new_test_user(
            self.env, "ah_wd_stale", groups="base.group_user,auto_heal.group_auto_heal_manager")
        approver = new_test_user(
            self.env, "ah_wd_approver",
            groups="base.group_user,auto_heal.group_auto_heal_manager")
        key = self.env["res.users.apikeys"].with_user(manager).sudo()._generate(
            None, "auto_heal watchdog", None)
        root = tempfile.mkdtemp(prefix="auto_heal-watchdog-")
        self.addCleanup(shutil.rmtree, root, True)
        xml = os.path.join(root, "legacy_cron", "data", "cron.xml")
        os.makedirs(os.path.dirname(xml))
        with open(xml, "wb") as handle:
            handle.write(LEGACY_CRON)
        pattern = self.env["auto_heal.pattern"].search([("type", "=", "cron_field_deprecated")])
        incident = self.env["auto_heal.incident"].create({
            "fingerprint": "ah-rpc-stale", "pattern_id": pattern.id,
            "pattern_type": pattern.type, "severity": pattern.severity, "host": "wd-stale",
            "message": "Invalid field 'numbercall' on model 'ir.cron'",
            "captures": json.dumps({"xml_file": xml}),
        })
        run = self.env["auto_heal.fix.run"]._plan_for_incidents(incident)
        self.assertEqual((run.runs_on, run.state), ("host", "pending"))
        run.with_user(approver).action_approve()
        self.env.flush_all()
        state = os.path.join(root, "state")

        def run_approved():
            return subprocess.run(
                [sys.executable, BIN, "run-approved", "--url", self.base_url(),
                 "--db", self.env.cr.dbname, "--login", manager.login, "--host", "wd-stale",
                 "--root", root, "--audit-log", os.path.join(state, "audit.jsonl"),
                 "--backup-dir", os.path.join(state, "backups"),
                 "--runs-dir", os.path.join(state, "runs")],
                env=dict(os.environ, AUTO_HEAL_API_KEY=key), capture_output=True, text=True,
                timeout=300, check=False)

        # 1. the watchdog plans on the host only, and reports its plan for approval
        planned = run_approved()
        self.assertIn(f"fix run {run.id}: remove_deprecated_cron_fields", planned.stdout,
                      planned.stderr)
        self.env.invalidate_all()
        self.assertEqual(run.state, "pending", run.error)
        self.assertTrue(run.host_plan_hash.startswith("sha256:"))
        self.assertIn("numbercall", run.diff)
        self.assertIn("approve the host's own plan", run.plan_change_reason)
        with open(xml, "rb") as handle:
            self.assertEqual(handle.read(), LEGACY_CRON)
        run.with_user(approver).action_approve()
        self.assertEqual(run.approved_host_hash, run.host_plan_hash)
        approved_host_plan = run.host_plan_hash
        self.env.flush_all()

        # 2. the file changes on the host after the approval: refused, reported back
        changed = LEGACY_CRON.replace(b"Legacy job", b"Legacy job (edited on the host)")
        with open(xml, "wb") as handle:
            handle.write(changed)
        refused = run_approved()
        self.assertEqual(refused.returncode, 1, refused.stdout + refused.stderr)
        self.assertIn("-> stale", refused.stdout)
        self.assertIn("reported", refused.stdout)
        with open(xml, "rb") as handle:
            self.assertEqual(handle.read(), changed, "the watchdog ran a plan nobody approved")
        self.env.invalidate_all()
        self.assertEqual(run.state, "stale")
        self.assertIn("differs from the host plan approved in Odoo", run.plan_change_reason)
        self.assertNotEqual(run.host_plan_hash, approved_host_plan)
        # the edit lies outside the diff's context lines: the plan texts read the same,
        # what the hash covers (the file's sha256) says what changed
        self.assertEqual(run.diff.split("\n")[2:], run.previous_plan.split("Diff:\n")[1]
                         .split("\n")[2:])
        self.assertIn('"sha256_before"', run.plan_change)
        self.assertTrue(all(run.approval_ids.mapped("superseded")))
        self.assertEqual(run.approvals_needed, 1)
        self.assertTrue(any("on the host wd-stale" in str(body)
                            for body in run.message_ids.mapped("body")))

        # 3. the new plan approved, it runs
        run.with_user(approver).action_approve()
        self.env.flush_all()
        done = run_approved()
        self.assertEqual(done.returncode, 0, done.stdout + done.stderr)
        self.env.invalidate_all()
        self.assertEqual(run.state, "done", run.error)
        with open(xml, "rb") as handle:
            fixed = handle.read()
        self.assertNotIn(b"numbercall", fixed)
        self.assertIn(b"edited on the host", fixed)
