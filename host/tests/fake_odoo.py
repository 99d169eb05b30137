"""A stand-in for an Odoo server process in the watchdog's fault-injection tests.

A real process with a real HTTP server that answers what the watchdog probes:

    GET /web/health                      200 {"status": "pass"}
    GET /web/health?db_server_status=1   200 when --dsn connects (SELECT 1), else 500

Like Odoo it reads its config file at start (``--config``): a file that does
not parse, or that sets ``fake_refuse = 1``, makes it print a traceback on
stderr and exit 1 at once, before it serves. ``--mode-file`` holds the mode
read at each start: ``healthy`` (default), ``crash`` (exit 1 at once),
``slow:SECONDS`` (log lines for SECONDS, then serve: loading modules) or
``silent:SECONDS`` (nothing for SECONDS, then serve: stuck before serving).
``--starts`` gets one JSON line per start (pid, time, mode), so a test counts
restarts exactly.

``--daemon`` forks into the background (its own session) and returns at once,
like ``systemctl start``: the watchdog's ``restart via command`` argv. SIGTERM
stops it (exit 0); SIGSTOP makes it hang (the kernel still accepts connections,
nothing answers): a hung Odoo.
"""

import argparse
import configparser
import datetime
import json
import os
import signal
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit


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


def make_handler(dsn):
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server's name
            parts = urlsplit(self.path)
            if parts.path != "/web/health":
                self.send_response(404)
                self.end_headers()
                return
            status, body = 200, {"status": "pass"}
            if parse_qs(parts.query).get("db_server_status"):
                ok = db_ok(dsn)
                body["db_server_status"] = ok
                if not ok:
                    status, body["status"] = 500, "fail"
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

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
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--pidfile")
    parser.add_argument("--starts")
    parser.add_argument("--mode-file")
    parser.add_argument("--config")
    parser.add_argument("--dsn")
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

    mode = read_mode(args.mode_file)
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
    server = ThreadingHTTPServer(("127.0.0.1", args.port), make_handler(args.dsn))
    server.daemon_threads = True
    log_line(args.log, "INFO", f"HTTP service (werkzeug) running on 127.0.0.1:{args.port}")
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
