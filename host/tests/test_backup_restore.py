"""``backup --db`` on a real PostgreSQL (pg_dump, pg_restore --list, retention) and
``restore --config VERSION`` through the restore_config action, on real files."""

import json
import os
import stat
import subprocess

import pytest

from host.tests.conftest import run_auto_heal as run
from tools.testing import start_private_cluster


@pytest.fixture(scope="module")
def pg():
    cluster = start_private_cluster()
    cluster.psql("CREATE DATABASE ah_dump OWNER auto_heal")
    cluster.psql("CREATE TABLE t (id int primary key, name text); "
                 "INSERT INTO t VALUES (1, 'one'), (2, 'two')", dbname="ah_dump",
                 superuser=False)
    yield cluster
    cluster.stop()


def test_backup_db_dumps_lists_and_keeps_n(pg, tmp_path):
    dest = tmp_path / "dumps"
    kept = []
    for _ in range(3):
        result = run(["backup", "--db", "ah_dump", "--dsn", pg.dsn, "--dest", str(dest),
                      "--keep", "2", "--json", "--pg-dump", os.path.join(pg.bindir, "pg_dump"),
                      "--pg-restore", os.path.join(pg.bindir, "pg_restore")], tmp_path)
        assert result.returncode == 0, result.stderr
        kept.append(json.loads(result.stdout))
    assert pg.password not in result.stdout + result.stderr
    names = sorted(os.listdir(dest))
    assert names == sorted([os.path.basename(k["path"]) for k in kept[1:]] +
                           [os.path.basename(k["path"]) + ".json" for k in kept[1:]])
    dump = kept[-1]
    assert stat.S_IMODE(os.stat(dump["path"]).st_mode) == 0o600
    assert dump["entries"] >= 2 and dump["server"].startswith(str(pg.bindir.split("/")[-2]))
    listing = subprocess.run([os.path.join(pg.bindir, "pg_restore"), "--list", dump["path"]],
                             capture_output=True, text=True, check=True).stdout
    assert "TABLE public t auto_heal" in listing and "TABLE DATA public t" in listing
    meta = json.loads(open(dump["path"] + ".json").read())
    assert meta["sha256"] == dump["sha256"] and meta["database"] == "ah_dump"
    audit = [json.loads(line) for line in open(tmp_path / "audit.jsonl")]
    assert [a["result"] for a in audit if a["action"] == "backup-db"] == ["created"] * 3
    assert pg.password not in open(tmp_path / "audit.jsonl").read()


def test_a_dump_that_does_not_list_is_deleted_and_the_backup_fails(pg, tmp_path):
    bogus = tmp_path / "pg_dump"  # writes junk where the dump should be
    bogus.write_text("#!/bin/sh\nfor a in \"$@\"; do case $a in --file=*) "
                     "printf 'not a dump' > \"${a#--file=}\";; esac; done\n")
    bogus.chmod(0o755)
    dest = tmp_path / "dumps"
    result = run(["backup", "--db", "ah_dump", "--dsn", pg.dsn, "--dest", str(dest),
                  "--pg-dump", str(bogus),
                  "--pg-restore", os.path.join(pg.bindir, "pg_restore")], tmp_path)
    assert result.returncode == 1
    assert "does not list with pg_restore --list" in result.stderr and "deleted" in result.stderr
    assert os.listdir(dest) == []
    failed = run(["backup", "--db", "no_such_db", "--dsn", pg.dsn, "--dest", str(dest),
                  "--pg-dump", os.path.join(pg.bindir, "pg_dump")], tmp_path)
    assert failed.returncode == 1 and "pg_dump of no_such_db failed" in failed.stderr
    assert pg.password not in failed.stderr and os.listdir(dest) == []
    for args, message in [
        (["backup"], "backup needs --config FILE"),
        (["backup", "--db", "x", "--config", "y"], "one of them"),
        (["backup", "--config", str(bogus), "--dsn", "x"], "--dsn go(es) with --db"),
        (["backup", "--db", "bad name;"], "not a database name"),
    ]:
        result = run(args, tmp_path)
        assert result.returncode == 2 and message in result.stderr, (args, result.stderr)


def test_restore_config_version_through_the_action(tmp_path):
    conf = tmp_path / "odoo.conf"
    good = "[options]\ndb_password = hunter2-secret\nworkers = 2\n"
    conf.write_text(good)
    versions = tmp_path / "versions"
    first = run(["backup", "--config", str(conf), "--dest", str(versions), "--json"], tmp_path)
    version = json.loads(first.stdout)["name"]
    conf.write_text("[options\nworkers = 4\n")
    os.chmod(conf, 0o644)

    plan = run(["restore", "--config", version, "--versions", str(versions), "--dry-run"],
               tmp_path)
    assert plan.returncode == 0 and "planned" in plan.stdout
    assert conf.read_text() != good and "hunter2" not in plan.stdout

    done = run(["restore", "--config", version, "--versions", str(versions)], tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert conf.read_text() == good and ": done" in done.stdout
    assert stat.S_IMODE(os.stat(conf).st_mode) == json.loads(first.stdout)["mode"]
    sha = json.loads(first.stdout)["sha256"][:12]  # a version by its sha256 prefix
    again = run(["restore", "--config", sha, "--versions", str(versions),
                 "--config-path", str(conf)], tmp_path)
    assert again.returncode == 0 and ": noop" in again.stdout
    runs = [json.loads(p.read_text()) for p in (tmp_path / "runs").glob("[0-9a-f]*.json")]
    assert sorted(r["state"] for r in runs) == ["done", "noop", "planned"]
    # the broken file was kept as a version before the restore
    kept = [json.loads(p.read_text()) for p in versions.glob("*.json")]
    assert len(kept) == 2
    missing = run(["restore", "--config", "nope", "--versions", str(versions)], tmp_path)
    assert missing.returncode == 2 and "no version 'nope'" in missing.stderr
