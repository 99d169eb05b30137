"""Which folders a host fix may touch: the operator's roots, never the system's.

The roots come from the root operator (the watchdog's config, ``--root``).
Everything else only narrows them (readme/SECURITY.md)::

    operator roots ──┬── refuse system locations (whoever names them)
                     │
    odoo.conf roots ─┴── keep only those inside an operator root
    (data_dir, logfile, addons_path: the odoo user may own that file)
                     │
    walk ────────────┴── skip Odoo source trees, Python packages and
                          virtualenvs found below a root

System locations: ``/etc``, ``/usr``, ``/bin``, ``/sbin``, ``/lib*``,
``/boot``, ``/root``, ``/proc``, ``/sys``, ``/dev`` and all below them;
``/var/lib`` and below except inside a configured data dir; other users'
homes; and folders too broad to be a root (``/``, ``/opt``, ``/srv``,
``/var``, ``/home``, ``/tmp``...).

>>> system_reason("/etc/ssh")
'/etc/ssh is a system location (below /etc)'
>>> system_reason("/var/lib/odoo/filestore", data_dirs=["/var/lib/odoo"]) is None
True
>>> system_reason("/var/lib/postgresql")
'/var/lib/postgresql is a system location (below /var/lib, and not a configured data dir)'
>>> kept, notes = narrow(["/srv/addons/custom", "/usr/lib/python3/dist-packages"],
...                     ["/srv/addons"])
>>> kept
['/srv/addons/custom']
>>> print(notes[0])
/usr/lib/python3/dist-packages is not inside an operator root (/srv/addons)
"""

import os
import pwd

#: Trees that are the system's: nothing at or below them is ever a fix's target.
SYSTEM_TREES = ("/etc", "/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32",
                "/boot", "/root", "/proc", "/sys", "/dev")
#: Folders too broad to be a root themselves (their subfolders may be roots).
TOO_BROAD = frozenset(["/", "/home", "/media", "/mnt", "/opt", "/run", "/srv", "/tmp", "/var",
                       "/var/cache", "/var/lib", "/var/log", "/var/tmp", "/var/spool"])
#: Names of folders that hold installed Python packages.
PACKAGE_DIRS = frozenset(["site-packages", "dist-packages"])


def _inside(path, folder):
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def _homes(allowed_users=()):
    """Home folders of real users (uid >= 1000) other than *allowed_users*."""
    homes = []
    try:
        entries = pwd.getpwall()
    except OSError:  # pragma: no cover
        return homes
    for entry in entries:
        home = os.path.normpath(entry.pw_dir or "/")
        if entry.pw_uid < 1000 or entry.pw_name in allowed_users or entry.pw_name == "nobody":
            continue
        if home in TOO_BROAD or any(_inside(home, t) for t in SYSTEM_TREES):
            continue
        if home.startswith("/nonexist"):
            continue
        homes.append((entry.pw_name, home))
    return homes


def system_reason(path, data_dirs=(), allowed_users=()):
    """Why *path* (real or as given) is a system location, or None.

    *data_dirs* are the data dirs the operator configured (allowed below
    ``/var/lib``); *allowed_users* the users whose home may hold a root
    (the owner Odoo runs as).
    """
    shown = os.fspath(path)
    for candidate in dict.fromkeys((os.path.normpath(os.path.abspath(shown)),
                                    os.path.realpath(shown))):
        if candidate in TOO_BROAD:
            return f"{shown} is too broad to be a root (a system folder)"
        for tree in SYSTEM_TREES:
            if _inside(candidate, tree):
                return f"{shown} is a system location (below {tree})"
        if _inside(candidate, "/var/lib"):
            allowed = [os.path.realpath(d) for d in data_dirs if d]
            if not any(_inside(candidate, d) and d not in TOO_BROAD for d in allowed):
                return (f"{shown} is a system location (below /var/lib, and not a configured "
                        "data dir)")
        for user, home in _homes(allowed_users):
            if _inside(candidate, home):
                return f"{shown} is inside the home of {user} ({home})"
    return None


def narrow(candidates, operator_roots):
    """``(kept, notes)``: the *candidates* (from odoo.conf) inside an operator root.

    Roots named by a file the ``odoo`` user may own never widen what the
    operator configured; without operator roots nothing is kept.
    """
    real_roots = [os.path.realpath(r) for r in operator_roots if r]
    kept, notes = [], []
    for candidate in candidates:
        real = os.path.realpath(candidate)
        if any(_inside(real, r) for r in real_roots):
            if real not in kept:
                kept.append(real)
        else:
            notes.append(f"{candidate} is not inside an operator root "
                         f"({', '.join(operator_roots) or 'none configured'})")
    return kept, notes


def is_odoo_code(folder):
    """Whether *folder* is Odoo's own code: an addons folder shipping ``base`` or
    ``web``, or anything inside an Odoo source tree or installed package.

    Odoo's code belongs to the system, not to the user Odoo runs as (least
    privilege): no host fix touches it.

    >>> import os, tempfile
    >>> src = tempfile.mkdtemp()
    >>> os.makedirs(os.path.join(src, "addons", "web")); os.makedirs(os.path.join(src, "odoo"))
    >>> open(os.path.join(src, "odoo-bin"), "w").close()
    >>> is_odoo_code(os.path.join(src, "addons")), is_odoo_code(tempfile.mkdtemp())
    (True, False)
    """
    folder = os.path.realpath(folder)
    for module in ("base", "web"):
        if os.path.isfile(os.path.join(folder, module, "__manifest__.py")):
            return True
    current = folder
    while True:
        if os.path.isfile(os.path.join(current, "odoo-bin")) or (
                os.path.basename(current) == "odoo"
                and os.path.isfile(os.path.join(current, "release.py"))):
            return True
        parent = os.path.dirname(current)
        if parent == current:
            return False
        current = parent


def skip_below_root(folder):
    """Why a folder met while walking a root is left alone, or None.

    Odoo source trees, installed Python packages and virtualenvs belong to
    the system even when they sit below a root.

    >>> import os, tempfile
    >>> venv = tempfile.mkdtemp()
    >>> open(os.path.join(venv, "pyvenv.cfg"), "w").close()
    >>> skip_below_root(venv).endswith("a Python virtualenv")
    True
    """
    name = os.path.basename(os.path.normpath(folder))
    if name in PACKAGE_DIRS:
        return f"{folder}: installed Python packages"
    if os.path.isfile(os.path.join(folder, "pyvenv.cfg")):
        return f"{folder}: a Python virtualenv"
    if os.path.isfile(os.path.join(folder, "odoo-bin")) or (
            name == "odoo" and os.path.isfile(os.path.join(folder, "release.py"))):
        return f"{folder}: an Odoo source tree"
    for module in ("base", "web"):
        if os.path.isfile(os.path.join(folder, module, "__manifest__.py")):
            return f"{folder}: Odoo's own addons"
    return None
