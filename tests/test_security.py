"""Access: nothing for internal users outside the Auto-Heal groups."""

from odoo.exceptions import AccessError, ValidationError
from odoo.tests import TransactionCase, new_test_user, tagged

MODELS = ("auto_heal.incident", "auto_heal.pattern", "auto_heal.fix.run",
          "auto_heal.log.source")


@tagged("post_install", "-at_install")
class TestSecurity(TransactionCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        env = cls.env
        cls.pattern = env["auto_heal.pattern"].create({
            "type": "ah_test_secret", "name": "Secret", "regex": r"secret failure \d+",
            "severity": "high", "fix_script": "ah_test_fix",
        })
        cls.incident = env["auto_heal.incident"].create({
            "fingerprint": "ah-test-security-1", "pattern_id": cls.pattern.id,
            "pattern_type": "ah_test_secret", "severity": "high",
            "message": "connect failed: postgresql://odoo:hunter2@db/prod",
            "sample": "connect failed: password=hunter2 host=db",
        })
        cls.fix_run = env["auto_heal.fix.run"].create({"incident_id": cls.incident.id})
        env["ir.config_parameter"].set_param("auto_heal.log_folders", "/nonexistent/auto_heal")
        cls.source = env["auto_heal.log.source"].create({
            "name": "security test", "path": "/nonexistent/auto_heal/security.log"})
        cls.records = {
            "auto_heal.incident": cls.incident, "auto_heal.pattern": cls.pattern,
            "auto_heal.fix.run": cls.fix_run, "auto_heal.log.source": cls.source,
        }
        cls.plain = new_test_user(env, "ah_plain", groups="base.group_user")
        cls.user = new_test_user(
            env, "ah_user", groups="base.group_user,auto_heal.group_auto_heal_user")
        cls.manager = new_test_user(
            env, "ah_manager", groups="base.group_user,auto_heal.group_auto_heal_manager")
        cls.settings_admin = new_test_user(
            env, "ah_settings", groups="base.group_user,base.group_system")

    def test_secrets_are_masked_on_write(self):
        self.assertNotIn("hunter2", self.incident.sample)
        self.assertNotIn("hunter2", self.incident.message)
        self.incident.write({"sample": "token=abc123secret in a later excerpt"})
        self.assertEqual(self.incident.sample, "token=*** in a later excerpt")
        self.incident.write({"sample": "2026-01-01 ERROR x: boom\nconfig dump:\n"
                                       "admin_passwd = my secret pass"})
        self.assertNotIn("secret pass", self.incident.sample)

    def test_plain_internal_user_has_no_access(self):
        for model, record in self.records.items():
            with self.assertRaises(AccessError, msg=model):
                self.env[model].with_user(self.plain).search([])
            with self.assertRaises(AccessError, msg=model):
                record.with_user(self.plain).read(["display_name"])
            with self.assertRaises(AccessError, msg=model):
                record.with_user(self.plain).write({"name": "changed"})
        menu = self.env.ref("auto_heal.menu_auto_heal_root")
        visible = self.env["ir.ui.menu"].with_user(self.plain)._visible_menu_ids()
        self.assertNotIn(menu.id, visible)

    def test_auto_heal_user_reads_but_does_not_write(self):
        for model, record in self.records.items():
            found = self.env[model].with_user(self.user).search([("id", "=", record.id)])
            self.assertEqual(found, record, model)
            self.assertEqual(record.with_user(self.user).read(["display_name"])[0]["id"],
                             record.id)
            with self.assertRaises(AccessError, msg=model):
                record.with_user(self.user).write({"name": "changed"})
            with self.assertRaises(AccessError, msg=model):
                record.with_user(self.user).unlink()
        with self.assertRaises(AccessError):
            self.incident.with_user(self.user).action_acknowledge()
        with self.assertRaises(AccessError):
            self.env["auto_heal.log.source"].with_user(self.user).create(
                {"name": "x", "path": "/var/log/x.log"})
        self.assertEqual(self.incident.state, "new")
        self.assertEqual(self.pattern.with_user(self.user).open_incident_count, 1)
        menu = self.env.ref("auto_heal.menu_auto_heal_root")
        visible = self.env["ir.ui.menu"].with_user(self.user)._visible_menu_ids()
        self.assertIn(menu.id, visible)

    def test_manager_writes(self):
        incident = self.incident.with_user(self.manager)
        incident.action_acknowledge()
        self.assertEqual(self.incident.state, "acknowledged")
        self.pattern.with_user(self.manager).write({"severity": "critical"})
        self.assertEqual(self.pattern.severity, "critical")
        source = self.env["auto_heal.log.source"].with_user(self.manager).create(
            {"name": "manager source", "path": "/nonexistent/auto_heal/manager.log"})
        source.action_scan_now()
        self.assertEqual(source.last_scan_state, "missing")
        with self.assertRaises(ValidationError):  # the class's draft run is still open
            self.env["auto_heal.fix.run"].with_user(self.manager).create(
                {"incident_id": self.incident.id})
        run = self.env["auto_heal.fix.run"].with_user(self.manager).create(
            {"incident_id": self.incident.id, "action": "ah_test_other_fix"})
        self.assertEqual(run.action, "ah_test_other_fix")
        run.unlink()
        self.assertFalse(run.exists())

    def test_settings_admin_is_manager(self):
        for user in (self.settings_admin, self.env.ref("base.user_admin")):
            self.assertTrue(user.has_group("auto_heal.group_auto_heal_manager"), user.login)
            self.assertTrue(user.has_group("auto_heal.group_auto_heal_user"), user.login)
        self.incident.with_user(self.settings_admin).action_resolve()
        self.assertEqual(self.incident.state, "resolved")
        self.source.with_user(self.settings_admin).write({"active": False})
        self.assertFalse(self.source.active)

    def test_views_load_and_hide_manager_buttons_from_users(self):
        for model in MODELS:
            for user in (self.user, self.manager):
                views = self.env[model].with_user(user).get_views(
                    [(False, "list"), (False, "form"), (False, "search")])
                self.assertEqual(set(views["views"]), {"list", "form", "search"}, model)
        buttons = {
            "auto_heal.incident": "action_acknowledge",
            "auto_heal.log.source": "action_scan_now",
            "auto_heal.pattern": "action_use_file_version",
            "auto_heal.fix.run": "action_approve",
        }
        for model, button in buttons.items():
            user_arch = self.env[model].with_user(self.user).get_views(
                [(False, "form")])["views"]["form"]["arch"]
            manager_arch = self.env[model].with_user(self.manager).get_views(
                [(False, "form")])["views"]["form"]["arch"]
            self.assertNotIn(f'name="{button}"', user_arch, model)
            self.assertIn(f'name="{button}"', manager_arch, model)
