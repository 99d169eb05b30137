"""A tiny stand-in for Odoo's ``/jsonrpc`` endpoint, run as its own process.

It speaks the contract ``bin/auto-heal run-approved`` relies on, and nothing
more: ``GET /web/health``, ``common.authenticate`` (an API key as the password) and
``object.execute_kw`` on ``auto_heal.fix.run`` with ``watchdog_claim(host)``
and ``watchdog_report(id, record)``. Its whole state is one JSON file that
the test writes first and reads afterwards::

    {"db": "prod", "login": "watchdog", "key": "...", "uid": 7, "mode": "ok",
     "runs": [{"id": 1, "state": "approved", "action": "...", "params": {...},
               "incident": "fp"}]}

A run may also set what a claim carries of its approval (``target_host``,
``plan_hash``, ``host_plan_hash``, ``plan_only``).

``mode`` makes it fail the ways a real server fails: ``http500`` (an HTML
error page with status 500), ``not_json``, ``rpc_error`` (an AccessError in
the JSON-RPC error object, as Odoo sends it), ``report_error`` (only
``watchdog_report`` fails).

``auto_heal.handover.watchdog_handover(entries)`` stores each entry id once
(``stored``, ``received`` counts every delivery) and answers ``{"stored",
"ignored"}``; ``handover_delay`` seconds delay its answer *after* the state
was saved, so a test can kill the watchdog between Odoo's commit and the
watchdog's acknowledgement.

Usage: ``python fake_odoo_rpc.py STATE.json`` prints the port, then serves.
"""

import json
import os
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MODEL = "auto_heal.fix.run"
HANDOVER = "auto_heal.handover"
#: run record state -> fix run state, as the addon maps them (a stale run waits for a
#: new approval; a planned one, of a plan-only claim, waits for its plan's approval)
STATES = {"done": "done", "noop": "done", "rolled_back": "rolled_back", "stale": "stale",
          "planned": "pending"}
#: What a claim carries of the approval, when the test's run sets it.
CLAIM_APPROVAL = ("target_host", "plan_hash", "host_plan_hash", "plan_only")


class Fault(Exception):
    def __init__(self, name, message):
        super().__init__(message)
        self.name = name
        self.message = message


def _dispatch(state, service, method, args):
    if service == "common" and method == "version":
        return {"server_version": "18.0", "protocol_version": 1}
    if service == "common" and method == "authenticate":
        db, login, key = args[0], args[1], args[2]
        if db != state["db"]:
            raise Fault("psycopg2.OperationalError",
                        f'connection to server failed: FATAL:  database "{db}" does not exist')
        return state["uid"] if (login, key) == (state["login"], state["key"]) else False
    if service != "object" or method != "execute_kw":
        raise Fault("builtins.NameError", f"{service}.{method} is not a known method")
    db, uid, key, model, name, margs = args[:6]
    if (db, uid, key) != (state["db"], state["uid"], state["key"]):
        raise Fault("odoo.exceptions.AccessDenied", "Access Denied")
    if state.get("mode") == "rpc_error":
        raise Fault("odoo.exceptions.AccessError",
                    "You are not allowed to access 'Fix Run' (auto_heal.fix.run) records.")
    if model == HANDOVER:
        return _handover(state, name, margs)
    if model != MODEL:
        raise Fault("builtins.KeyError", model)
    if name == "watchdog_claim":
        host = margs[0]
        claimed = []
        for run in state["runs"]:
            if run["state"] == "approved":
                run.update(state="running", host=host)
                claim = {k: run.get(k) for k in ("id", "action", "params", "incident")}
                claim.update({k: run[k] for k in CLAIM_APPROVAL if k in run})
                claimed.append(claim)
        return claimed
    if name == "watchdog_report":
        if state.get("mode") == "report_error":
            raise Fault("odoo.exceptions.ValidationError", "the run is not running")
        run_id, record = margs
        for run in state["runs"]:
            if run["id"] == run_id:
                run["state"] = STATES.get(record.get("state"), "failed")
                run["record"] = record
                return True
        raise Fault("odoo.exceptions.MissingError", f"fix run {run_id} does not exist")
    raise Fault("builtins.AttributeError", f"type object '{MODEL}' has no attribute '{name}'")


def _handover(state, name, margs):
    """``auto_heal.handover``: each entry id is stored once, as the addon does."""
    if name == "watchdog_patterns":
        return state.get("patterns", [])
    if name != "watchdog_handover":
        raise Fault("builtins.AttributeError", f"type object '{HANDOVER}' has no attribute "
                                               f"'{name}'")
    received = state.setdefault("received", {})
    stored, ignored = [], []
    for entry in margs[0]:
        entry_id = entry["id"]
        received[entry_id] = received.get(entry_id, 0) + 1
        if received[entry_id] == 1:
            state.setdefault("stored", []).append(entry)
            stored.append(entry_id)
        else:
            ignored.append(entry_id)
    return {"stored": stored, "ignored": ignored}


def serve(state_path):
    lock = threading.Lock()

    def load():
        with open(state_path) as fh:
            return json.load(fh)

    def save(state):
        tmp = state_path + ".tmp"
        with open(tmp, "w") as fh:
            json.dump(state, fh, indent=1)
        os.replace(tmp, state_path)

    class Handler(BaseHTTPRequestHandler):
        def reply(self, code, data, content_type="application/json"):
            body = data if isinstance(data, bytes) else json.dumps(data).encode()
            self.send_response(code)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self):  # noqa: N802 - http.server's naming
            if self.path.split("?")[0] == "/web/health":
                return self.reply(200, {"status": "pass"})
            self.reply(404, b"<html>404 Not Found</html>", "text/html")

        def do_POST(self):  # noqa: N802 - http.server's naming
            length = int(self.headers.get("Content-Length") or 0)
            request = json.loads(self.rfile.read(length) or b"{}")
            with lock:
                state = load()
                params = request.get("params") or {}
                # never keep the arguments: they hold the API key
                state.setdefault("calls", []).append(
                    [self.path, params.get("service"), params.get("method"),
                     (params.get("args") or [None] * 5)[4] if params.get("method") ==
                     "execute_kw" else None])
                mode = state.get("mode", "ok")
                if self.path != "/jsonrpc":
                    save(state)
                    return self.reply(404, b"<html>404 Not Found</html>", "text/html")
                if mode == "http500":
                    save(state)
                    return self.reply(500, b"<html>Internal Server Error</html>", "text/html")
                if mode == "not_json":
                    save(state)
                    return self.reply(200, b"<html>Odoo is starting</html>", "text/html")
                try:
                    result = _dispatch(state, params.get("service"), params.get("method"),
                                       params.get("args") or [])
                    answer = {"jsonrpc": "2.0", "id": request.get("id"), "result": result}
                except Fault as fault:
                    answer = {"jsonrpc": "2.0", "id": request.get("id"), "error": {
                        "code": 200, "message": "Odoo Server Error",
                        "data": {"name": fault.name, "message": fault.message,
                                 "arguments": [fault.message], "context": {},
                                 "debug": "Traceback (most recent call last):\n..."}}}
                save(state)
                delay = state.get("handover_delay", 0) if (params.get("args") or [None] * 5)[
                    4:5] == ["watchdog_handover"] else 0
            if delay:  # Odoo stored the batch; the answer is late (the watchdog may die now)
                import time

                time.sleep(delay)
            self.reply(200, answer)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    print(server.server_address[1], flush=True)
    server.serve_forever()


if __name__ == "__main__":
    serve(sys.argv[1])
