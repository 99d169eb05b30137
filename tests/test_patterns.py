"""Default patterns: loading data/patterns.json, keeping an admin's edits, validation."""

import json
import os
import shutil
import tempfile

from odoo.exceptions import ValidationError
from odoo.tests import TransactionCase, tagged

from ..engine.errors import PatternError
from ..engine.patterns import read_entries, validate_entry
from ..models.auto_heal_pattern import DEFAULT_PATTERNS_FILE


def _entry(kind, regex, severity="medium", **extra):
    return dict({"type": kind, "name": kind.replace("_", " ").title(), "regex": regex,
                 "severity": severity, "auto_fix": False, "fix_script": "",
                 "description": f"Test pattern {kind}", "levels": [], "generic": False,
                 "fingerprint_fields": []}, **extra)


@tagged("post_install", "-at_install")
class TestPatternLoading(TransactionCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.Pattern = cls.env["auto_heal.pattern"].with_context(active_test=False)
        cls.folder = tempfile.mkdtemp(prefix="auto_heal-test-patterns-")
        cls.addClassCleanup(shutil.rmtree, cls.folder, True)

    def _write_file(self, entries, name="patterns.json"):
        path = os.path.join(self.folder, name)
        with open(path, "w", encoding="utf-8") as handle:
            json.dump({"version": 1, "patterns": entries}, handle)
        return path

    def _get(self, kind):
        return self.Pattern.search([("type", "=", kind)])

    def test_default_patterns_loaded_from_file(self):
        """Every valid entry of data/patterns.json is a pattern with the file's values."""
        entries = read_entries(DEFAULT_PATTERNS_FILE)
        expected = {}
        for entry in entries:
            try:
                pattern = validate_entry(entry)
            except PatternError:
                continue
            expected.setdefault(pattern.type, pattern)
        self.assertIn("cron_field_deprecated", expected)
        records = self.Pattern.search([("type", "in", list(expected))])
        self.assertEqual(
            {record.type: record.severity for record in records},
            {kind: pattern.severity for kind, pattern in expected.items()})
        for record in records:
            pattern = expected[record.type]
            self.assertEqual(record.regex or "", pattern.regex, record.type)
            self.assertEqual(record.fix_script or "", pattern.fix_script, record.type)
            self.assertEqual(record.auto_fix, pattern.auto_fix, record.type)
            self.assertEqual(record.generic, pattern.generic, record.type)
            self.assertEqual(record.fingerprint_fields or "",
                             ",".join(pattern.fingerprint_fields), record.type)
            self.assertTrue(record.upstream_hash, record.type)
            self.assertFalse(record.upstream_changed, record.type)
            self.assertFalse(record.customized, record.type)
            self.assertFalse(record.load_error, record.type)
        cron = records.filtered(lambda r: r.type == "cron_field_deprecated")
        self.assertIn("xml_file", cron.fingerprint_fields.split(","))

    def test_reload_of_unchanged_file_changes_nothing(self):
        before = {r.type: (r.write_date, r.upstream_hash) for r in self.Pattern.search([])}
        summary = self.Pattern._load_default_patterns()
        self.assertEqual(summary["created"], [])
        self.assertEqual(summary["updated"], [])
        after = {r.type: (r.write_date, r.upstream_hash) for r in self.Pattern.search([])}
        self.assertEqual(after, before)

    def test_admin_edit_survives_reload_unedited_takes_new_values(self):
        first = [
            _entry("ah_test_edited", r"edited failure \d+", "low"),
            _entry("ah_test_plain", r"plain failure \d+", "low"),
            _entry("ah_test_same", r"same failure \d+", "high"),
        ]
        summary = self.Pattern._load_default_patterns(self._write_file(first))
        self.assertEqual(sorted(summary["created"]),
                         ["ah_test_edited", "ah_test_plain", "ah_test_same"])
        edited, plain, same = (self._get("ah_test_edited"), self._get("ah_test_plain"),
                               self._get("ah_test_same"))
        self.assertEqual((edited.severity, plain.severity, same.severity),
                         ("low", "low", "high"))

        # An admin edits two patterns; the file then changes one of them and another.
        edited.write({"severity": "critical", "regex": r"edited failure \d+ for (?P<who>\w+)"})
        same.write({"description": "Our runbook: restart the sync worker."})
        self.assertTrue(edited.customized)
        second = [
            _entry("ah_test_edited", r"edited failure \d+", "medium"),
            _entry("ah_test_plain", r"plain failure (?P<code>\d+)", "high",
                   fingerprint_fields=["code"]),
            _entry("ah_test_same", r"same failure \d+", "high"),
            _entry("ah_test_new", r"brand new failure", "critical"),
            _entry("ah_test_broken", r"(unclosed", "high"),
            _entry("ah_test_odd", r"odd", "urgent"),
        ]
        with self.assertLogs("odoo.addons.auto_heal.models.auto_heal_pattern",
                             level="WARNING") as logs:
            summary = self.Pattern._load_default_patterns(self._write_file(second, "v2.json"))
        warnings = "\n".join(logs.output)
        self.assertIn("ah_test_broken", warnings)
        self.assertIn("ah_test_odd", warnings)
        self.assertEqual(summary["created"], ["ah_test_new"])
        self.assertEqual(summary["updated"], ["ah_test_plain"])
        self.assertEqual(sorted(summary["kept"]), ["ah_test_edited", "ah_test_same"])
        self.assertEqual(len(summary["skipped"]), 2)

        # The edited pattern keeps the admin's values and offers the file's.
        self.assertEqual(edited.severity, "critical")
        self.assertEqual(edited.regex, r"edited failure \d+ for (?P<who>\w+)")
        self.assertTrue(edited.upstream_changed)
        self.assertTrue(edited.customized)
        # Edited while the file did not change: kept, no update to offer.
        self.assertEqual(same.description, "Our runbook: restart the sync worker.")
        self.assertFalse(same.upstream_changed)
        self.assertTrue(same.customized)
        # The unedited pattern took the file's new values.
        self.assertEqual(plain.severity, "high")
        self.assertEqual(plain.regex, r"plain failure (?P<code>\d+)")
        self.assertEqual(plain.fingerprint_fields, "code")
        self.assertFalse(plain.upstream_changed)
        # New types are created; invalid entries are not.
        self.assertEqual(self._get("ah_test_new").severity, "critical")
        self.assertFalse(self._get("ah_test_broken"))
        self.assertFalse(self._get("ah_test_odd"))

        # A third run with the same file keeps everything as it is.
        summary = self.Pattern._load_default_patterns(self._write_file(second, "v2.json"))
        self.assertEqual((summary["created"], summary["updated"]), ([], []))
        self.assertEqual(edited.severity, "critical")
        self.assertTrue(edited.upstream_changed)

        # The admin takes the file's version: the pattern follows the file again.
        edited.action_use_file_version()
        self.assertEqual((edited.severity, edited.regex), ("medium", r"edited failure \d+"))
        self.assertFalse(edited.upstream_changed)
        self.assertFalse(edited.customized)
        third = [_entry("ah_test_edited", r"edited failure \d+", "high")] + second[1:4]
        summary = self.Pattern._load_default_patterns(self._write_file(third, "v3.json"))
        self.assertEqual(summary["updated"], ["ah_test_edited"])
        self.assertEqual(edited.severity, "high")

    def test_broken_or_missing_file_does_not_raise(self):
        count = self.Pattern.search_count([])
        broken = os.path.join(self.folder, "broken.json")
        with open(broken, "w", encoding="utf-8") as handle:
            handle.write('{"patterns": [ {"type": ')
        with self.assertLogs("odoo.addons.auto_heal.models.auto_heal_pattern",
                             level="ERROR") as logs:
            self.assertFalse(self.Pattern._load_default_patterns(broken))
            self.assertFalse(self.Pattern._load_default_patterns(
                os.path.join(self.folder, "missing.json")))
        self.assertIn("not valid JSON", logs.output[0])
        self.assertIn("not found", logs.output[1])
        self.assertEqual(self.Pattern.search_count([]), count)

    def test_broken_regex_raises_validation_error_naming_the_pattern(self):
        pattern = self.Pattern.create({
            "type": "ah_test_admin", "name": "Admin pattern", "regex": r"admin failure \d+",
            "severity": "high",
        })
        with self.assertRaises(ValidationError) as caught:
            pattern.write({"regex": "admin failure (unclosed"})
        message = str(caught.exception)
        self.assertIn("pattern 'ah_test_admin': regex: does not compile", message)
        self.assertNotIn("\n", message.strip())
        with self.assertRaises(ValidationError) as caught:
            pattern.write({"fingerprint_fields": "missing_group"})
        self.assertIn("'ah_test_admin'", str(caught.exception))
        self.assertIn("fingerprint_fields", str(caught.exception))
        with self.assertRaises(ValidationError) as caught:
            self.Pattern.create({"type": "ah_test_empty", "name": "Empty", "regex": "a|",
                                 "severity": "low"})
        self.assertIn("pattern 'ah_test_empty': regex: matches the empty string",
                      str(caught.exception))
        self.assertEqual(pattern.regex, r"admin failure \d+")

    def test_pattern_rejected_by_engine_is_skipped_with_load_error(self):
        good = self.Pattern.create({"type": "ah_test_good", "name": "Good",
                                    "regex": r"good failure", "severity": "low"})
        bad = self.Pattern.create({"type": "ah_test_bad", "name": "Bad",
                                   "regex": r"bad failure", "severity": "low"})
        # A value the constraint would refuse, written around the ORM (or accepted by
        # an older engine): the scanner must skip it and say why.
        self.env.cr.execute("UPDATE auto_heal_pattern SET regex = %s WHERE id = %s",
                            ["bad (failure", bad.id])
        bad.invalidate_recordset()
        with self.assertLogs("odoo.addons.auto_heal.models.auto_heal_pattern", level="WARNING"):
            types = [p.type for p in self.env["auto_heal.pattern"]._get_scan_patterns()]
        self.assertIn("ah_test_good", types)
        self.assertNotIn("ah_test_bad", types)
        self.assertIn("pattern 'ah_test_bad': regex: does not compile", bad.load_error)
        self.assertFalse(good.load_error)
        # Fixing the regex clears the error.
        bad.write({"regex": r"bad \(failure"})
        self.assertFalse(bad.load_error)
        types = [pattern.type for pattern in self.env["auto_heal.pattern"]._get_scan_patterns()]
        self.assertIn("ah_test_bad", types)
