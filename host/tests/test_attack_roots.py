"""Attack: roots are the operator's, not odoo.conf's (readme/SECURITY.md, issue 8 section 4).

The ``odoo`` user often owns odoo.conf. The review's attack: an odoo.conf
naming ``data_dir = /etc/ssh``, ``logfile = /etc/shadow`` and
``addons_path = /usr/lib/python3/dist-packages`` made ``fix fix_permissions
--config odoo.conf`` plan to hand them to Odoo's user, every precondition
``[ok]``. Here that odoo.conf is written by ``nobody`` and the real CLI runs as
root: nothing outside the operator's ``--root`` is planned, system locations
are refused whoever names them, and Odoo source trees, Python packages and
virtualenvs below a root are left alone.
"""

import json
import os
import pwd
import shutil
import stat
import tempfile

import pytest

from host.tests.conftest import run_auto_heal
from tools.testing import run_as

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the attack needs root and nobody")
NOBODY = pwd.getpwnam("nobody") if os.geteuid() == 0 else None


@pytest.fixture
def base():
    folder = tempfile.mkdtemp(prefix="auto_heal-roots-", dir="/tmp")
    os.chmod(folder, 0o755)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def fix(*args, home):
    return run_auto_heal(["fix", "fix_permissions", *args], home)


def _planned(result):
    return result.stdout


def test_odoo_conf_written_by_the_odoo_user_never_widens_the_roots(base):
    etc = os.path.join(base, "etc")
    os.makedirs(etc)
    os.chown(etc, NOBODY.pw_uid, NOBODY.pw_gid)  # the official image chowns it to odoo
    data = os.path.join(base, "data")
    os.makedirs(os.path.join(data, "filestore"))
    conf = os.path.join(etc, "odoo.conf")

    def write_conf():
        with open(conf, "w") as handle:
            handle.write("[options]\ndata_dir = /etc/ssh\nlogfile = /etc/shadow\n"
                         "addons_path = /usr/lib/python3/dist-packages\n")
        return "written"

    assert run_as("nobody", write_conf) == "written"
    before = {p: (os.stat(p).st_uid, stat.S_IMODE(os.stat(p).st_mode))
              for p in ("/etc/ssh", "/etc/shadow", "/usr/lib/python3/dist-packages")
              if os.path.exists(p)}
    home = os.path.join(base, "home")
    result = fix("--owner", "nobody", "--root", data, "--config", conf, "--dry-run", home=home)
    assert result.returncode == 1, result.stderr  # nothing usable: blocked, nothing planned
    out = _planned(result)
    assert "the config names no folder inside the operator's roots" in out, out
    for system in ("/etc/ssh", "/etc/shadow", "/usr/lib/python3/dist-packages"):
        assert f"{system}:" not in out and f"dir {system}" not in out, out
        assert f"{system} is not inside an operator root" in out, out
    # without operator roots, odoo.conf alone gives none
    alone = fix("--owner", "nobody", "--config", conf, "--dry-run", home=home)
    assert alone.returncode == 2 and "needs roots" in alone.stderr
    # and a system location named by the operator is refused too
    for root in ("/etc/ssh", "/usr/lib", "/var/lib/postgresql", "/root", "/boot"):
        refused = fix("--owner", "nobody", "--root", root, "--dry-run", home=home)
        if not os.path.exists(root):
            continue
        assert refused.returncode == 1, (root, refused.stdout, refused.stderr)
        assert "[FAILED] no root is a system location" in refused.stdout, refused.stdout
    after = {p: (os.stat(p).st_uid, stat.S_IMODE(os.stat(p).st_mode)) for p in before}
    assert after == before


def test_odoo_code_packages_and_virtualenvs_below_a_root_are_left_alone(base):
    root = os.path.join(base, "srv")
    custom = os.path.join(root, "custom_addons", "my_module")
    os.makedirs(custom)
    with open(os.path.join(custom, "__manifest__.py"), "w") as handle:
        handle.write("{'name': 'mine'}\n")
    odoo_tree = os.path.join(root, "odoo-src")
    os.makedirs(os.path.join(odoo_tree, "odoo"))
    for path in ("odoo-bin", "odoo/release.py"):
        open(os.path.join(odoo_tree, path), "w").close()
    venv = os.path.join(root, "venv")
    os.makedirs(os.path.join(venv, "lib", "python3.11", "site-packages", "requests"))
    open(os.path.join(venv, "pyvenv.cfg"), "w").close()
    packages = os.path.join(root, "lib", "dist-packages", "six")
    os.makedirs(packages)
    for folder in (odoo_tree, venv, os.path.dirname(packages)):
        os.chmod(folder, 0o755)
    home = os.path.join(base, "home")
    result = fix("--owner", "nobody", "--root", root, home=home)
    assert result.returncode == 0, (result.stdout, result.stderr)
    assert os.stat(custom).st_uid == NOBODY.pw_uid  # the custom addon was fixed
    for system in (odoo_tree, os.path.join(odoo_tree, "odoo"), venv,
                   os.path.join(venv, "lib", "python3.11", "site-packages", "requests"),
                   packages):
        assert os.stat(system).st_uid == 0, system  # never handed to Odoo's user
    assert "an Odoo source tree (the system's, even below a root)" in result.stdout
    assert "a Python virtualenv (the system's, even below a root)" in result.stdout
    records = [json.load(open(os.path.join(home, "runs", n)))
               for n in os.listdir(os.path.join(home, "runs")) if not n.startswith(".")]
    assert [r["state"] for r in records] == ["done"]
