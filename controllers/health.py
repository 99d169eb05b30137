"""``GET /auto_heal/health``: the health report as JSON, for monitoring.

* A token from Settings (``auto_heal.health_token``, made on install) is
  required, as ``?token=`` or in the ``X-Auto-Heal-Token`` header (better:
  a query string lands in access logs), compared in constant time. Without
  it, or with a wrong one: 403 and no detail.
* 200 when the report is ok or warning, 503 when it is critical.
* No session: ``auth="none"``, ``save_session=False``; no cookie is set and
  nothing is written to the session store.
* The database is the request's (a single database, or the one the db
  filter gives); ``?db=`` picks another one the db filter allows.

Odoo's own ``/web/health`` is left as it is.
"""

import hmac
import json
import logging

from odoo import SUPERUSER_ID, api, http
from odoo.http import request
from odoo.modules.registry import Registry

_logger = logging.getLogger(__name__)

TOKEN_PARAM = "auto_heal.health_token"
TOKEN_HEADER = "X-Auto-Heal-Token"
HEADERS = [("Content-Type", "application/json"), ("Cache-Control", "no-store")]


def _forbidden():
    return request.make_response(json.dumps({"status": "forbidden"}), HEADERS, status=403)


def _token_ok(env, given):
    # sudo: auth="none" has no user; the token is the caller's credential, so it is
    # read (never returned) to compare it.
    expected = env["ir.config_parameter"].sudo().get_param(TOKEN_PARAM) or ""
    if not expected or not given:
        return False
    return hmac.compare_digest(expected.encode("utf-8"), str(given).encode("utf-8"))


def _report(env, given):
    if not _token_ok(env, given):
        return None
    # sudo: the token holder may read the health figures (counts, ages, states);
    # nothing else is returned.
    return env["auto_heal.health"].sudo()._report()


class AutoHealHealthController(http.Controller):
    @http.route("/auto_heal/health", type="http", auth="none", methods=["GET"], csrf=False,
                save_session=False, readonly=True)
    def auto_heal_health(self, token=None, db=None, **kwargs):
        given = request.httprequest.headers.get(TOKEN_HEADER) or token
        if not given:
            return _forbidden()
        if db and db != request.db:
            report = self._report_other_db(db, given)
        elif request.db:
            report = _report(request.env, given)
        else:
            report = None
        if report is None:
            return _forbidden()
        status = 503 if report["status"] == "critical" else 200
        return request.make_response(json.dumps(report, default=str), HEADERS, status=status)

    def _report_other_db(self, db, given):
        """The report of *db*, when the db filter shows it to this host; None otherwise."""
        if db not in http.db_list(force=True):
            return None
        try:
            registry = Registry(db)
            with registry.cursor(readonly=True) as cr:
                env = api.Environment(cr, SUPERUSER_ID, {})
                if "auto_heal.health" not in env:
                    return None
                return _report(env, given)
        except Exception as exc:  # noqa: BLE001 - an unusable database: no detail out
            _logger.warning("auto_heal: health of database %s: %s", db, exc)
            return None
