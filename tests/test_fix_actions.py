"""Odoo-level fixes that need Odoo itself: asset bundles, and an addon's XML file.

``clear_asset_bundles`` deletes the real ``web.assets_backend`` attachments and
verifies through ir.qweb / AssetsBundle that the bundle builds again.
``remove_deprecated_cron_fields`` is a host action that Odoo may run itself
when the XML file lies in one of its writable addons paths.
"""

import json
import os
import shutil
import uuid

from odoo.modules.module import get_module_path
from odoo.tests import tagged

from ..tools.samples import CRON_XML
from .test_fix_run import FixRunCase

ASSET_DOMAIN = [("url", "=like", "/web/assets/%"), ("res_model", "=", "ir.ui.view"),
                ("public", "=", True)]
BACKEND = ["web.assets_backend.min.css", "web.assets_backend.min.js"]

#: The legacy cron module's file (tools/samples.py), with a comment the fix must keep.
LEGACY_CRON = CRON_XML.replace(b"<odoo>\n", b"<odoo>\n    <!-- Written for Odoo 16 -->\n")


@tagged("post_install", "-at_install")
class TestOdooLevelFixes(FixRunCase):
    def test_clear_asset_bundles_then_the_backend_bundle_builds_again(self):
        ok, detail = self.Run._hook_regenerate_assets("web.assets_backend")
        self.assertTrue(ok, detail)
        Attachment = self.env["ir.attachment"]
        old = Attachment.search(ASSET_DOMAIN + [("name", "in", BACKEND)])
        self.assertEqual(sorted(old.mapped("name")), BACKEND)
        old_rows = sorted((a.id, a.name, a.url, a.checksum) for a in old)

        incident = self.make_incident(self.pattern("asset_bundle_error"), "ah-assets-1",
                                      {"bundle": "web.assets_backend"})
        run = self.Run._plan_for_incidents(incident)
        self.assertEqual(json.loads(run.params), {"bundle": "web.assets_backend"})
        self.assertEqual((run.state, run.runs_on), ("pending", "odoo"))
        self.assertIn("web.assets_backend.min.css", run.plan)
        run.with_user(self.manager).action_approve()
        run.with_user(self.manager).action_run()
        self.assertEqual(run.state, "done", run.error)

        self.assertFalse(old.exists())
        new = Attachment.search(ASSET_DOMAIN + [("name", "in", BACKEND)])
        self.assertEqual(sorted(new.mapped("name")), BACKEND)
        self.assertTrue(all(attachment.raw for attachment in new))
        self.assertIn("verified: web.assets_backend builds again", run.output)
        backup = json.loads(run.backup_manifest)
        self.assertEqual(
            sorted((r["id"], r["name"], r["url"], r["checksum"]) for r in backup["rows"]
                   if r["name"] in BACKEND), old_rows)
        self.assertIn("the deleted cache is not restored", backup["restore"])
        self.assertIn("queued for garbage collection", run.output)
        self.assertEqual(incident.state, "resolved")

        # Its rollback builds the bundle again; the deleted cache stays deleted.
        run.with_user(self.manager).action_rollback()
        self.assertEqual(run.state, "rolled_back")
        self.assertEqual(sorted(Attachment.search(
            ASSET_DOMAIN + [("name", "in", BACKEND)]).mapped("name")), BACKEND)

    def test_odoo_fixes_a_cron_xml_in_its_writable_addons_path(self):
        addons = os.path.dirname(get_module_path("auto_heal"))
        module = os.path.join(addons, f"ah_legacy_cron_{uuid.uuid4().hex[:8]}")
        os.makedirs(os.path.join(module, "data"))
        self.addCleanup(shutil.rmtree, module, True)
        xml = os.path.join(module, "data", "cron.xml")
        with open(xml, "wb") as handle:
            handle.write(LEGACY_CRON)
        os.chmod(xml, 0o640)

        incident = self.make_incident(self.pattern("cron_field_deprecated"), "ah-cron-xml-1",
                                      {"xml_file": xml, "xml_line": "4", "field": "numbercall"})
        run = self.Run._plan_for_incidents(incident)
        self.assertEqual(json.loads(run.params), {"paths": [xml]})
        self.assertEqual(run.runs_on, "odoo", run.plan)
        self.assertEqual(run.state, "pending")  # prod: high severity waits for approval
        self.assertIn("numbercall", run.diff)
        self.assertIn("doall", run.diff)
        run.with_user(self.manager).action_approve()
        run.with_user(self.manager).action_run()
        self.assertEqual(run.state, "done", run.error)
        with open(xml, "rb") as handle:
            fixed = handle.read()
        self.assertNotIn(b"numbercall", fixed)
        self.assertNotIn(b"doall", fixed)
        self.assertIn(b"<!-- Written for Odoo 16 -->", fixed)
        self.assertEqual(oct(os.stat(xml).st_mode & 0o777), "0o640")
        self.assertTrue(run.backup_location)
        self.assertEqual(incident.state, "resolved")

        run.with_user(self.manager).action_rollback()
        self.assertEqual(run.state, "rolled_back")
        with open(xml, "rb") as handle:
            self.assertEqual(handle.read(), LEGACY_CRON)
        self.assertEqual(oct(os.stat(xml).st_mode & 0o777), "0o640")

    def test_a_cron_xml_outside_the_addons_paths_waits_for_the_watchdog(self):
        incident = self.make_incident(self.pattern("cron_field_deprecated"), "ah-cron-xml-2",
                                      {"xml_file": "/srv/elsewhere/legacy/data/cron.xml"})
        run = self.Run._plan_for_incidents(incident)
        self.assertEqual((run.runs_on, run.state), ("host", "pending"))
        self.assertIn("runs on the host watchdog", run.plan)
