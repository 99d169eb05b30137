"""restore_config through the runner: real config files, real versions."""

import os

import pytest

from engine.actions import Context
from engine.actions.runner import execute, rollback_run
from engine.actions.store import RunStore
from engine.audit import AuditLog
from engine.backup import backup_config, list_versions
from engine.fsutil import sha256_bytes

ACTION = "restore_config"
IS_ROOT = os.geteuid() == 0

GOOD = (b"[options]\naddons_path = /srv/addons\ndb_host = db\ndb_password = Good-Pw-1\n"
        b"admin_passwd = $pbkdf2-sha512$600000$abc$def\nworkers = 4\n")
CORRUPT = (b"options]\naddons_path = /srv/addons\ndb_password = Bad-Pw-2\n"
           b"smtp_password = Smtp-Pw-3\nworkers = four\n")


def meta(path):
    st = os.stat(path)
    return st.st_mode & 0o7777, st.st_uid, st.st_gid


@pytest.fixture
def conf(tmp_path):
    path = tmp_path / "etc" / "odoo.conf"
    path.parent.mkdir()
    path.write_bytes(GOOD)
    os.chmod(path, 0o640)
    return path


@pytest.fixture
def context(tmp_path):
    return Context(actor="test", audit=AuditLog(str(tmp_path / "audit.jsonl")),
                   backup_dir=str(tmp_path / "backups"))


def corrupt(conf):
    conf.write_bytes(CORRUPT)
    os.chmod(conf, 0o604)
    if IS_ROOT:
        os.chown(conf, 65534, 65534)


def test_plan_apply_verify_noop_rollback(conf, context, tmp_path):
    versions = tmp_path / "versions"
    good = backup_config(str(conf), str(versions))
    corrupt(conf)
    corrupted_meta = meta(conf)
    params = {"config": str(conf), "version": good.name, "versions_dir": str(versions)}

    # 1. plan: the diff, with every password masked
    planned = execute(ACTION, context, params, dry_run=True)
    assert planned.state == "planned", planned.error
    diff = planned.plan["diff"]
    assert "-options]\n" in diff and "+[options]\n" in diff
    assert "+db_password = ***\n" in diff and "-db_password = ***\n" in diff
    assert "-smtp_password = ***\n" in diff and "+admin_passwd = ***\n" in diff
    for secret in ("Good-Pw-1", "Bad-Pw-2", "Smtp-Pw-3", "pbkdf2"):
        assert secret not in diff and secret not in str(planned.plan)
    assert conf.read_bytes() == CORRUPT

    # 2.+3. apply and verify
    store = RunStore(str(tmp_path / "runs"))
    record = store.save(execute(ACTION, context, params))
    assert record.state == "done", record.error
    assert conf.read_bytes() == GOOD
    assert meta(conf) == (good.mode, good.uid, good.gid)
    assert "parses ([options] with 5 key(s))" in record.output
    # the corrupted file was kept first: as a config version, and as a backup
    kept = [v for v in list_versions(str(versions)) if v.name == record.backup["kept_version"]]
    assert kept and open(kept[0].path, "rb").read() == CORRUPT
    assert open(record.backup["file"]["backup_path"], "rb").read() == CORRUPT

    # 4. second run: nothing to change
    assert execute(ACTION, context, params).state == "noop"

    # 5. rollback: the corrupted bytes, mode and owner, exactly
    rollback_run(store.load(record.run_id), context)
    assert conf.read_bytes() == CORRUPT
    assert meta(conf) == corrupted_meta


def test_version_by_sha256_prefix(conf, context, tmp_path):
    versions = tmp_path / "versions"
    good = backup_config(str(conf), str(versions))
    corrupt(conf)
    record = execute(ACTION, context, {"config": str(conf), "version": good.sha256[:10],
                                       "versions_dir": str(versions)})
    assert record.state == "done"
    assert sha256_bytes(conf.read_bytes()) == good.sha256


def test_tampered_or_broken_versions_are_refused(conf, context, tmp_path):
    versions = tmp_path / "versions"
    good = backup_config(str(conf), str(versions))
    conf.write_bytes(b"workers = 2\n")  # not an Odoo config: no [options]
    broken = backup_config(str(conf), str(versions))
    corrupt(conf)
    os.chmod(good.path, 0o600)
    with open(good.path, "ab") as fh:
        fh.write(b"db_host = evil\n")
    for version, reason in [(good.name, "is intact (sha256)"),
                            (broken.name, "parses as an Odoo config")]:
        record = execute(ACTION, context, {"config": str(conf), "version": version,
                                           "versions_dir": str(versions)})
        assert record.state == "blocked"
        assert reason in record.error
    assert conf.read_bytes() == CORRUPT


def test_a_version_of_another_file_is_refused(conf, context, tmp_path):
    other = tmp_path / "other.conf"
    other.write_bytes(b"[options]\nworkers = 1\n")
    versions = tmp_path / "versions"
    version = backup_config(str(other), str(versions))
    record = execute(ACTION, context, {"config": str(conf), "version": version.name,
                                       "versions_dir": str(versions)})
    assert record.state == "blocked"
    assert f"it was taken of {other}" in record.error
    assert conf.read_bytes() == GOOD


def test_unknown_version_and_roots(conf, context, tmp_path):
    versions = tmp_path / "versions"
    backup_config(str(conf), str(versions))
    record = execute(ACTION, context, {"config": str(conf), "version": "nope",
                                       "versions_dir": str(versions)})
    assert record.state == "blocked" and "no version 'nope'" in record.error
    context.roots = (str(tmp_path / "elsewhere"),)
    record = execute(ACTION, context, {"config": str(conf), "version": "nope",
                                       "versions_dir": str(versions)})
    assert record.state == "blocked" and "outside the allowed roots" in record.error
