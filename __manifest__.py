{
    "name": "Auto-Heal",
    "summary": "Find what goes wrong in an Odoo deployment and heal it safely",
    "version": "18.0.1.0.0",
    "category": "Tools",
    "website": "https://github.com/auto-heal/auto_heal",
    "author": "auto_heal developers",
    "license": "LGPL-3",
    "depends": ["base", "mail"],
    "external_dependencies": {"python": ["lxml", "psutil", "requests"]},
    "data": [],
    "installable": True,
    "application": True,
}
