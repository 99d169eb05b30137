"""auto_heal engine: plain Python, never imports odoo."""
