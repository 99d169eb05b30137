"""The host takes data from Odoo, never power: what a Manager may put in a run's parameters."""

import json

from odoo.exceptions import ValidationError
from odoo.tests import tagged

from .test_fix_run import FixRunCase


@tagged("post_install", "-at_install")
class TestFixRunParameters(FixRunCase):
    def test_a_manager_cannot_give_a_host_run_a_host_parameter(self):
        """The attack of the review: pg_ctl from Odoo became argv[0] as root. Odoo now
        refuses it when it is written, and the watchdog refuses it again (host tests)."""
        pattern = self.make_pattern("ah_pg_down", "restart_service", "critical")
        incident = self.make_incident(pattern, "ah-pg-1")
        # a draft: the parameters of a submitted run are frozen (test_fix_run_approval)
        run = self.Run.create({"incident_id": incident.id, "action": "restart_service",
                               "params": json.dumps({"service": "postgresql"})})
        self.assertEqual(run.runs_on, "host")
        self.assertIn("set on the host", run.host_params_note)
        self.assertIn("pg_ctl", run.host_params_note)
        for params, refused in [
            ({"service": "postgresql", "pg_ctl": "/tmp/evil"}, "pg_ctl is set on the host"),
            ({"service": "postgresql", "via": "command", "command": ["/bin/sh", "-c", "id"]},
             "command, via are set on the host"),
            ({"service": "postgresql", "dsn": "host=evil.example"}, "dsn is set on the host"),
            ({"service": "postgresql", "timeout": 1e9}, "timeout is set on the host"),
        ]:
            with self.assertRaisesRegex(ValidationError, refused), self.cr.savepoint():
                run.with_user(self.manager).write({"params": json.dumps(params)})
            run.invalidate_recordset()
        self.assertEqual(json.loads(run.params), {"service": "postgresql"})

        perms = self.make_pattern("ah_perm", "fix_permissions", "high")
        perm_run = self.Run.create({
            "incident_id": self.make_incident(perms, "ah-perm-1", {"path": "/var/x"}).id,
            "action": "fix_permissions", "params": json.dumps({"path": ["/var/x"]})})
        with self.assertRaisesRegex(ValidationError, "owner is set on the host"), \
                self.cr.savepoint():
            perm_run.with_user(self.manager).write(
                {"params": json.dumps({"path": ["/var/x"], "owner": "root:root"})})

    def test_captures_fill_only_the_declared_data_parameters(self):
        cron_xml = self.make_pattern("ah_cron_xml", "remove_deprecated_cron_fields", "high")
        incident = self.make_incident(cron_xml, "ah-xml-1", {
            "xml_file": "/srv/addons/legacy/data/cron.xml", "xml_line": "3",
            "owner": "root:root"})
        self.assertEqual(self.Run._params_from_incident(incident, cron_xml.fix_script),
                         {"paths": ["/srv/addons/legacy/data/cron.xml"]})
        reactivate = self.make_pattern("ah_cron_off", "reactivate_cron", "high")
        off = self.make_incident(reactivate, "ah-off-1", {"cron_id": "20"})
        self.assertEqual(self.Run._params_from_incident(off, "reactivate_cron"), {"cron_id": 20})
        bad = self.make_incident(reactivate, "ah-off-2", {"cron_id": "20; DROP TABLE"})
        self.assertEqual(self.Run._params_from_incident(bad, "reactivate_cron"), {})
        relative = self.make_incident(cron_xml, "ah-xml-2", {"xml_file": "../../etc/x.xml"})
        self.assertEqual(self.Run._params_from_incident(relative, cron_xml.fix_script), {})
