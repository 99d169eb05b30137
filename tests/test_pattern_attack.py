"""A pattern that backtracks exponentially never stalls the addon (issue 8, item 3).

A Manager edits patterns in the backend. Saving one that only a backtracking
engine could run is refused, with the pattern's name; one that reached the
table around the ORM is skipped by the scan, which finishes. The scan runs
under an alarm: the previous code hangs in Python's re on ``(a+)+$`` against
34 ``a`` and a ``b``, and the alarm turns the hang into a failure.
"""

import os
import shutil
import signal
import tempfile

from odoo.exceptions import ValidationError
from odoo.tests import TransactionCase, tagged

ATTACK_LINE = "a" * 34 + "b"
REFUSED = ("pattern 'ah_test_redos': regex: refused: nested repeats can match the same text "
           "in many ways, so a backtracking engine may take exponential time")


class _Hang(Exception):
    pass


def _alarm(signum, frame):
    raise _Hang("the scan did not finish within 60 s")


@tagged("post_install", "-at_install")
class TestPatternAttack(TransactionCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.Pattern = cls.env["auto_heal.pattern"].with_context(active_test=False)
        cls.folder = tempfile.mkdtemp(prefix="auto_heal-test-redos-")
        cls.addClassCleanup(shutil.rmtree, cls.folder, True)
        cls.env["ir.config_parameter"].set_param("auto_heal.scan_settle_seconds", "0")
        # log sources read only inside the log folders a Settings admin set
        cls.env["ir.config_parameter"].set_param("auto_heal.log_folders", cls.folder)

    def test_saving_a_pattern_only_backtracking_can_run_is_refused(self):
        with self.assertRaises(ValidationError) as caught:
            self.Pattern.create({"type": "ah_test_redos", "name": "ReDoS", "regex": "(a+)+$",
                                 "severity": "high"})
        self.assertIn(REFUSED, str(caught.exception))
        pattern = self.Pattern.create({"type": "ah_test_ok", "name": "Fine",
                                       "regex": r"frobnicator failed", "severity": "low"})
        with self.assertRaises(ValidationError) as caught:
            pattern.write({"regex": r"(?<=x)frobnicator failed"})
        self.assertIn("pattern 'ah_test_ok': regex: refused: look-arounds are not supported "
                      "by linear-time engines (RE2, hyperscan)", str(caught.exception))
        self.assertEqual(pattern.regex, "frobnicator failed")

    def test_a_pattern_written_around_the_orm_is_skipped_and_the_scan_finishes(self):
        pattern = self.Pattern.create({"type": "ah_test_redos", "name": "ReDoS",
                                       "regex": "frobnicator failed", "severity": "high"})
        self.env.cr.execute("UPDATE auto_heal_pattern SET regex = %s WHERE id = %s",
                            ["(a+)+$", pattern.id])
        pattern.invalidate_recordset()
        path = os.path.join(self.folder, "odoo.log")
        with open(path, "w") as handle:
            handle.write(f"2026-11-29 10:00:01,000 42 ERROR probe18 odoo.http: {ATTACK_LINE}\n"
                         "aaaa\n"
                         "2026-11-29 10:00:02,000 42 ERROR probe18 odoo.sql_db: bad query: x\n"
                         "ERROR: deadlock detected\n")
        source = self.env["auto_heal.log.source"].create({"name": "redos", "path": path})
        previous = signal.signal(signal.SIGALRM, _alarm)
        signal.alarm(60)
        try:
            with self.assertLogs("odoo.addons.auto_heal.models.auto_heal_pattern",
                                 level="WARNING"):
                outcome = source._scan_sources()[source.id]
        finally:
            signal.alarm(0)
            signal.signal(signal.SIGALRM, previous)
        self.assertEqual(outcome, "ok")
        self.assertIn(REFUSED, pattern.load_error)
        incidents = self.env["auto_heal.incident"].search([("log_source_id", "=", source.id)])
        self.assertIn("db_deadlock", incidents.pattern_id.mapped("type"))
        self.assertNotIn("ah_test_redos", incidents.pattern_id.mapped("type"))
