"""``GET /auto_heal/health``: the health report as JSON, for monitoring.

* A token from Settings (``auto_heal.health_token``, made on install) is
  required, as ``?token=`` or in the ``X-Auto-Heal-Token`` header (better:
  a query string lands in access logs), compared in constant time. Without
  it, or with a wrong one: 403 and no detail.
* 200 when the report is ok or warning, 503 when it is critical.
* No session: ``auth="none"``, ``save_session=False``; no cookie is set and
  nothing is written to the session store.
* Only the request's own database: the one Odoo chose for this request (the
  single database the db filter gives for this host, or ``db_name``), whose
  registry Odoo loaded to route the request at all. ``?db=`` naming any other
  database is a 403, like a wrong token: the endpoint never lists databases,
  never loads another database's registry, and never tells whether one exists,
  whoever asks. (An endpoint that took ``?db=`` would have to open a registry,
  or list the databases, before it could check that database's token.) A
  server with several databases gives each its own host name in the db
  filter (``%d``/``%h``), so each monitoring URL reaches its database.

Odoo's own ``/web/health`` is left as it is.
"""

import hmac
import json
import logging

from odoo import http
from odoo.http import request

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


class AutoHealHealthController(http.Controller):
    @http.route("/auto_heal/health", type="http", auth="none", methods=["GET"], csrf=False,
                save_session=False, readonly=True)
    def auto_heal_health(self, token=None, db=None, **kwargs):
        given = request.httprequest.headers.get(TOKEN_HEADER) or token
        # the token first, and only against this request's database: nothing else
        # is opened, listed or computed for a caller without it
        if not given or not request.db or (db and db != request.db):
            return _forbidden()
        if not _token_ok(request.env, given):
            return _forbidden()
        # sudo: the token holder may read the health figures (counts, ages, states);
        # nothing else is returned.
        report = request.env["auto_heal.health"].sudo()._report()
        status = 503 if report["status"] == "critical" else 200
        return request.make_response(json.dumps(report, default=str), HEADERS, status=status)
