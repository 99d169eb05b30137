"""The one stand-in for an Odoo server in the tests: a real process with a real HTTP
server, run as ``python tools/fake_odoo.py [options]`` (:data:`SCRIPT`).

It answers what the watchdog and ``health`` probe::

    GET /web/health                      200 {"status": "pass"}
    GET /web/health?db_server_status=1   200, or 500 {"status": "fail"} when the
                                         database is down: --db-status up|down,
                                         else whether --dsn connects (SELECT 1)

``--port 0`` (the default) binds a free port and prints it on stdout, first.

**Like an Odoo process** (the watchdog's fault-injection tests): it reads its
config file at start (``--config``): a file that does not parse, or that sets
``fake_refuse = 1``, makes it print a traceback on stderr and exit 1 at once,
before it serves. ``--mode`` (or ``--mode-file``, read at each start) is
``healthy`` (default), ``crash`` (exit 1 at once), ``slow:SECONDS`` (log lines
for SECONDS, then serve: loading modules) or ``silent:SECONDS`` (nothing for
SECONDS, then serve: stuck before serving). ``--starts`` gets one JSON line per
start (pid, time, mode), so a test counts restarts exactly. ``--daemon`` forks
into the background (its own session) and returns at once, like ``systemctl
start``: the watchdog's ``restart via command`` argv. SIGTERM stops it (exit
0); SIGSTOP makes it hang (the kernel still accepts connections, nothing
answers): a hung Odoo.

**Like Odoo's** ``/jsonrpc`` (``--rpc STATE.json``): the contract ``bin/auto-heal
run-approved`` and the hand-over rely on, and nothing more:
``common.authenticate`` (an API key as the password) and ``object.execute_kw`` on
``auto_heal.fix.run`` with ``watchdog_claim(host)`` and ``watchdog_report(id,
record)``. Its whole state is one JSON file that the test writes first and reads
afterwards::

    {"db": "prod", "login": "watchdog", "key": "...", "uid": 7, "mode": "ok",
     "runs": [{"id": 1, "state": "approved", "action": "...", "params": {...},
               "incident": "fp"}]}

A run may also set what a claim carries of its approval (``target_host``,
``plan_hash``, ``host_plan_hash``, ``plan_only``). ``mode`` makes it fail the
ways a real server fails: ``http500`` (an HTML error page with status 500),
``not_json``, ``rpc_error`` (an AccessError in the JSON-RPC error object, as Odoo
sends it), ``report_error`` (only ``watchdog_report`` fails).
``auto_heal.handover.watchdog_handover(entries)`` stores each entry id once
(``stored``, ``received`` counts every delivery) and answers ``{"stored",
"ignored"}``; ``handover_delay`` seconds delay its answer *after* the state was
saved, so a test can kill the watchdog between Odoo's commit and the watchdog's
acknowledgement.

The standard library only (psycopg2 for --dsn): it runs with any python3.
"""

import argparse
import configparser
import datetime
import json
import os
import signal
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

SCRIPT = os.path.abspath(__file__)


def start(*args):
    """``(process, url)`` of a fake Odoo on a free port (the caller terminates it)."""
    proc = subprocess.Popen([sys.executable, SCRIPT, "--port", "0", *map(str, args)],
                            stdout=subprocess.PIPE, text=True)
    return proc, "http://127.0.0.1:%s" % proc.stdout.readline().strip()


def log_line(path, level, message):
    if not path:
        return
    now = datetime.datetime.now(datetime.timezone.utc)
    stamp = now.strftime("%Y-%m-%d %H:%M:%S,") + "%03d" % (now.microsecond // 1000)
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(f"{stamp} {os.getpid()} {level} ? odoo.service.server: {message}\n")


def db_ok(dsn):
    if not dsn:
        return True
    try:
        import psycopg2

        conn = psycopg2.connect(dsn, connect_timeout=2)
        try:
            with conn.cursor() as cr:
                cr.execute("SELECT 1")
        finally:
            conn.close()
        return True
    except Exception:  # noqa: BLE001 - any failure is "no database"
        return False


# --------------------------------------------------------------------------
# /jsonrpc

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


# --------------------------------------------------------------------------
# the server


class RPCState:
    """The JSON file of --rpc, read and written under a lock for each call."""

    def __init__(self, path):
        self.path = path
        self.lock = threading.Lock()

    def load(self):
        with open(self.path) as fh:
            return json.load(fh)

    def save(self, state):
        tmp = self.path + ".tmp"
        with open(tmp, "w") as fh:
            json.dump(state, fh, indent=1)
        os.replace(tmp, self.path)


def make_handler(db_up, rpc=None):
    """The request handler: *db_up()* says whether the database answers; *rpc*, an
    :class:`RPCState`, serves /jsonrpc."""

    class Handler(BaseHTTPRequestHandler):
        def reply(self, code, data, content_type="application/json"):
            body = data if isinstance(data, bytes) else json.dumps(data).encode()
            self.send_response(code)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self):  # noqa: N802 - http.server's name
            parts = urlsplit(self.path)
            if parts.path != "/web/health":
                return self.reply(404, b"<html>404 Not Found</html>", "text/html")
            status, body = 200, {"status": "pass"}
            if parse_qs(parts.query).get("db_server_status"):
                ok = db_up()
                body["db_server_status"] = ok
                if not ok:
                    status, body["status"] = 500, "fail"
            self.reply(status, body)

        def do_POST(self):  # noqa: N802 - http.server's name
            if rpc is None:
                return self.reply(404, b"<html>404 Not Found</html>", "text/html")
            length = int(self.headers.get("Content-Length") or 0)
            request = json.loads(self.rfile.read(length) or b"{}")
            with rpc.lock:
                state = rpc.load()
                params = request.get("params") or {}
                # never keep the arguments: they hold the API key
                state.setdefault("calls", []).append(
                    [self.path, params.get("service"), params.get("method"),
                     (params.get("args") or [None] * 5)[4] if params.get("method") ==
                     "execute_kw" else None])
                mode = state.get("mode", "ok")
                if self.path != "/jsonrpc":
                    rpc.save(state)
                    return self.reply(404, b"<html>404 Not Found</html>", "text/html")
                if mode == "http500":
                    rpc.save(state)
                    return self.reply(500, b"<html>Internal Server Error</html>", "text/html")
                if mode == "not_json":
                    rpc.save(state)
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
                rpc.save(state)
                delay = state.get("handover_delay", 0) if (params.get("args") or [None] * 5)[
                    4:5] == ["watchdog_handover"] else 0
            if delay:  # Odoo stored the batch; the answer is late (the watchdog may die now)
                time.sleep(delay)
            self.reply(200, answer)

        def log_message(self, *args):
            pass

    return Handler


def read_mode(path):
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read().strip() or "healthy"
    except (OSError, TypeError):
        return "healthy"


def main(argv=None):
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=0,
                        help="0 (the default): a free port, printed on stdout")
    parser.add_argument("--pidfile")
    parser.add_argument("--starts")
    parser.add_argument("--mode-file")
    parser.add_argument("--mode", help="the mode, instead of --mode-file")
    parser.add_argument("--config")
    parser.add_argument("--dsn")
    parser.add_argument("--db-status", choices=("up", "down"),
                        help="what db_server_status answers (default: whether --dsn connects)")
    parser.add_argument("--rpc", metavar="STATE.json", help="serve /jsonrpc over this state")
    parser.add_argument("--log")
    parser.add_argument("--stderr")
    parser.add_argument("--daemon", action="store_true")
    args = parser.parse_args(argv)

    if args.daemon:
        if os.fork():
            return 0  # like systemctl start: the service goes on in the background
        os.setsid()
        null = os.open(os.devnull, os.O_RDWR)
        err = os.open(args.stderr, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644) \
            if args.stderr else null
        os.dup2(null, 0)
        os.dup2(null, 1)
        os.dup2(err, 2)

    mode = args.mode or read_mode(args.mode_file)
    if args.starts:
        with open(args.starts, "a", encoding="utf-8") as handle:
            handle.write(json.dumps({"pid": os.getpid(), "time": time.time(), "mode": mode})
                         + "\n")
    if args.pidfile:
        with open(args.pidfile + ".tmp", "w") as handle:
            handle.write(f"{os.getpid()}\n")
        os.replace(args.pidfile + ".tmp", args.pidfile)
    signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))
    log_line(args.log, "INFO", f"Odoo version 18.0 (fake, mode {mode})")

    if args.config:
        parser_ = configparser.RawConfigParser()
        try:
            parser_.read_string(open(args.config, encoding="utf-8").read(), args.config)
            if not parser_.has_section("options"):
                raise configparser.Error("no [options] section")
        except (OSError, configparser.Error) as exc:
            sys.stderr.write("Traceback (most recent call last):\n  File odoo-bin\n"
                             f"{type(exc).__name__}: {exc}\n")
            return 1
        if parser_.get("options", "fake_refuse", fallback="0") == "1":
            sys.stderr.write("odoo: error: the config is refused (fake_refuse = 1)\n")
            return 1
    if mode == "crash":
        log_line(args.log, "CRITICAL", "Failed to initialize database `fake`.")
        return 1
    if mode.startswith(("slow:", "silent:")):
        deadline = time.time() + float(mode.split(":", 1)[1])
        while time.time() < deadline:
            if mode.startswith("slow:"):
                log_line(args.log, "INFO", "loading modules ...")
            time.sleep(0.2)
    if args.db_status:
        up = args.db_status == "up"

        def db_up():
            return up
    else:
        def db_up():
            return db_ok(args.dsn)
    rpc = RPCState(args.rpc) if args.rpc else None
    server = ThreadingHTTPServer(("127.0.0.1", args.port), make_handler(db_up, rpc))
    server.daemon_threads = True
    if not args.port:
        print(server.server_address[1], flush=True)
    port = server.server_address[1]
    log_line(args.log, "INFO", f"HTTP service (werkzeug) running on 127.0.0.1:{port}")
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
