"""Check families that live outside :mod:`engine.dbchecks`.

Each module holds checks of one family, written like those of
:mod:`engine.dbchecks` (a function ``(cursor, settings, ctx) -> [CheckResult]``,
bounded, read-only) and three tables that :mod:`engine.dbchecks` merges into
its own registry at import time::

    CHECKS          check name -> function (the ``check`` of data/patterns.json)
    DEFAULTS        setting -> default value
    CHECK_SETTINGS  check name -> the settings it reads

- :mod:`.postgres`: transaction ID wraparound, id sequences, invalid indexes
  and constraints, prepared transactions, replication slots;
- :mod:`.mail`: the outgoing mail queue;
- :mod:`.backup`: the age of the last verified dump and filestore copy;
- :mod:`.deployment`: odoo.conf and the running server (workers and the
  real-time channel, the base URL behind a proxy, sizing, the database manager).

:mod:`engine.dbchecks` is imported first, so that importing one family on its
own (a test, the watchdog) finds the helpers it needs.
"""

from .. import dbchecks  # noqa: F401 - the helpers exist before a family imports them
