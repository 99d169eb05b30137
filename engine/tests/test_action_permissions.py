"""fix_permissions through the runner, on real folders, real owners, real processes.

The owner's write is proven by a forked child that drops to that user, so
these tests need root (to chown, and to become ``nobody``).
"""

import grp
import json
import os
import pwd
import shutil
import stat
import tempfile

import pytest

from engine import safefs
from engine.actions import ActionError, Context, get_action
from engine.actions.permissions import check_mode, parse_mode, roots_from_config
from engine.actions.runner import execute, rollback_run
from engine.actions.store import RunStore
from engine.audit import AuditLog
from tools.testing import run_as

ACTION = "fix_permissions"

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="changing owners needs root")

NOBODY = pwd.getpwnam("nobody") if os.geteuid() == 0 else None
OWNER = "nobody:%s" % grp.getgrgid(NOBODY.pw_gid).gr_name if NOBODY else ""


def meta(path):
    st = os.lstat(path)
    return stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid


def snapshot(root):
    """(mode, uid, gid) of every path under *root* (symlinks by lstat)."""
    found = {str(root): meta(root)}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            found[path] = meta(path)
    return found


def try_write(path):
    def attempt():
        try:
            with open(path, "w") as fh:
                fh.write("x")
            os.unlink(path)
            return "ok"
        except OSError as exc:
            return f"{type(exc).__name__}: [Errno {exc.errno}] {exc.strerror}"

    return run_as("nobody", attempt)


@pytest.fixture
def base():
    """A folder every user can traverse (pytest's tmp_path is root-only)."""
    folder = tempfile.mkdtemp(prefix="auto_heal-perm-", dir="/tmp")
    os.chmod(folder, 0o755)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def data(base):
    """An Odoo data_dir that root took over: odd modes, a setgid folder, root-owned files."""
    root = os.path.join(base, "data")
    os.makedirs(os.path.join(root, "filestore", "db1", "ab"))
    os.makedirs(os.path.join(root, "sessions"))
    with open(os.path.join(root, "filestore", "db1", "ab", "abcdef"), "wb") as fh:
        fh.write(b"attachment")
    with open(os.path.join(root, "sessions", "werkzeug_x.sess"), "wb") as fh:
        fh.write(b"session")
    os.chmod(root, 0o750)
    os.chmod(os.path.join(root, "filestore"), 0o2700)
    os.chmod(os.path.join(root, "filestore", "db1"), 0o700)
    os.chmod(os.path.join(root, "filestore", "db1", "ab", "abcdef"), 0o604)
    os.chmod(os.path.join(root, "sessions"), 0o755)
    os.chown(root, NOBODY.pw_uid, NOBODY.pw_gid)
    return root


@pytest.fixture
def context(tmp_path):
    return Context(actor="test", audit=AuditLog(str(tmp_path / "audit.jsonl")),
                   backup_dir=str(tmp_path / "backups"))


def test_modes_are_checked():
    assert parse_mode("2750") == 0o2750
    for bad, kind in [(0o777, "dir"), (0o666, "file"), (0o752, "dir"), (0o4750, "dir"),
                      (0o2640, "file"), (0o550, "dir"), (0o440, "file")]:
        with pytest.raises(ActionError, match="refused"):
            check_mode(bad, kind)
    with pytest.raises(ActionError, match="not an octal mode"):
        parse_mode("rwx")


def test_plan_apply_verify_noop_rollback(data, context, tmp_path):
    before = snapshot(data)
    params = {"roots": [data], "owner": OWNER, "dir_mode": "0750", "file_mode": "0640"}

    # 1. plan: every path that differs, before -> after; nothing changes
    planned = execute(ACTION, context, params, dry_run=True)
    assert planned.state == "planned", planned.error
    assert snapshot(data) == before
    steps = planned.plan["steps"]
    assert f"dir {data}/filestore: 2700 root:root -> 0750 {OWNER}" in steps
    assert f"file {data}/filestore/db1/ab/abcdef: 0604 root:root -> 0640 {OWNER}" in steps
    changed = {c["path"] for c in planned.plan["details"]["changes"]}
    assert data not in changed  # already right
    assert len(changed) == len(before) - 1

    # 2.+3. apply, verify (re-stat, and nobody really writes in each folder)
    store = RunStore(str(tmp_path / "runs"))
    record = store.save(execute(ACTION, context, params))
    assert record.state == "done", record.error
    for path, (mode, uid, gid) in snapshot(data).items():
        assert (uid, gid) == (NOBODY.pw_uid, NOBODY.pw_gid), path
        assert mode == (0o750 if os.path.isdir(path) else 0o640), path
    assert "can write in" in record.output
    assert try_write(os.path.join(data, "filestore", "db1", "ab", "new")) == "ok"
    assert {e["path"]: (e["mode"], e["uid"], e["gid"]) for e in record.backup["entries"]} == \
        {p: m for p, m in before.items() if p in changed}

    # 4. second run: nothing to do
    assert execute(ACTION, context, params).state == "noop"

    # 5. rollback: every mode (setgid included) and owner exactly as before
    rollback_run(store.load(record.run_id), context)
    assert snapshot(data) == before
    lines = [json.loads(line) for line in open(context.audit.path)]
    assert [line["action"] for line in lines if line["details"]["run_id"] == record.run_id] == [
        f"{ACTION}.plan", f"{ACTION}.apply", f"{ACTION}.verify", f"{ACTION}.rollback"]


def test_symlinks_are_never_followed_out_of_a_root(data, base, context):
    outside = os.path.join(base, "outside")
    os.makedirs(outside)
    secret = os.path.join(outside, "secret.txt")
    with open(secret, "w") as fh:
        fh.write("root only")
    os.chmod(outside, 0o700)
    os.chmod(secret, 0o600)
    os.symlink(outside, os.path.join(data, "sessions", "link-dir"))
    os.symlink(secret, os.path.join(data, "filestore", "link-file"))
    before_outside = snapshot(outside)
    link_meta = meta(os.path.join(data, "sessions", "link-dir"))

    record = execute(ACTION, context, {"roots": [data], "owner": OWNER})
    assert record.state == "done", record.error
    assert snapshot(outside) == before_outside
    assert meta(os.path.join(data, "sessions", "link-dir")) == link_meta
    assert any("skip symlink" in s and "link-dir" in s for s in record.plan["steps"])

    # a named path through the symlink is outside the roots: refused, nothing touched
    named = os.path.join(data, "sessions", "link-dir", "secret.txt")
    refused = execute(ACTION, context, {"roots": [data], "owner": OWNER, "path": [named]})
    assert refused.state == "blocked"
    assert "a named path lies inside the roots" in refused.error
    assert snapshot(outside) == before_outside


def test_a_folder_swapped_for_a_symlink_after_the_plan_is_refused(data, base, context):
    """apply opens every component with O_NOFOLLOW and checks the planned inode."""
    action = get_action(ACTION)
    outside = os.path.join(base, "outside")
    os.makedirs(outside)
    os.chmod(outside, 0o700)
    plan = action.plan(context, {"roots": [data], "owner": OWNER})
    manifest = action.backup(context, plan)
    sessions = os.path.join(data, "sessions")
    shutil.rmtree(sessions)
    os.symlink(outside, sessions)
    with pytest.raises(safefs.UnsafeFileError, match="symlink"):
        safefs.open_dir(data, "sessions")
    with pytest.raises(safefs.UnsafeFileError, match="symlink"):
        action.apply(context, plan, manifest)
    assert meta(outside) == (0o700, 0, 0)


def test_verify_proves_the_write_and_rolls_back_when_the_owner_cannot(tmp_path, context):
    """Under pytest's tmp_path (a root-only folder) nobody cannot reach the data:
    modes and owners are right, the write still fails, so everything goes back."""
    root = tmp_path / "data"
    (root / "filestore").mkdir(parents=True)
    os.chmod(root, 0o700)
    os.chmod(root / "filestore", 0o711)
    before = snapshot(root)
    record = execute(ACTION, context, {"roots": [str(root)], "owner": OWNER})
    assert record.state == "rolled_back"
    assert "cannot write" in record.error and "Permission denied" in record.error
    assert snapshot(root) == before


def test_world_writable_modes_are_refused(data, context):
    before = snapshot(data)
    for params in ({"dir_mode": "0777"}, {"file_mode": "0666"}, {"dir_mode": "1777"}):
        record = execute(ACTION, context, {"roots": [data], "owner": OWNER, **params})
        assert record.state == "blocked"
        assert "world-writable; refused" in record.error
    assert snapshot(data) == before


def test_roots_from_an_odoo_config(base, tmp_path):
    core = tmp_path / "odoo" / "addons"
    (core / "base").mkdir(parents=True)
    (core / "base" / "__manifest__.py").write_text("{}")
    conf = tmp_path / "odoo.conf"
    conf.write_text(f"[options]\ndata_dir = {base}/data\nlogfile = {base}/odoo.log\n"
                    f"addons_path = {core},{base}/custom\ndb_password = x\n")
    roots, notes = roots_from_config(str(conf))
    assert roots == [f"{base}/data", f"{base}/odoo.log", f"{base}/custom"]
    assert any("Odoo's own code" in n for n in notes)


def _odoo_source_tree(base):
    """A source checkout's layout: odoo-bin, odoo/addons/base, addons/web + a script."""
    src = os.path.join(base, "odoo-src")
    for folder in ("odoo/addons/base", "addons/web/tooling", "addons/sale"):
        os.makedirs(os.path.join(src, folder))
    for path in ("odoo-bin", "odoo/release.py", "odoo/addons/base/__manifest__.py",
                 "addons/web/__manifest__.py", "addons/sale/__manifest__.py"):
        open(os.path.join(src, path), "w").close()
    script = os.path.join(src, "addons", "web", "tooling", "enable.sh")
    with open(script, "w") as fh:
        fh.write("#!/bin/sh\n")
    os.chmod(script, 0o775)
    return src


def test_odoo_code_and_system_folders_are_never_touched(base, data, context):
    """A config's addons_path lists Odoo's own addons (a source checkout has two
    folders: odoo/addons with base, addons/ with web): both are left alone,
    and naming them, or a system folder, as a root is refused."""
    src = _odoo_source_tree(base)
    custom = os.path.join(base, "custom", "my_module")
    os.makedirs(custom)
    conf = os.path.join(base, "odoo.conf")
    with open(conf, "w") as fh:
        fh.write(f"[options]\ndata_dir = {data}\naddons_path = {src}/odoo/addons,"
                 f"{src}/addons,{base}/custom\n")
    before = snapshot(src)
    record = execute(ACTION, context, {"roots": [base], "config": conf, "owner": OWNER})
    assert record.state == "done", record.error
    assert snapshot(src) == before
    assert meta(custom)[1] == NOBODY.pw_uid
    notes = [s for s in record.plan["steps"] if s.startswith("note: ")]
    assert len([n for n in notes if "Odoo's own code" in n]) == 2
    for root in (f"{src}/addons", f"{src}/addons/sale", "/", "/opt", "/var/lib"):
        refused = execute(ACTION, context, {"roots": [root], "owner": OWNER})
        assert refused.state == "blocked", root
        assert "no root is a system location or Odoo's own code" in refused.error
    assert snapshot(src) == before


def test_executable_files_stay_executable(data, context):
    script = os.path.join(data, "sessions", "cleanup.sh")
    with open(script, "w") as fh:
        fh.write("#!/bin/sh\n")
    os.chmod(script, 0o700)
    record = execute(ACTION, context, {"roots": [data], "owner": OWNER})
    assert record.state == "done", record.error
    assert meta(script)[0] == 0o750
    assert meta(os.path.join(data, "sessions", "werkzeug_x.sess"))[0] == 0o640


def test_outer_roots_bound_the_roots(data, base, context):
    context.roots = (os.path.join(base, "elsewhere"),)
    os.makedirs(context.roots[0])
    record = execute(ACTION, context, {"roots": [data], "owner": OWNER})
    assert record.state == "blocked"
    assert "outside the allowed roots" in record.error
