{
    "name": "Auto-Heal",
    "summary": "Find what goes wrong in an Odoo deployment and heal it safely",
    "version": "18.0.1.2.0",
    "category": "Tools",
    "website": "https://github.com/auto-heal/auto_heal",
    "author": "auto_heal developers",
    "license": "LGPL-3",
    "depends": ["base", "mail"],
    "external_dependencies": {"python": ["lxml", "psutil", "requests"]},
    "data": [
        "security/auto_heal_security.xml",
        "security/ir.model.access.csv",
        "data/ir_config_parameter_data.xml",
        "data/auto_heal_pattern_data.xml",
        "data/auto_heal_runbook_data.xml",
        "data/auto_heal_log_source_data.xml",
        "data/ir_cron_data.xml",
        "views/auto_heal_incident_views.xml",
        "views/auto_heal_fix_run_views.xml",
        "views/auto_heal_pattern_views.xml",
        "views/auto_heal_log_source_views.xml",
        "views/auto_heal_db_scan_views.xml",
        "views/auto_heal_notification_views.xml",
        "views/auto_heal_overview_views.xml",
        "views/res_config_settings_views.xml",
        "wizards/auto_heal_fix_run_reject_views.xml",
        "views/auto_heal_menus.xml",
    ],
    "assets": {
        "web.assets_backend": [
            "auto_heal/static/src/**/*",
            ("remove", "auto_heal/static/src/views/incident_graph.js"),
        ],
        # Odoo 18 loads the graph view lazily: its extension goes with it.
        "web.assets_backend_lazy": [
            "auto_heal/static/src/views/incident_graph.js",
        ],
        "web.assets_tests": [
            "auto_heal/static/tests/tours/**/*",
        ],
    },
    "application": True,
}
