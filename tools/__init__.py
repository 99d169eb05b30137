"""Developer tooling for auto_heal: plain Python, never imports odoo.

- ``pgcluster``: a private PostgreSQL cluster (temporary or persistent);
- ``odoo_env``: find an Odoo 18 launcher, its addons path, run it;
- ``proc``: small process helpers (free ports, process groups, signals);
- ``testrun``: what ``make test`` runs; ``run``: what ``make run`` runs;
- ``fake_odoo``: the one stand-in for an Odoo server in the tests (/web/health,
  /jsonrpc, a process the watchdog restarts); ``samples``: the legacy cron module
  and other samples both pytest and the addon's Odoo tests use;
- ``patterns_doc``, ``cli_doc``: the generated sections of readme/PATTERNS.md and
  readme/CLI.md.
"""
