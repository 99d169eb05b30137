import json
import os
import stat
import subprocess
import sys

import pytest

from engine import fsutil
from engine.errors import EngineError
from engine.fsutil import (
    BackupError,
    PathEscapeError,
    atomic_write,
    backup_file,
    load_backup_record,
    resolve_inside,
    restore_backup,
)

IS_ROOT = os.geteuid() == 0


def _mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def test_atomic_write_keeps_mode_and_leaves_no_temp(tmp_path):
    p = tmp_path / "cron.xml"
    p.write_bytes(b"old")
    os.chmod(p, 0o640)
    inode_before = os.stat(p).st_ino
    atomic_write(str(p), b"new content\n")
    assert p.read_bytes() == b"new content\n"
    assert _mode(p) == 0o640
    assert os.stat(p).st_ino != inode_before  # replaced by rename, not rewritten in place
    assert sorted(os.listdir(tmp_path)) == ["cron.xml"]


@pytest.mark.skipif(not IS_ROOT, reason="chown to another user needs root")
def test_atomic_write_keeps_owner(tmp_path):
    p = tmp_path / "odoo.conf"
    p.write_bytes(b"[options]\n")
    os.chown(p, 4321, 4322)
    os.chmod(p, 0o600)
    atomic_write(str(p), b"[options]\nworkers = 2\n")
    st = os.stat(p)
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (4321, 4322, 0o600)
    assert p.read_bytes() == b"[options]\nworkers = 2\n"


def test_atomic_write_refuses_a_symlink_and_leaves_its_target(tmp_path):
    """A link planted where auto_heal keeps a file must not make it write the target."""
    real = tmp_path / "real.xml"
    real.write_bytes(b"a")
    link = tmp_path / "link.xml"
    os.symlink(real, link)
    with pytest.raises(EngineError, match="is a symlink; refused"):
        atomic_write(str(link), b"b")
    assert os.path.islink(link)
    assert real.read_bytes() == b"a"


def test_atomic_write_new_file_uses_umask(tmp_path):
    p = tmp_path / "new.txt"
    old = os.umask(0o027)
    try:
        atomic_write(str(p), b"x")
    finally:
        os.umask(old)
    assert _mode(p) == 0o640


def test_atomic_write_failure_leaves_original_and_no_temp(tmp_path):
    p = tmp_path / "f.txt"
    p.write_bytes(b"keep me")
    with pytest.raises(TypeError):
        atomic_write(str(p), "not bytes")
    assert p.read_bytes() == b"keep me"
    # a refused chown (simulated by a non-root child process) leaves no temp file
    if IS_ROOT:
        os.chown(p, 4321, 4321)
        os.chmod(tmp_path, 0o777)
        code = (
            "import os, sys; sys.path.insert(0, %r)\n"
            "from engine.fsutil import atomic_write\n"
            "os.setgid(4444); os.setuid(4444)\n"
            "try:\n    atomic_write(%r, b'evil')\n"
            "except PermissionError as e:\n    print('refused', e)\n"
        ) % (os.getcwd(), str(p))
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        assert "refused" in out.stdout, out.stderr
        assert p.read_bytes() == b"keep me"
        assert os.stat(p).st_uid == 4321
        assert sorted(os.listdir(tmp_path)) == ["f.txt"]


def test_backup_and_restore_exact_bytes_mode_owner(tmp_path):
    p = tmp_path / "cron.xml"
    original = b"<?xml version='1.0' encoding='iso-8859-1'?>\r\n<odoo>\xe9</odoo>\r\n"
    p.write_bytes(original)
    os.chmod(p, 0o604)
    if IS_ROOT:
        os.chown(p, 1111, 2222)
    before = os.stat(p)
    record = backup_file(str(p), str(tmp_path / "bk"))

    # the copy and its sidecar
    assert open(record.backup_path, "rb").read() == original
    assert _mode(record.backup_path) == 0o600
    assert _mode(tmp_path / "bk") == 0o700
    side = json.loads(open(record.sidecar).read())
    assert side["sha256"] == fsutil.sha256_bytes(original)
    assert side["mode"] == 0o604
    assert side["uid"] == before.st_uid and side["gid"] == before.st_gid
    assert side["path"] == os.path.realpath(p)

    # damage the file: other bytes, other mode, other owner
    p.write_bytes(b"garbage")
    os.chmod(p, 0o777)
    if IS_ROOT:
        os.chown(p, 0, 0)

    restore_backup(load_backup_record(record.sidecar))
    after = os.stat(p)
    assert p.read_bytes() == original
    assert stat.S_IMODE(after.st_mode) == 0o604
    assert (after.st_uid, after.st_gid) == (before.st_uid, before.st_gid)
    assert sorted(os.listdir(tmp_path)) == ["bk", "cron.xml"]


def test_restore_refuses_a_tampered_backup(tmp_path):
    p = tmp_path / "a.txt"
    p.write_bytes(b"v1")
    record = backup_file(str(p), str(tmp_path / "bk"))
    p.write_bytes(b"v2")
    with open(record.backup_path, "wb") as fh:
        fh.write(b"tampered")
    with pytest.raises(BackupError, match="sha256"):
        restore_backup(record)
    assert p.read_bytes() == b"v2"


def test_two_backups_of_the_same_file_do_not_collide(tmp_path):
    p = tmp_path / "a.txt"
    p.write_bytes(b"v1")
    r1 = backup_file(str(p), str(tmp_path / "bk"))
    r2 = backup_file(str(p), str(tmp_path / "bk"))
    assert r1.backup_path != r2.backup_path
    assert len(os.listdir(tmp_path / "bk")) == 4


def test_resolve_inside_accepts_paths_inside(tmp_path):
    root = tmp_path / "addons"
    (root / "m" / "data").mkdir(parents=True)
    f = root / "m" / "data" / "cron.xml"
    f.write_text("x")
    assert resolve_inside(str(f), [str(root)]) == os.path.realpath(f)
    assert resolve_inside(str(root), [str(root)]) == os.path.realpath(root)
    # a symlink that stays inside is fine
    os.symlink(f, root / "inside_link.xml")
    assert resolve_inside(str(root / "inside_link.xml"), [str(root)]) == os.path.realpath(f)
    # a single root given as a string
    assert resolve_inside(str(f), str(root)) == os.path.realpath(f)


def test_resolve_inside_refuses_dotdot_escape(tmp_path):
    root = tmp_path / "addons"
    root.mkdir()
    (tmp_path / "secret.xml").write_text("x")
    with pytest.raises(PathEscapeError) as exc:
        resolve_inside(str(root / ".." / "secret.xml"), [str(root)])
    assert "outside the allowed roots" in str(exc.value)
    assert isinstance(exc.value, EngineError)


def test_resolve_inside_refuses_symlink_escape(tmp_path):
    root = tmp_path / "addons"
    root.mkdir()
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "cron.xml").write_text("x")
    os.symlink(outside / "cron.xml", root / "evil.xml")
    os.symlink(outside, root / "evil_dir")
    with pytest.raises(PathEscapeError, match="resolves to"):
        resolve_inside(str(root / "evil.xml"), [str(root)])
    with pytest.raises(PathEscapeError):
        resolve_inside(str(root / "evil_dir" / "cron.xml"), [str(root)])


def test_resolve_inside_prefix_is_not_enough(tmp_path):
    (tmp_path / "addons").mkdir()
    (tmp_path / "addons2").mkdir()
    with pytest.raises(PathEscapeError):
        resolve_inside(str(tmp_path / "addons2"), [str(tmp_path / "addons")])
    with pytest.raises(PathEscapeError, match="no allowed root"):
        resolve_inside(str(tmp_path / "addons"), [])
