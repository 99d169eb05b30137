"""Write a real Odoo 18 log of a healthy server: the source of the corpus's
``odoo18-noise`` entries (INFO and WARNING lines that are not failures).

    .venv/bin/python tests/corpus/scripts/odoo18_noise.py OUT.log [MODULES [WORKERS [LANGS]]]

(defaults: ``base,web,mail,contacts`` and 2 workers; 0 workers is the
threaded server. LANGS, such as ``fr_FR,es_ES``, loads those languages and repeats the
RPC calls in each, as admin and as a portal user, so that the user errors and access
denials Odoo logs come in those languages too.)

It starts a private PostgreSQL cluster, installs base, web, mail and contacts
on a fresh database, then runs the server in prefork mode (two workers), asks
for a few pages and lets the crons run for a minute before stopping it with
SIGTERM. On the way it makes the benign warnings an admin sees every day: an
unknown module name given to ``-u``, RPC calls that end in a user error or a
missing record, a form posted without its CSRF token, ``--dev=reload`` without
the watchdog package. Nothing is faked: every line is Odoo's own.
"""

import json
import os
import subprocess
import sys
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))))

from tools.odoo_env import find_odoo, odoo_db_args, odoo_db_env  # noqa: E402
from tools.pgcluster import PgCluster  # noqa: E402
from tools.proc import free_port  # noqa: E402


def rpc(base, args, uid=2, password="admin"):
    """One ``execute_kw``; the error it may raise is the point."""
    body = json.dumps({"jsonrpc": "2.0", "method": "call", "id": 1, "params": {
        "service": "object", "method": "execute_kw",
        "args": ["noise18", uid, password, *args]}}).encode()
    request = urllib.request.Request(base + "/jsonrpc", data=body,
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.load(response)


def translated_calls(base, langs):
    """User errors and access denials in each language of *langs*."""
    group = rpc(base, ["ir.model.data", "search_read",
                       [[["module", "=", "base"], ["name", "=", "group_portal"]]],
                       {"fields": ["res_id"]}])["result"][0]["res_id"]
    portal = rpc(base, ["res.users", "create", [{
        "name": "Portal Noise", "login": "portal_noise", "password": "portal-noise-1",
        "groups_id": [[6, 0, [group]]]}]])["result"]
    for lang in langs:
        context = {"context": {"lang": lang}}
        rpc(base, ["res.users", "unlink", [[2]], context])
        rpc(base, ["ir.config_parameter", "search_read", [[]], context],
            uid=portal, password="portal-noise-1")
        rpc(base, ["res.users", "write", [[2], {"name": "x"}], context],
            uid=portal, password="portal-noise-1")


def main(out, modules="base,web,mail,contacts", workers="2", langs=""):
    odoo = find_odoo()
    if odoo is None:
        sys.exit("error: no Odoo 18 found (odoo on PATH or ODOO_BIN)")
    with PgCluster() as pg:
        env = odoo_db_env(pg)
        common = [odoo, *odoo_db_args(pg), "-d", "noise18", f"--logfile={out}",
                  "--without-demo=all"]
        load = [f"--load-language={langs}"] if langs else []
        subprocess.run(common + ["-i", modules, "--stop-after-init", *load],
                       env=env, check=True, stdin=subprocess.DEVNULL)
        subprocess.run(common + ["-u", "contacts,no_such_module_here", "--stop-after-init"],
                       env=env, check=True, stdin=subprocess.DEVNULL)
        port = free_port()
        server = subprocess.Popen(
            common + [f"--http-port={port}", f"--workers={workers}", "--max-cron-threads=1",
                      "--dev=reload", f"--gevent-port={free_port()}"],
            env=env, stdin=subprocess.DEVNULL)
        try:
            base = f"http://127.0.0.1:{port}"
            for _ in range(120):
                try:
                    urllib.request.urlopen(base + "/web/health", timeout=5)
                    break
                except OSError:
                    time.sleep(1)
            for path in ("/web/login", "/web/health", "/odoo", "/no/such/page",
                         "/web/database/selector", "/robots.txt", "/web/webclient/version_info"):
                try:
                    urllib.request.urlopen(base + path, timeout=30)
                except OSError:
                    pass
            for args in (["res.users", "unlink", [[2]]], ["res.partner", "read", [[999999]]],
                         ["res.partner", "search_count", [[]]]):
                rpc(base, args)
            if langs:
                translated_calls(base, langs.split(","))
            try:  # a login form posted without its CSRF token
                urllib.request.urlopen(base + "/web/login", data=b"login=a&password=b", timeout=30)
            except OSError:
                pass
            time.sleep(70)
        finally:
            server.terminate()
            server.wait(timeout=60)


if __name__ == "__main__":
    main(os.path.abspath(sys.argv[1]), *sys.argv[2:5])
