"""Write real Odoo 18 logs of failures for the corpus, one log per scenario.

    .venv/bin/python tests/corpus/scripts/odoo18_failures.py OUTDIR [database|extra|pool]

It uses the fixture modules of tests/samples/fixtures/addons (see its
README.md) on a private PostgreSQL cluster:

* ``install-<module>.log``: ``-i <module> --stop-after-init`` for modules that
  cannot install on 18 (a cron with numbercall/doall, a <tree> view, a tree
  view mode, attrs, a broken xpath);
* ``server.log``: a prefork server (one worker, low memory limits, one cron
  worker) that gets wrong passwords, a request that allocates memory past the
  soft and the hard limit, and a buggy cron that has failed 4 times over 8
  days (so its next failure deactivates it);
* ``port.stderr.log``: a second server on the port of the first.

With ``database``, it runs the database failures instead (``database.log``): a
threaded server with tests/samples/fixtures/scripts/concurrency.py racing it
(serialization failure, deadlock, NOWAIT lock), and an attachment whose file
is deleted from the filestore before it is read.

With ``extra`` (``extra.log``, ``extra-port.stderr.log``): a module left
'to install' (the startup check and the cron worker skip the database), views
and a cron created through RPC with <tree>, attrs and numbercall, one more
deadlock race, and a second prefork server on the port of the first.

With ``pool`` (``pool.log``, ``pool-role.log``, ``pool-update.log``): four
slow requests at once on a server with ``--db_maxconn 2``, a second server
while the database role is limited to one connection, and ``-u`` of the
legacy cron module installed first without its numbercall/doall lines.

Every line is Odoo's own; nothing is edited.
"""

import json
import os
import subprocess
import sys
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))))
sys.path.insert(0, ROOT)

from tools.odoo_env import find_odoo, odoo_addons_path, odoo_db_args, odoo_db_env  # noqa: E402
from tools.pgcluster import PgCluster  # noqa: E402
from tools.proc import free_port  # noqa: E402

FIXTURES = os.path.join(ROOT, "tests", "samples", "fixtures", "addons")
BROKEN = ("ah_fx_cron_doall", "ah_fx_cron_legacy", "ah_fx_view_tree", "ah_fx_view_tree_action",
          "ah_fx_view_attrs", "ah_fx_view_xpath")
DB = "fail18"


def post(url, payload):
    request = urllib.request.Request(url, data=json.dumps(payload).encode(),
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            return json.load(response)
    except OSError as exc:
        return {"error": str(exc)}


def rpc(base, *args, password="admin"):
    return post(base + "/jsonrpc", {"jsonrpc": "2.0", "method": "call", "id": 1, "params": {
        "service": "object", "method": "execute_kw", "args": [DB, 2, password, *args]}})


def wait_up(base):
    for _ in range(180):
        try:
            urllib.request.urlopen(base + "/web/health", timeout=5)
            return
        except OSError:
            time.sleep(1)


def main(out):
    os.makedirs(out, exist_ok=True)
    odoo = find_odoo()
    if odoo is None:
        sys.exit("error: no Odoo 18 found (odoo on PATH or ODOO_BIN)")
    addons = odoo_addons_path(odoo) + "," + FIXTURES
    with PgCluster() as pg:
        env = odoo_db_env(pg)
        common = [odoo, *odoo_db_args(pg), f"--addons-path={addons}", "-d", DB,
                  "--without-demo=all"]
        subprocess.run(common + ["-i", "base,web,ah_fx_concurrency,ah_fx_cron_fail",
                                 "--stop-after-init", f"--logfile={out}/init.log"],
                       env=env, check=True, stdin=subprocess.DEVNULL)
        for module in BROKEN:
            subprocess.run(common + ["-i", module, "--stop-after-init",
                                     f"--logfile={out}/install-{module}.log"],
                           env=env, stdin=subprocess.DEVNULL)
        pg.psql("UPDATE ir_cron SET failure_count = 4, first_failure_date = "
                "now() - interval '8 days', nextcall = now() WHERE id = (SELECT res_id FROM "
                "ir_model_data WHERE module = 'ah_fx_cron_fail' AND name = 'ir_cron_zero_div')",
                dbname=DB)
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        server = subprocess.Popen(
            common + [f"--http-port={port}", f"--gevent-port={free_port()}", "--workers=1",
                      "--max-cron-threads=1", "--limit-memory-soft=600000000",
                      "--limit-memory-hard=1500000000", f"--logfile={out}/server.log"],
            env=env, stdin=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_up(base)
            for _ in range(3):
                post(base + "/web/session/authenticate", {"jsonrpc": "2.0", "method": "call",
                     "params": {"db": DB, "login": "admin", "password": "not-the-password"}})
            rpc(base, "res.partner", "ah_fx_allocate", [400], {"keep": True})
            rpc(base, "res.partner", "ah_fx_allocate", [1600])
            pg.psql(f"NOTIFY cron_trigger, '{DB}'")
            with open(f"{out}/port.stderr.log", "wb") as stderr:
                second = subprocess.Popen(
                    [odoo, *odoo_db_args(pg), f"--http-port={port}",
                     f"--gevent-port={free_port()}"],
                    env=env, stdin=subprocess.DEVNULL, stdout=stderr, stderr=stderr)
                try:
                    second.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    second.terminate()
                    second.wait(timeout=30)
            time.sleep(75)  # the cron worker wakes at least once a minute
        finally:
            server.terminate()
            server.wait(timeout=60)


def database(out):
    os.makedirs(out, exist_ok=True)
    odoo = find_odoo()
    if odoo is None:
        sys.exit("error: no Odoo 18 found (odoo on PATH or ODOO_BIN)")
    addons = odoo_addons_path(odoo) + "," + FIXTURES
    scripts = os.path.join(ROOT, "tests", "samples", "fixtures", "scripts")
    data_dir = os.path.join(out, "data")
    with PgCluster() as pg:
        env = odoo_db_env(pg)
        common = [odoo, *odoo_db_args(pg), f"--addons-path={addons}", "-d", DB,
                  "--without-demo=all", f"--data-dir={data_dir}"]
        subprocess.run(common + ["-i", "base,web,ah_fx_concurrency", "--stop-after-init",
                                 f"--logfile={out}/database-init.log"],
                       env=env, check=True, stdin=subprocess.DEVNULL)
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        server = subprocess.Popen(
            common + [f"--http-port={port}", "--workers=0", "--max-cron-threads=0",
                      f"--logfile={out}/database.log"],
            env=env, stdin=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_up(base)
            dsn = pg.dsn_for(DB)
            for race in ("serialization", "deadlock", "nowait"):
                subprocess.run([sys.executable, os.path.join(scripts, "concurrency.py"), race,
                                base, DB, dsn], stdin=subprocess.DEVNULL, timeout=300)
            created = subprocess.run(
                [sys.executable, os.path.join(scripts, "rpc_create_attachment.py"), base, DB],
                capture_output=True, text=True, timeout=120)
            attachment = int(created.stdout.strip().splitlines()[-1])
            fname = pg.psql(f"SELECT store_fname FROM ir_attachment WHERE id = {attachment}",
                            dbname=DB)
            os.unlink(os.path.join(data_dir, "filestore", DB, fname))
            subprocess.run([sys.executable, os.path.join(scripts, "rpc_read_attachment.py"),
                            base, DB, str(attachment)], timeout=120)
        finally:
            server.terminate()
            server.wait(timeout=60)


def extra(out):
    os.makedirs(out, exist_ok=True)
    odoo = find_odoo()
    if odoo is None:
        sys.exit("error: no Odoo 18 found (odoo on PATH or ODOO_BIN)")
    addons = odoo_addons_path(odoo) + "," + FIXTURES
    scripts = os.path.join(ROOT, "tests", "samples", "fixtures", "scripts")
    with PgCluster() as pg:
        env = odoo_db_env(pg)
        common = [odoo, *odoo_db_args(pg), f"--addons-path={addons}", "-d", DB,
                  "--without-demo=all"]
        subprocess.run(common + ["-i", "base,web,ah_fx_concurrency", "--stop-after-init",
                                 f"--logfile={out}/extra-init.log"],
                       env=env, check=True, stdin=subprocess.DEVNULL)
        pg.psql("UPDATE ir_module_module SET state = 'to install' WHERE name = 'contacts'",
                dbname=DB)
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        server = subprocess.Popen(
            common + [f"--http-port={port}", f"--gevent-port={free_port()}", "--workers=2",
                      "--max-cron-threads=1", f"--logfile={out}/extra.log"],
            env=env, stdin=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_up(base)
            pg.psql(f"NOTIFY cron_trigger, '{DB}'")
            views = [("<tree><field name='name'/></tree>", "ah.noise.tree"),
                     ("<form><field name='name' attrs=\"{'invisible': [('id', '=', False)]}\"/>"
                      "</form>", "ah.noise.attrs")]
            for arch, name in views:
                rpc(base, "ir.ui.view", "create",
                    [{"name": name, "model": "res.partner", "arch": arch}])
            model = rpc(base, "ir.model", "search", [[["model", "=", "res.partner"]]])["result"]
            rpc(base, "ir.cron", "create", [{
                "name": "ah noise cron", "model_id": model[0], "state": "code",
                "code": "model.browse()", "numbercall": -1}])
            subprocess.run([sys.executable, os.path.join(scripts, "concurrency.py"), "deadlock",
                            base, DB, pg.dsn_for(DB)], stdin=subprocess.DEVNULL, timeout=300)
            with open(f"{out}/extra-port.stderr.log", "wb") as stderr:
                second = subprocess.Popen(
                    [odoo, *odoo_db_args(pg), f"--http-port={port}", "--workers=2",
                     f"--gevent-port={free_port()}"],
                    env=env, stdin=subprocess.DEVNULL, stdout=stderr, stderr=stderr)
                try:
                    second.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    second.terminate()
                    second.wait(timeout=30)
            time.sleep(70)  # the cron worker looks at the database at least once a minute
        finally:
            server.terminate()
            server.wait(timeout=60)


def pool(out):
    import shutil
    import threading

    os.makedirs(out, exist_ok=True)
    odoo = find_odoo()
    if odoo is None:
        sys.exit("error: no Odoo 18 found (odoo on PATH or ODOO_BIN)")
    legacy = os.path.join(out, "addons", "ah_fx_cron_legacy")
    shutil.rmtree(legacy, ignore_errors=True)
    shutil.copytree(os.path.join(FIXTURES, "ah_fx_cron_legacy"), legacy)
    for folder, _dirs, files in os.walk(legacy):
        for name in files:
            if name.endswith(".xml"):
                path = os.path.join(folder, name)
                with open(path, encoding="utf-8") as handle:
                    kept = [line for line in handle
                            if "numbercall" not in line and "doall" not in line]
                with open(path, "w", encoding="utf-8") as handle:
                    handle.writelines(kept)
    base_addons = odoo_addons_path(odoo)
    with PgCluster() as pg:
        env = odoo_db_env(pg)
        common = [odoo, *odoo_db_args(pg), "-d", DB, "--without-demo=all"]
        subprocess.run(common + [f"--addons-path={base_addons},{os.path.dirname(legacy)}",
                                 "-i", "base,web,ah_fx_cron_legacy", "--stop-after-init",
                                 f"--logfile={out}/pool-init.log"],
                       env=env, check=True, stdin=subprocess.DEVNULL)
        subprocess.run(common + [f"--addons-path={base_addons},{FIXTURES}",
                                 "-u", "ah_fx_cron_legacy", "--stop-after-init",
                                 f"--logfile={out}/pool-update.log"],
                       env=env, stdin=subprocess.DEVNULL)
        subprocess.run(common + [f"--addons-path={base_addons},{FIXTURES}",
                                 "-i", "ah_fx_concurrency", "--stop-after-init",
                                 f"--logfile={out}/pool-init2.log"],
                       env=env, check=True, stdin=subprocess.DEVNULL)
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        server = subprocess.Popen(
            common + [f"--addons-path={base_addons},{FIXTURES}", f"--http-port={port}",
                      "--workers=0", "--max-cron-threads=0", "--db_maxconn=2",
                      f"--logfile={out}/pool.log"],
            env=env, stdin=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_up(base)
            calls = [threading.Thread(target=rpc, args=(base, "res.partner", "ah_fx_sleep", [4]))
                     for _ in range(4)]
            for call in calls:
                call.start()
            for call in calls:
                call.join()
            pg.psql(f"ALTER ROLE {pg.user} CONNECTION LIMIT 1")
            with open(f"{out}/pool-role.stderr.log", "wb") as stderr:
                subprocess.run(common + [f"--addons-path={base_addons}", "--stop-after-init",
                                         f"--logfile={out}/pool-role.log"],
                               env=env, stdin=subprocess.DEVNULL, stdout=stderr, stderr=stderr,
                               timeout=120)
            pg.psql(f"ALTER ROLE {pg.user} CONNECTION LIMIT -1")
        finally:
            server.terminate()
            server.wait(timeout=60)


if __name__ == "__main__":
    if sys.argv[2:3] == ["pool"]:
        pool(os.path.abspath(sys.argv[1]))
    elif sys.argv[2:3] == ["extra"]:
        extra(os.path.abspath(sys.argv[1]))
    elif sys.argv[2:3] == ["database"]:
        database(os.path.abspath(sys.argv[1]))
    else:
        main(os.path.abspath(sys.argv[1]))
