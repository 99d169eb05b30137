"""auto_heal engine: plain Python that decides; it never imports odoo.

Modules, from the bytes up:

* ``records``: parse Odoo log records (header + continuation lines);
* ``reader``: read a log incrementally with a cursor (rotation, truncation);
* ``patterns``: load and validate the pattern database;
* ``matcher``: prefilter every pattern at once, classify by innermost cause;
* ``fingerprint``: group records that differ only in variable values;
* ``incidents``: findings and incidents;
* ``scanner``: all of the above for one file, the API the addon and the
  watchdog share;
* ``secrets``: mask secrets in any text that is stored or sent.
"""
