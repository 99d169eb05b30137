# The repository root is both the addon and the home of the plain-Python
# engine/ and host/ packages. Only Odoo, which imports this package as
# odoo.addons.auto_heal, loads the Odoo layer; pytest and the watchdog do not.
if __name__.startswith("odoo.addons."):
    from . import controllers, models, wizards
