import datetime
import json
import os
import stat

import pytest

from engine.backup import (
    BackupConfigError,
    backup_config,
    find_version,
    list_versions,
    restore_version,
)
from engine.fsutil import sha256_bytes

IS_ROOT = os.geteuid() == 0


def _conf(tmp_path, text, mode=0o640):
    p = tmp_path / "odoo.conf"
    p.write_text(text)
    os.chmod(p, mode)
    return p


def test_version_name_copy_and_metadata(tmp_path):
    conf = _conf(tmp_path, "[options]\ndb_password = s3cret\n")
    if IS_ROOT:
        os.chown(conf, 3000, 3001)
    moment = datetime.datetime(2026, 11, 29, 14, 40, 19, tzinfo=datetime.timezone.utc)
    v = backup_config(str(conf), str(tmp_path / "versions"), now=moment)
    digest = sha256_bytes(conf.read_bytes())
    assert v.created
    assert v.name == "odoo.conf.20261129T144019Z.%s" % digest[:8]
    assert open(v.path, "rb").read() == conf.read_bytes()
    assert stat.S_IMODE(os.stat(v.path).st_mode) == 0o600  # it holds passwords
    meta = json.loads(open(v.path + ".json").read())
    assert meta["sha256"] == digest
    assert meta["mode"] == 0o640
    assert meta["source"] == os.path.realpath(conf)
    assert meta["size"] == len(conf.read_bytes())
    if IS_ROOT:
        assert (meta["uid"], meta["gid"], meta["owner"]) == (3000, 3001, "3000:3001")


def test_identical_version_is_not_duplicated(tmp_path):
    conf = _conf(tmp_path, "a = 1\n")
    dest = str(tmp_path / "v")
    v1 = backup_config(str(conf), dest)
    v2 = backup_config(str(conf), dest)
    assert not v2.created and v2.path == v1.path
    assert len(os.listdir(dest)) == 2  # one copy + its metadata
    conf.write_text("a = 2\n")
    v3 = backup_config(str(conf), dest)
    assert v3.created and len(os.listdir(dest)) == 4
    # back to the first content: a new version (the latest differs)
    conf.write_text("a = 1\n")
    v4 = backup_config(str(conf), dest)
    assert v4.created and v4.sha256 == v1.sha256 and v4.path != v1.path
    assert [v.sha256 for v in list_versions(dest)] == [v1.sha256, v3.sha256, v1.sha256]


def test_retention_keeps_the_newest(tmp_path):
    conf = _conf(tmp_path, "")
    dest = str(tmp_path / "v")
    made = []
    for i in range(5):
        conf.write_text("workers = %d\n" % i)
        made.append(backup_config(str(conf), dest, keep=3))
    kept = list_versions(dest)
    assert [v.sha256 for v in kept] == [m.sha256 for m in made[-3:]]
    assert len(os.listdir(dest)) == 6
    with pytest.raises(BackupConfigError):
        backup_config(str(conf), dest, keep=0)


def test_versions_of_two_files_are_kept_apart(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    a = tmp_path / "a" / "odoo.conf"
    b = tmp_path / "b" / "odoo.conf"
    a.write_text("a\n")
    b.write_text("b\n")
    dest = str(tmp_path / "v")
    backup_config(str(a), dest, keep=1)
    backup_config(str(b), dest, keep=1)
    assert len(list_versions(dest)) == 2
    assert [v.source for v in list_versions(dest, str(a))] == [str(a)]


def test_restore_and_find(tmp_path):
    conf = _conf(tmp_path, "workers = 2\n", mode=0o600)
    dest = str(tmp_path / "v")
    v1 = backup_config(str(conf), dest)
    conf.write_text("workers = 99\n")
    os.chmod(conf, 0o666)
    assert find_version(dest, v1.name).sha256 == v1.sha256
    assert find_version(dest, v1.sha256[:10]).name == v1.name
    with pytest.raises(BackupConfigError, match="no version"):
        find_version(dest, "nothing")
    restore_version(find_version(dest, v1.name))
    assert conf.read_text() == "workers = 2\n"
    assert stat.S_IMODE(os.stat(conf).st_mode) == 0o600
    # a tampered copy is refused
    with open(v1.path, "w") as fh:
        fh.write("evil\n")
    with pytest.raises(BackupConfigError, match="sha256"):
        restore_version(v1)
    assert conf.read_text() == "workers = 2\n"


def test_bad_input(tmp_path):
    with pytest.raises(BackupConfigError, match="no such file"):
        backup_config(str(tmp_path / "missing.conf"), str(tmp_path / "v"))
    with pytest.raises(BackupConfigError, match="not a regular file"):
        backup_config(str(tmp_path), str(tmp_path / "v"))
