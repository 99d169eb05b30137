"""Developer tooling for auto_heal: plain Python, never imports odoo.

- ``pgcluster``: a private PostgreSQL cluster (temporary or persistent);
- ``odoo_env``: find an Odoo 18 launcher, its addons path, run it;
- ``proc``: small process helpers (free ports, process groups, signals);
- ``testrun``: what ``make test`` runs; ``run``: what ``make run`` runs.
"""
