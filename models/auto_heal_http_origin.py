"""Where requests come from: the scheme and host they arrive with, forwarded or not.

The ``base_url_mismatch`` check (engine/checks/deployment.py) compares
``web.base.url`` and ``proxy_mode`` with what requests really carry. Odoo
keeps no trace of it, so ``ir.http._pre_dispatch`` notes each request's
``Host``, scheme and ``X-Forwarded-Host`` / ``-Proto`` / ``-For`` here::

    request --> ir.http._pre_dispatch --> observe(): per process, in memory
                                              | a new origin: written at once
                                              | a known one: its hits, every 10 min
                                              v
                                  auto_heal_http_origin (one row per origin, 50 at most)

Requests from this machine to a loopback address without forwarded headers
(the watchdog's probes, wkhtmltopdf) say nothing about the public address
and are not noted. The headers come from anyone: each value is cut to 255
characters, control characters dropped, and the table never holds more than
:data:`MAX_ORIGINS` rows, so a client sending random hosts cannot grow it.
The write uses a cursor of its own (a read-only request cannot write) and
never fails the request.
"""

import logging
import re
import threading
import time

from odoo import api, fields, models

from ..engine.checks.deployment_facts import is_loopback

_logger = logging.getLogger(__name__)

MAX_ORIGINS = 50
#: A known origin's hits are written at most this often per process (seconds).
FLUSH_SECONDS = 600
KEEP_DAYS = 30
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_lock = threading.Lock()
#: origin key -> [hits not written yet, monotonic time of the last write]
_seen = {}


def _clean(value, limit=255):
    return _CONTROL.sub("", str(value or ""))[:limit].strip()


def origin_key(host, scheme, headers, proxy_mode):
    """The origin of a request: host, scheme and its forwarded headers; None to skip it.

    >>> origin_key("127.0.0.1:8069", "http", {"X-Forwarded-Host": "erp.example.com",
    ...            "X-Forwarded-Proto": "https", "X-Forwarded-For": "203.0.113.7"}, False)
    ('127.0.0.1:8069', 'http', 'erp.example.com', 'https', True, False)
    >>> origin_key("127.0.0.1:8069", "http", {}, False) is None
    True
    """
    forwarded_host = _clean(headers.get("X-Forwarded-Host"))
    forwarded_proto = _clean(headers.get("X-Forwarded-Proto"), 16).lower()
    forwarded_for = bool(headers.get("X-Forwarded-For") or headers.get("Forwarded"))
    host = _clean(host)
    if is_loopback(host) and not (forwarded_host or forwarded_proto or forwarded_for):
        return None
    return (host, _clean(scheme, 16).lower(), forwarded_host, forwarded_proto, forwarded_for,
            bool(proxy_mode))


class AutoHealHttpOrigin(models.Model):
    _name = "auto_heal.http.origin"
    _description = "Auto-Heal: Request Origin Seen"
    _order = "last_seen desc, id desc"
    _rec_name = "host"

    host = fields.Char(readonly=True, help="The Host header as Odoo saw it.")
    scheme = fields.Char(readonly=True)
    forwarded_host = fields.Char(string="X-Forwarded-Host", readonly=True)
    forwarded_proto = fields.Char(string="X-Forwarded-Proto", readonly=True)
    forwarded_for = fields.Boolean(string="X-Forwarded-For", readonly=True)
    proxy_mode = fields.Boolean(readonly=True, help="proxy_mode when the request came.")
    hits = fields.Integer(readonly=True)
    first_seen = fields.Datetime(readonly=True)
    last_seen = fields.Datetime(readonly=True, index=True)

    _sql_constraints = [
        ("origin_uniq",
         "unique(host, scheme, forwarded_host, forwarded_proto, forwarded_for, proxy_mode)",
         "One row per origin."),
    ]

    @api.model
    def _observe(self, key):
        """Count one request of origin *key*; write when it is new or its hits are due."""
        now = time.monotonic()
        with _lock:
            entry = _seen.get(key)
            if entry is None:
                if len(_seen) >= 4 * MAX_ORIGINS:
                    return  # a flood of invented hosts: not worth remembering
                entry = _seen[key] = [0, None]
            entry[0] += 1
            if entry[1] is not None and now - entry[1] < FLUSH_SECONDS:
                return
            hits, entry[0], entry[1] = entry[0], 0, now
        with self.env.registry.cursor() as cr:
            self._write_origin(cr, key, hits)

    @api.model
    def _write_origin(self, cr, key, hits):
        host, scheme, forwarded_host, forwarded_proto, forwarded_for, proxy_mode = key
        now = "(now() AT TIME ZONE 'UTC')"
        cr.execute(f"""
            UPDATE auto_heal_http_origin
               SET hits = hits + %s, last_seen = {now}, write_date = {now}
             WHERE host = %s AND scheme = %s AND forwarded_host = %s
               AND forwarded_proto = %s AND forwarded_for = %s AND proxy_mode = %s""",
                   (hits, *key))
        if cr.rowcount:
            return
        cr.execute(f"""
            INSERT INTO auto_heal_http_origin
                   (host, scheme, forwarded_host, forwarded_proto, forwarded_for, proxy_mode,
                    hits, first_seen, last_seen, create_uid, create_date, write_uid,
                    write_date)
            SELECT %s, %s, %s, %s, %s, %s, %s, {now}, {now}, 1, {now}, 1, {now}
             WHERE (SELECT count(*) FROM auto_heal_http_origin) < %s
            ON CONFLICT (host, scheme, forwarded_host, forwarded_proto, forwarded_for,
                         proxy_mode)
            DO UPDATE SET hits = auto_heal_http_origin.hits + EXCLUDED.hits,
                          last_seen = EXCLUDED.last_seen, write_date = EXCLUDED.write_date""",
                   (host, scheme, forwarded_host, forwarded_proto, forwarded_for, proxy_mode,
                    hits, MAX_ORIGINS))

    @api.model
    def _prune(self):
        """Forget origins not seen for :data:`KEEP_DAYS` days (the database scan calls it)."""
        self.env.cr.execute(
            "DELETE FROM auto_heal_http_origin WHERE last_seen < (now() AT TIME ZONE 'UTC') "
            "- %s * interval '1 day'", (KEEP_DAYS,))


def observe_request(request):
    """Note where *request* came from; never raises (called for every request)."""
    try:
        from odoo.tools import config

        httprequest = request.httprequest
        key = origin_key(httprequest.host, httprequest.scheme, httprequest.headers,
                         config.get("proxy_mode"))
        if key is None or "auto_heal.http.origin" not in request.env.registry:
            return
        request.env["auto_heal.http.origin"]._observe(key)
    except Exception:  # noqa: BLE001 - a request must never fail for a statistic
        _logger.debug("auto_heal: could not note the request's origin", exc_info=True)


class IrHttp(models.AbstractModel):
    _inherit = "ir.http"

    @classmethod
    def _pre_dispatch(cls, rule, args):
        result = super()._pre_dispatch(rule, args)
        from odoo.http import request

        observe_request(request)
        return result
