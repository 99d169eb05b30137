"""Scanning real log files written by the tests, through the cron's code path.

The lines come from the real Odoo 18 log in tests/samples/real/, plus records
written the way Odoo 18 writes them (odoo.sql_db's "bad query", the worker's
memory limit, an error with a traceback from an addon).
"""

import json
import os
import shutil
import tempfile
from datetime import datetime
from unittest.mock import patch

from odoo.tests import TransactionCase, tagged
from odoo.tools import config
from odoo.tools.misc import file_path

SAMPLE = "auto_heal/tests/samples/real/odoo18-numbercall-startup-failure.log"
XML_FILE = "/srv/addons/legacy_cron/data/cron.xml"
LOGGER = "odoo.addons.auto_heal.models.auto_heal_log_source"


def deadlock(clock, pid, record_id, transaction):
    """A deadlock as Odoo 18's odoo.sql_db logs it (ids and pids vary)."""
    return (
        f"2026-11-29 {clock},311 {pid} ERROR probe18 odoo.sql_db: bad query: "
        f"b'UPDATE \"res_partner\" SET \"write_uid\" = 2 WHERE id IN ({record_id})'\n"
        f"ERROR: deadlock detected\n"
        f"DETAIL:  Process {pid} waits for ShareLock on transaction {transaction}; "
        f"blocked by process {pid + 7}.\n"
        f"Process {pid + 7} waits for ShareLock on transaction {transaction + 1}; "
        f"blocked by process {pid}.\n"
        f"HINT:  See server log for query details.\n"
        f"CONTEXT:  while updating tuple (0,{record_id}) in relation \"res_partner\"\n"
    ).encode()


def memory_limit(clock, pid, size):
    return (f"2026-11-29 {clock},002 {pid} INFO ? odoo.service.server: "
            f"Worker ({pid}) virtual memory limit ({size}) reached.\n").encode()


def unknown_error(clock, pid, batch, database="probe18"):
    """An ERROR with a traceback from a custom addon: no pattern knows it."""
    return (
        f"2026-11-29 {clock},517 {pid} ERROR {database} odoo.addons.acme_sync.models.sync: "
        f"Synchronisation of batch {batch} stopped\n"
        f"Traceback (most recent call last):\n"
        f"  File \"/srv/addons/acme_sync/models/sync.py\", line 88, in _sync_batch\n"
        f"    self._push(batch)\n"
        f"  File \"/srv/addons/acme_sync/models/sync.py\", line 131, in _push\n"
        f"    raise RuntimeError(\"frobnicator answered {batch % 7} for batch {batch}\")\n"
        f"RuntimeError: frobnicator answered {batch % 7} for batch {batch}\n"
    ).encode()


def info(clock, pid, text="odoo.modules.loading: Modules loaded."):
    return f"2026-11-29 {clock},100 {pid} INFO probe18 {text}\n".encode()


class ScanCase(TransactionCase):
    """A log source on a temporary folder, scanned like the cron does."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.root = tempfile.mkdtemp(prefix="auto_heal-test-scan-")
        cls.addClassCleanup(shutil.rmtree, cls.root, True)
        with open(file_path(SAMPLE), "rb") as handle:
            cls.sample = handle.read()
        cls.sample_lines = cls.sample.splitlines(keepends=True)
        cls.Source = cls.env["auto_heal.log.source"]
        cls.Incident = cls.env["auto_heal.incident"]
        cls.Pattern = cls.env["auto_heal.pattern"].with_context(active_test=False)
        cls.env["ir.config_parameter"].set_param("auto_heal.log_folders", cls.root)
        cls.set_settle(0)

    @classmethod
    def set_settle(cls, seconds):
        cls.env["ir.config_parameter"].set_param("auto_heal.scan_settle_seconds", str(seconds))

    def make_source(self, name="odoo.log"):
        folder = tempfile.mkdtemp(dir=self.root)
        path = os.path.join(folder, name)
        source = self.Source.create({"name": f"test {name}", "path": path})
        return source, path

    @staticmethod
    def write(path, data, mode="ab"):
        with open(path, mode) as handle:
            handle.write(data)

    def scan(self, source):
        outcome = source._scan_sources()[source.id]
        source.invalidate_recordset()
        return outcome

    def incidents(self, source):
        return self.Incident.search([("log_source_id", "=", source.id)])

    def counts(self, source):
        """{(pattern type, database): count} of the source's incidents."""
        result = {}
        for incident in self.incidents(source):
            key = (incident.pattern_type, incident.database or None)
            self.assertNotIn(key, result, f"two incidents for {key}")
            result[key] = incident.count
        return result

    def incident(self, source, pattern_type):
        found = self.incidents(source).filtered(lambda i: i.pattern_type == pattern_type)
        self.assertEqual(len(found), 1, f"one {pattern_type} incident expected")
        return found

    def sample_block(self, pid, minute):
        """The failing part of the real sample again, as another process later."""
        block = b"".join(self.sample_lines[12:88])
        return (block.replace(b" 5681 ", f" {pid} ".encode())
                .replace(b"2026-11-29 14:40:", f"2026-11-29 14:{minute}:".encode()))


@tagged("post_install", "-at_install")
class TestScan(ScanCase):
    def test_scan_creates_expected_incidents(self):
        source, path = self.make_source()
        cron_pattern = self.Pattern.search([("type", "=", "cron_field_deprecated")])
        deadlock_pattern = self.Pattern.search([("type", "=", "db_deadlock")])
        before = cron_pattern.match_count, deadlock_pattern.match_count
        data = (
            self.sample
            + deadlock("14:41:05", 5690, 7, 48211)
            + info("14:41:06", 5690)
            + deadlock("14:41:30", 5691, 1337, 48377)
            + memory_limit("14:42:00", 5690, 2147483648)
            + unknown_error("14:43:10", 5692, 42)
            + self.sample_block(5702, 50)
            + deadlock("14:51:00", 5702, 99, 51000)
            + memory_limit("14:52:00", 5702, 2281701376)
            + unknown_error("14:53:10", 5702, 1337)
            + info("14:54:00", 5702)
        )
        self.write(path, data, "wb")

        self.assertEqual(self.scan(source), "ok")
        self.assertEqual(self.counts(source), {
            ("cron_field_deprecated", "probe18"): 2,
            ("db_deadlock", "probe18"): 3,
            ("worker_memory_limit", None): 2,
            ("wkhtmltopdf_missing", None): 1,
            ("unknown", "probe18"): 2,
        })
        cron = self.incident(source, "cron_field_deprecated")
        self.assertEqual(cron.pattern_id, cron_pattern)
        self.assertEqual(cron.severity, cron_pattern.severity)
        self.assertEqual(cron.state, "new")
        self.assertEqual(cron.first_seen, datetime(2026, 11, 29, 14, 40, 22))
        self.assertEqual(cron.last_seen, datetime(2026, 11, 29, 14, 50, 22))
        self.assertEqual(cron.source_path, path)
        self.assertEqual(cron.source_line, 18)
        self.assertEqual(json.loads(cron.captures)["xml_file"], XML_FILE)
        self.assertEqual(cron.exception, "ValueError")
        self.assertIn("Invalid field 'numbercall' on model 'ir.cron'", cron.sample)
        self.assertTrue(cron.host)

        lines_before_deadlock = self.sample.count(b"\n")
        dead = self.incident(source, "db_deadlock")
        self.assertEqual(dead.first_seen, datetime(2026, 11, 29, 14, 41, 5))
        self.assertEqual(dead.last_seen, datetime(2026, 11, 29, 14, 51, 0))
        self.assertEqual(dead.source_line, lines_before_deadlock + 1)

        unknown = self.incident(source, "unknown")
        self.assertFalse(unknown.pattern_id)
        self.assertEqual(unknown.exception, "RuntimeError")
        self.assertEqual((unknown.first_seen, unknown.last_seen),
                         (datetime(2026, 11, 29, 14, 43, 10), datetime(2026, 11, 29, 14, 53, 10)))
        self.assertIn("frobnicator answered 0 for batch 42", unknown.sample)

        self.assertEqual(cron_pattern.match_count, before[0] + 2)
        self.assertEqual(deadlock_pattern.match_count, before[1] + 3)
        self.assertEqual(cron_pattern.last_match_date, datetime(2026, 11, 29, 14, 50, 22))
        self.assertEqual(source.last_scan_state, "ok")
        self.assertEqual(source.last_scan_bytes, len(data))
        self.assertEqual(int(source.cursor_offset), len(data))
        self.assertEqual(int(source.cursor_line), data.count(b"\n") + 1)
        self.assertEqual(int(source.cursor_inode), os.stat(path).st_ino)
        self.assertEqual(source.last_scan_findings, 10)

        # A second scan of the same file adds nothing.
        incidents = set(self.incidents(source).ids)
        self.assertEqual(self.scan(source), "ok")
        self.assertEqual(set(self.incidents(source).ids), incidents)
        self.assertEqual(self.counts(source)[("db_deadlock", "probe18")], 3)
        self.assertEqual(sum(self.counts(source).values()), 10)
        self.assertEqual((source.last_scan_bytes, source.last_scan_findings), (0, 0))
        self.assertEqual(cron_pattern.match_count, before[0] + 2)

        # New lines: only they are read, and they count on the same incidents.
        self.write(path, deadlock("15:00:00", 5800, 5, 60001) + info("15:00:01", 5800))
        self.assertEqual(self.scan(source), "ok")
        self.assertEqual(set(self.incidents(source).ids), incidents)
        self.assertEqual(self.counts(source)[("db_deadlock", "probe18")], 4)
        self.assertEqual(dead.last_seen, datetime(2026, 11, 29, 15, 0, 0))

    def test_rotation_between_scans_loses_nothing_and_doubles_nothing(self):
        source, path = self.make_source()
        self.write(path, info("10:00:00", 100) + deadlock("10:00:01", 100, 1, 10)
                   + unknown_error("10:00:02", 100, 1), "wb")
        self.scan(source)
        self.assertEqual(self.counts(source), {("db_deadlock", "probe18"): 1,
                                               ("unknown", "probe18"): 1})
        # logrotate: rename, the old process still appends to the renamed file,
        # then a new odoo.log starts.
        os.rename(path, path + ".1")
        self.write(path + ".1",
                   deadlock("10:05:00", 100, 2, 11) + unknown_error("10:05:01", 100, 2))
        self.write(path, info("10:06:00", 200) + deadlock("10:06:01", 200, 3, 12)
                   + memory_limit("10:06:02", 200, 3000000000), "wb")
        self.assertEqual(self.scan(source), "ok")
        self.assertEqual(self.counts(source), {("db_deadlock", "probe18"): 3,
                                               ("unknown", "probe18"): 2,
                                               ("worker_memory_limit", None): 1})
        self.assertIn("rotated", source.last_scan_message)
        self.assertEqual(int(source.cursor_inode), os.stat(path).st_ino)
        # And again: nothing is read twice.
        self.assertEqual(self.scan(source), "ok")
        self.assertEqual(self.counts(source), {("db_deadlock", "probe18"): 3,
                                               ("unknown", "probe18"): 2,
                                               ("worker_memory_limit", None): 1})
        dead = self.incident(source, "db_deadlock")
        self.assertEqual((dead.first_seen, dead.last_seen),
                         (datetime(2026, 11, 29, 10, 0, 1), datetime(2026, 11, 29, 10, 6, 1)))

    def test_traceback_across_two_scans_is_read_once_whole(self):
        self.set_settle(3600)
        source, path = self.make_source()
        record = unknown_error("11:00:00", 300, 5)
        cut = record.index(b"    self._push")
        head, tail = record[:cut], record[cut:]
        self.write(path, info("10:59:59", 300) + head, "wb")
        self.assertEqual(self.scan(source), "ok")
        self.assertFalse(self.incidents(source))
        self.assertEqual(int(source.cursor_offset), len(info("10:59:59", 300)))

        self.write(path, tail + info("11:00:05", 300))
        self.assertEqual(self.scan(source), "ok")
        self.assertEqual(self.counts(source), {("unknown", "probe18"): 1})
        unknown = self.incident(source, "unknown")
        self.assertEqual(unknown.exception, "RuntimeError")
        self.assertIn("Traceback (most recent call last):", unknown.sample)
        self.assertIn("RuntimeError: frobnicator answered 5 for batch 5", unknown.sample)
        self.assertEqual(unknown.source_line, 2)
        # The INFO record at the end is still held back; nothing is counted twice.
        self.assertEqual(self.scan(source), "ok")
        self.assertEqual(self.counts(source), {("unknown", "probe18"): 1})

    def test_binary_junk_and_non_utf8_do_not_break_the_scan(self):
        source, path = self.make_source()
        junk = bytes(range(256)) * 64
        latin1 = ("2026-11-29 12:00:{:02d},000 400 ERROR probe18 odoo.addons.acme.models.x: "
                  "Synchronisation du caf\xe9 n\xb0{} \xe9chou\xe9e\n")
        data = (
            junk + b"\n"
            + info("12:00:00", 400)
            + b"\x00\x00\xff\xfe\xfa binary \x00 junk inside a record\n" + junk + b"\n"
            + latin1.format(1, 12).encode("latin-1")
            + latin1.format(2, 13).encode("latin-1")
            + b"\xc3\x28\xa0\xa1 invalid utf-8 continuation\n"
            + deadlock("12:00:03", 400, 3, 77)
            + junk + b"\n"
        )
        self.write(path, data, "wb")
        self.assertEqual(self.scan(source), "ok")
        self.assertEqual(source.last_scan_bytes, len(data))
        self.assertEqual(int(source.cursor_offset), len(data))
        self.assertEqual(self.counts(source), {("unknown", "probe18"): 2,
                                               ("db_deadlock", "probe18"): 1})
        unknown = self.incident(source, "unknown")
        self.assertIn("Synchronisation du caf", unknown.sample)
        self.assertNotIn("\x00", unknown.sample)
        self.assertNotIn("\x00", self.incident(source, "db_deadlock").sample)

    def test_resolved_incident_that_recurs_is_regressed(self):
        source, path = self.make_source()
        self.write(path, unknown_error("13:00:00", 500, 1) + deadlock("13:00:01", 500, 1, 1)
                   + info("13:00:02", 500), "wb")
        self.scan(source)
        unknown = self.incident(source, "unknown")
        dead = self.incident(source, "db_deadlock")
        unknown.action_resolve()
        dead.action_ignore()
        self.assertEqual((unknown.state, dead.state), ("resolved", "ignored"))

        self.write(path, unknown_error("13:10:00", 501, 2) + unknown_error("13:10:01", 501, 3)
                   + deadlock("13:10:02", 501, 2, 2) + info("13:10:03", 501))
        self.scan(source)
        self.assertEqual(unknown.state, "regressed")
        self.assertEqual(unknown.regression_count, 1)
        self.assertEqual(unknown.count, 3)
        self.assertEqual(unknown.last_seen, datetime(2026, 11, 29, 13, 10, 1))
        bodies = unknown.message_ids.mapped("body")
        self.assertTrue(any("Regressed: 2 new occurrence(s)" in str(body) for body in bodies),
                        bodies)
        # An ignored incident stays ignored but counts.
        self.assertEqual(dead.state, "ignored")
        self.assertEqual(dead.count, 2)
        self.assertEqual(dead.regression_count, 0)

        # Acknowledge, resolve again, recur again: a second regression.
        unknown.action_acknowledge()
        unknown.action_resolve()
        self.write(path, unknown_error("13:20:00", 502, 4) + info("13:20:01", 502))
        self.scan(source)
        self.assertEqual((unknown.state, unknown.regression_count, unknown.count),
                         ("regressed", 2, 4))
        # Reopen brings an ignored incident back to new.
        dead.action_reopen()
        self.assertEqual(dead.state, "new")

    def test_scan_budget_spreads_a_big_log_over_several_scans(self):
        self.env["ir.config_parameter"].set_param("auto_heal.scan_max_bytes", "1")
        source, path = self.make_source()
        filler = b"".join(info(f"08:{n // 60 % 60:02d}:{n % 60:02d}", 42,
                               f"odoo.modules.loading: loading module filler_{n:06d} " + "x" * 60)
                          for n in range(12000))
        data = (unknown_error("07:00:00", 42, 1, "db_a") + filler
                + unknown_error("09:00:00", 42, 1, "db_b") + filler
                + deadlock("10:00:00", 42, 1, 1) + info("10:00:01", 42))
        self.assertGreater(len(data), 2 << 20)
        self.write(path, data, "wb")
        scans = 0
        while int(source.cursor_offset) < len(data):
            self.assertEqual(self.scan(source), "ok")
            scans += 1
            self.assertLessEqual(source.last_scan_bytes, 1 << 20)
            self.assertLess(scans, 10)
        self.assertGreaterEqual(scans, 3)
        self.assertEqual(self.counts(source), {("unknown", "db_a"): 1, ("unknown", "db_b"): 1,
                                               ("db_deadlock", "probe18"): 1})

    def test_queries_do_not_grow_with_records(self):
        """Batches: the query count depends on neither records nor incidents."""

        def queries_for(records_per_db, databases, tag):
            source, path = self.make_source(f"{tag}.log")
            data = b"".join(
                deadlock(f"09:{minute:02d}:00", 900 + minute, minute, minute)
                .replace(b" probe18 ", f" {tag}{db} ".encode())
                for db in range(databases) for minute in range(records_per_db))
            self.write(path, data + info("10:00:00", 999), "wb")
            self.env.flush_all()
            before = self.env.cr.sql_log_count
            self.assertEqual(self.scan(source), "ok")
            self.env.flush_all()
            spent = self.env.cr.sql_log_count - before
            self.assertEqual(len(self.incidents(source)), databases)
            self.assertEqual(sum(self.incidents(source).mapped("count")),
                             records_per_db * databases)
            return spent

        queries_for(1, 1, "warmup")  # caches: settings, patterns, registry
        counts = [queries_for(2, 2, "qa"), queries_for(50, 2, "qb"),
                  queries_for(2, 3, "qc"), queries_for(2, 30, "qd")]
        self.assertEqual(counts, [counts[0]] * 4)

    def test_scan_plans_a_fix_run_with_the_pattern_fix_action(self):
        self.env["ir.config_parameter"].set_param("auto_heal.environment", "prod")
        source, path = self.make_source()
        self.write(path, self.sample, "wb")
        self.scan(source)
        cron = self.incident(source, "cron_field_deprecated")
        self.assertEqual(cron.fix_run_count, 1)
        run = cron.fix_run_ids
        self.assertEqual(run.action, cron.pattern_id.fix_script)
        self.assertIn("Remove deprecated cron fields", run.name)  # the action in words
        self.assertEqual(run.params, '{"paths": ["/srv/addons/legacy_cron/data/cron.xml"]}')
        # The file is not in a writable addons path of this Odoo: the watchdog runs it.
        self.assertEqual((run.runs_on, run.state), ("host", "pending"))
        self.assertEqual(run.approval_reason,
                         "prod: high severity needs approval (default for prod)")
        # A second scan of new occurrences plans no second open run.
        self.write(path, self.sample_block(6001, 50))
        self.scan(source)
        self.assertEqual(cron.count, 2)
        self.assertEqual(cron.fix_run_count, 1)
        # Incidents without a fix action get no run.
        self.assertFalse(self.incidents(source).filtered(
            lambda i: not i.pattern_id.fix_script).fix_run_ids)
        cron.unlink()
        self.assertFalse(run.exists())


@tagged("post_install", "-at_install")
class TestScanFailures(ScanCase):
    def test_missing_and_unreadable_sources_are_recorded_and_cron_goes_on(self):
        # Only this test's sources take part (a default source may watch Odoo's log).
        self.Source.search([]).action_archive()
        missing, missing_path = self.make_source("gone.log")
        folder_source = self.Source.create({"name": "a folder", "path": self.root})
        good, good_path = self.make_source()
        self.write(good_path, unknown_error("14:00:00", 600, 1) + info("14:00:01", 600), "wb")
        archived, archived_path = self.make_source("archived.log")
        self.write(archived_path, unknown_error("14:00:00", 601, 1), "wb")
        archived.action_archive()

        with self.assertLogs(LOGGER, level="WARNING") as logs:
            outcome = self.Source._cron_scan_logs()

        self.assertEqual(len(logs.output), 2)
        self.assertEqual(outcome, {missing.id: "missing", folder_source.id: "error",
                                   good.id: "ok"})
        self.assertEqual(missing.last_scan_state, "missing")
        self.assertIn(missing_path, missing.last_scan_message)
        self.assertTrue(missing.last_scan_date)
        self.assertFalse(missing.cursor_inode)
        self.assertEqual(folder_source.last_scan_state, "error")
        self.assertIn(self.root, folder_source.last_scan_message)
        self.assertEqual(good.last_scan_state, "ok")
        self.assertEqual(self.counts(good), {("unknown", "probe18"): 1})
        self.assertEqual(archived.last_scan_state, "never")
        self.assertFalse(self.incidents(archived))

        # The file appears: the next run scans it.
        self.write(missing_path, deadlock("14:10:00", 602, 1, 1) + info("14:10:01", 602), "wb")
        self.Source._cron_scan_logs()
        self.assertEqual(missing.last_scan_state, "ok")
        self.assertFalse(missing.last_scan_message)
        self.assertEqual(self.counts(missing), {("db_deadlock", "probe18"): 1})

    def test_error_in_one_source_rolls_back_only_that_source(self):
        self.Source.search([]).action_archive()
        broken, broken_path = self.make_source("broken.log")
        good, good_path = self.make_source()
        for path in (broken_path, good_path):
            self.write(path, unknown_error("15:00:00", 700, 1) + info("15:00:01", 700), "wb")
        # An unusable cursor (written around the ORM): that source fails, alone.
        self.env.cr.execute(
            "UPDATE auto_heal_log_source SET cursor_inode = 'not a number' WHERE id = %s",
            [broken.id])
        broken.invalidate_recordset()
        with self.assertLogs(LOGGER, level="WARNING"):
            outcome = self.Source._cron_scan_logs()
        self.assertEqual(outcome, {broken.id: "error", good.id: "ok"})
        self.assertIn("invalid cursor", broken.last_scan_message)
        self.assertFalse(self.incidents(broken))
        self.assertEqual(self.counts(good), {("unknown", "probe18"): 1})

        # Reset cursor: the next scan reads the file from the start.
        broken.action_reset_cursor()
        self.assertEqual(broken.last_scan_state, "never")
        self.assertEqual(self.scan(broken), "ok")
        # Same fingerprint as good's incident: one incident, counted twice.
        self.assertEqual(self.incident(good, "unknown").count, 2)

    def test_engine_failure_is_recorded_on_the_source(self):
        source, path = self.make_source()
        self.write(path, unknown_error("16:00:00", 800, 1), "wb")
        with patch("odoo.addons.auto_heal.engine.scanner.Scanner.scan_file",
                   side_effect=RuntimeError("simulated engine bug")), \
                self.assertLogs(LOGGER, level="ERROR") as logs:
            outcome = self.Source.browse(source.id)._scan_sources()
        self.assertIn(f"scanning log source {path} failed", logs.output[0])
        self.assertEqual(outcome, {source.id: "error"})
        source.invalidate_recordset()
        self.assertEqual(source.last_scan_state, "error")
        self.assertIn("RuntimeError: simulated engine bug", source.last_scan_message)
        self.assertFalse(source.cursor_inode)

    def test_default_source_for_odoo_logfile(self):
        logfile = os.path.join(self.root, "server", "odoo-server.log")
        with patch.dict(config.options, {"logfile": logfile}):
            created = self.Source._create_default_log_source()
            again = self.Source._create_default_log_source()
        self.assertEqual(created.path, logfile)
        self.assertEqual(created.last_scan_state, "never")
        self.assertFalse(again)
        self.assertEqual(self.Source.search_count([("path", "=", logfile)]), 1)
        with patch.dict(config.options, {"logfile": None}):
            self.assertFalse(self.Source._create_default_log_source())
