"""Fix action ``fix_permissions``: give Odoo its files back, and nothing else.

Odoo writes to its data_dir (filestore, sessions), its log file and, for
apps it downloads, its addons. When a deployment step runs as root, those
end up owned by root and Odoo fails with ``PermissionError: [Errno 13]
Permission denied: '<path>'``. This action sets a configured owner and
configured modes, either on every file and folder under the roots, or only
on the path an Errno 13 names (and the folders between it and its root)::

    roots: params "roots", or from odoo.conf: data_dir, logfile, addons_path
      │       (an addons folder holding Odoo's own "base" module is left alone)
    plan     walk the roots (os.walk, followlinks=False; symlinks are listed and
      │       skipped); each path whose mode/owner differ: before -> after
    backup   mode, uid, gid, device and inode of every path that will change
    apply    per path: openat() from the root with O_NOFOLLOW at every step,
      │       same inode as planned? chown, then chmod (on that inode only)
    verify   re-stat every path, then a child process that runs as the owner
      │       creates and removes a file in each folder (opens files for append)
    rollback the recorded mode, uid and gid, on the same inodes

Modes are refused when world-writable (``0o002``: never 777), setuid, setgid
on files, or when the owner itself could not write (folders need ``0o700``,
files ``0o600``). A file that was executable stays executable for whoever
may read it (0640 becomes 0750 for a script). A root that is a system folder
(``/``, ``/opt``, ``/var/lib``...) or Odoo's own code (an addons folder
shipping ``base`` or ``web``, anything in an Odoo source tree or package) is
refused: Odoo's code belongs to the system, never to the user Odoo runs as.

Parameters: ``owner`` ("user:group" or "user"; numeric ids work),
``dir_mode`` (default 0750), ``file_mode`` (default 0640), ``roots`` and/or
``config`` (an odoo.conf), and optionally ``path`` (paths an Errno 13 names)
or ``from_log`` (Odoo logs whose ``permission_denied`` errors name them).
``context.roots``, when set, bounds every root.

>>> parse_mode("0750"), parse_mode(0o640), parse_mode("o750")
(488, 416, 488)
>>> check_mode(0o777, "dir")
Traceback (most recent call last):
...
engine.actions.base.ActionError: mode 0777 for folders is world-writable; refused

Why one module of ~620 lines: one action, whose walk, proof of writability and
rollback must agree on the same entries.
"""

import configparser
import errno
import grp
import json
import os
import pwd
import re
import stat

from .. import fsutil, safefs
from ..errors import EngineError
from ..roots import is_odoo_code, narrow, skip_below_root, system_reason
from .base import ActionError, FixAction, Plan, Precondition, register
from .cron_fields import as_list, load_pattern_set
from .params import DATA, HOST, Param

NAME = "fix_permissions"
DEFAULT_DIR_MODE = 0o750
DEFAULT_FILE_MODE = 0o640
#: The pattern whose findings name the path Odoo could not write.
PATTERN_TYPE = "permission_denied"
#: How many paths the plan text lists (the details keep all of them).
STEP_LIMIT = 500
#: How many folders and files the write check tries as the owner.
PROOF_LIMIT = 200
#: The largest odoo.conf read for its roots.
CONFIG_MAX_BYTES = 1 << 20
#: Data dirs allowed below /var/lib without configuration (Odoo's Debian package).
DEFAULT_DATA_DIRS = ("/var/lib/odoo",)


# --------------------------------------------------------------------------
# modes and owners


def parse_mode(value):
    """An octal mode from ``"0750"``, ``"750"``, ``"0o750"`` or an int."""
    if isinstance(value, int) and not isinstance(value, bool):
        mode = value
    else:
        text = str(value).strip().lower()
        text = text[2:] if text.startswith("0o") else text[1:] if text.startswith("o") else text
        if not re.fullmatch(r"[0-7]{1,4}", text):
            raise ActionError(f"not an octal mode: {value!r}")
        mode = int(text, 8)
    if not 0 <= mode <= 0o7777:
        raise ActionError(f"not a mode: {value!r}")
    return mode


def check_mode(mode, kind):
    """Refuse a mode that is unsafe or that would lock the owner out."""
    what = "folders" if kind == "dir" else "files"
    if mode & 0o002:
        raise ActionError(f"mode {mode:04o} for {what} is world-writable; refused")
    if mode & 0o4000:
        raise ActionError(f"mode {mode:04o} for {what} is setuid; refused")
    if kind == "file" and mode & 0o2000:
        raise ActionError(f"mode {mode:04o} for files is setgid; refused")
    need = 0o700 if kind == "dir" else 0o600
    if mode & need != need:
        raise ActionError(f"mode {mode:04o} for {what} does not let the owner "
                          f"{'enter and write' if kind == 'dir' else 'read and write'}; refused")
    return mode


def parse_owner(text):
    """``(user, group, uid, gid)`` from ``"user:group"`` or ``"user"``.

    >>> parse_owner("root:root")
    ('root', 'root', 0, 0)
    >>> parse_owner("0")[2:]
    (0, 0)
    """
    text = str(text or "").strip()
    if not text:
        raise ActionError(f"{NAME} needs an owner (user:group)")
    user, _, group = text.partition(":")
    try:
        entry = pwd.getpwuid(int(user)) if user.isdigit() else pwd.getpwnam(user)
    except (KeyError, ValueError):
        raise ActionError(f"unknown user {user!r}") from None
    if group:
        try:
            gentry = grp.getgrgid(int(group)) if group.isdigit() else grp.getgrnam(group)
        except (KeyError, ValueError):
            raise ActionError(f"unknown group {group!r}") from None
    else:
        try:
            gentry = grp.getgrgid(entry.pw_gid)
        except KeyError:
            raise ActionError(f"the primary group {entry.pw_gid} of {user} has no name") from None
    return entry.pw_name, gentry.gr_name, entry.pw_uid, gentry.gr_gid


def _name(uid, gid):
    try:
        user = pwd.getpwuid(uid).pw_name
    except KeyError:
        user = str(uid)
    try:
        group = grp.getgrgid(gid).gr_name
    except KeyError:
        group = str(gid)
    return f"{user}:{group}"


# --------------------------------------------------------------------------
# roots


def new_file_mode(file_mode, old_mode):
    """The mode a file gets: *file_mode*, executable where it was and may be read.

    >>> oct(new_file_mode(0o640, 0o775)), oct(new_file_mode(0o640, 0o664))
    ('0o750', '0o640')
    """
    if old_mode & 0o111:
        return file_mode | ((file_mode & 0o444) >> 2)
    return file_mode


def roots_from_config(path):
    """(roots, notes): data_dir, logfile and addons_path of an odoo.conf.

    The odoo user may own that file: what it names only narrows the
    operator's roots (:func:`engine.roots.narrow`), it never widens them.
    """
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    try:
        text = safefs.read_regular(path, "Odoo config", CONFIG_MAX_BYTES).decode("utf-8")
        parser.read_string(text)
    except (EngineError, configparser.Error, UnicodeDecodeError) as exc:
        raise ActionError(f"cannot read {path} as an Odoo config: {exc}") from None
    if not parser.has_section("options"):
        raise ActionError(f"{path} has no [options] section")
    roots, notes = [], []
    data_dir = parser.get("options", "data_dir", fallback="").strip()
    if data_dir:
        roots.append(data_dir)
    else:
        notes.append(f"{path} sets no data_dir (Odoo's default depends on its user); not included")
    logfile = parser.get("options", "logfile", fallback="").strip()
    if logfile and logfile.lower() not in ("false", "none"):
        roots.append(logfile)
    for folder in parser.get("options", "addons_path", fallback="").split(","):
        folder = folder.strip()
        if not folder:
            continue
        if is_odoo_code(folder):
            notes.append(f"{folder} is Odoo's own code; left to the system's owner")
            continue
        roots.append(folder)
    return roots, notes


def _root_of(real, roots):
    """The longest root holding *real*, or None."""
    best = None
    for root in roots:
        if real == root or real.startswith(root.rstrip(os.sep) + os.sep):
            if best is None or len(root) > len(best):
                best = root
    return best


def paths_from_log(logs, patterns=None):
    """Absolute paths named by ``[Errno 13] Permission denied: '<path>'`` errors."""
    from ..scanner import Scanner

    scanner = Scanner(load_pattern_set(patterns))
    named = []
    for log in logs:
        if not os.path.isfile(log):
            raise ActionError(f"log file not found: {log}")
        for finding in scanner.scan_file(log, cursor=None, final=True).findings:
            if finding.pattern_type != PATTERN_TYPE:
                continue
            path = (finding.captures or {}).get("path")
            if path and os.path.isabs(path) and path not in named:
                named.append(path)
    return named


# --------------------------------------------------------------------------
# safe access to one inode


def _check_entry(entry):
    """The ``(mode, uid, gid)`` of a planned entry now, on descriptors, checked to
    be the same inode (:func:`engine.safefs.set_owner_mode` does the change)."""
    if entry["kind"] == "dir":
        fd = safefs.open_dir(entry["root"], entry["rel"])
    else:
        data_dir, name = os.path.split(entry["rel"])
        dir_fd = safefs.open_dir(entry["root"], data_dir)
        try:
            fd, _ = safefs._open_file(dir_fd, name, entry["path"], None)
        finally:
            os.close(dir_fd)
    try:
        st = os.fstat(fd)
    finally:
        os.close(fd)
    if (st.st_dev, st.st_ino) != (entry["dev"], entry["ino"]):
        raise ActionError(f"{entry['path']} is no longer the file that was planned "
                          "(replaced or moved); plan again")
    return stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid


# --------------------------------------------------------------------------
# the write check, as the owner


def prove_writable(user, uid, gid, checks):
    """Run *checks* (``[kind, path]``) in a child running as *uid*/*gid*.

    A folder passes when the child can create and remove a file in it, a
    file when it can open it for appending (nothing is written). Returns
    ``{path: ""}`` or ``{path: "[Errno 13] Permission denied"}``.
    """
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: never returns
        code = 0
        try:
            os.close(read_end)
            if os.geteuid() != uid or os.getegid() != gid:
                if os.geteuid() != 0:
                    raise PermissionError(errno.EPERM, "only root can act as another user")
                try:
                    os.initgroups(user, gid)
                except OSError:
                    os.setgroups([])
                os.setgid(gid)
                os.setuid(uid)
            results = {}
            for kind, path in checks:
                try:
                    if kind == "dir":
                        probe = os.path.join(path, ".auto_heal-write-check.%d" % os.getpid())
                        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW,
                                     0o600)
                        os.close(fd)
                        os.unlink(probe)
                    else:
                        os.close(os.open(path, os.O_WRONLY | os.O_APPEND | os.O_NOFOLLOW))
                    results[path] = ""
                except OSError as exc:
                    results[path] = f"[Errno {exc.errno}] {exc.strerror}"
            payload = {"results": results}
        except BaseException as exc:  # noqa: BLE001 - reported to the parent
            payload = {"error": f"{type(exc).__name__}: {exc}"}
            code = 1
        try:
            os.write(write_end, json.dumps(payload).encode())
        finally:
            os._exit(code)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as fh:
        data = fh.read()
    os.waitpid(pid, 0)
    payload = json.loads(data.decode() or '{"error": "the check process died"}')
    if "error" in payload:
        raise ActionError(f"cannot check writes as {user}: {payload['error']}")
    return payload["results"]


# --------------------------------------------------------------------------
# the action


def _entry(root, path, st):
    kind = "dir" if stat.S_ISDIR(st.st_mode) else "file"
    return {"path": path, "root": root, "rel": os.path.relpath(path, root) if path != root else "",
            "kind": kind, "dev": st.st_dev, "ino": st.st_ino,
            "mode": stat.S_IMODE(st.st_mode), "uid": st.st_uid, "gid": st.st_gid}


def _walk(root, symlinks, others, left_alone):
    """(path, lstat) of the root and, for a folder, everything under it.

    Symlinks are never followed and never changed: they are collected in
    *symlinks*; sockets, fifos, devices and files with several hard links in
    *others*; Odoo source trees, Python packages and virtualenvs below the
    root in *left_alone* (not walked).
    """
    st = os.lstat(root)
    yield root, st
    if not stat.S_ISDIR(st.st_mode):
        return
    errors = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False, onerror=errors.append):
        kept = []
        for name in sorted(dirnames):
            reason = skip_below_root(os.path.join(dirpath, name))
            if reason:
                left_alone.append(reason)
            else:
                kept.append(name)
        dirnames[:] = kept
        for name in dirnames + sorted(filenames):
            path = os.path.join(dirpath, name)
            try:
                st = os.lstat(path)
            except FileNotFoundError:
                continue
            if stat.S_ISLNK(st.st_mode):
                symlinks.append(f"{path} -> {os.readlink(path)}")
            elif stat.S_ISREG(st.st_mode) and st.st_nlink > 1:
                others.append(f"{path} ({st.st_nlink} hard links)")
            elif stat.S_ISDIR(st.st_mode) or stat.S_ISREG(st.st_mode):
                yield path, st
            else:
                others.append(path)
    for exc in errors:
        raise ActionError(f"cannot walk {root}: {exc}")


@register
class FixPermissions(FixAction):
    """Set the configured owner and modes on Odoo's data, log and addons."""

    name = NAME
    runs_on = "host"
    params = (
        Param("owner", "owner", HOST, "the owner Odoo's files get", required=True,
              metavar="USER:GROUP"),
        Param("dir_mode", "mode", HOST, "the mode of folders", default="0750",
              metavar="MODE"),
        Param("file_mode", "mode", HOST, "the mode of files (executables stay executable)",
              default="0640", metavar="MODE"),
        Param("roots", "paths", HOST, "a root to fix, and the only folders touched",
              option="--root", metavar="DIR"),
        Param("config", "path", HOST, "an odoo.conf whose data_dir, logfile and addons_path "
              "narrow the roots", metavar="FILE"),
        Param("data_dir", "paths", HOST, "a data dir allowed below /var/lib (besides "
              "/var/lib/odoo)", metavar="DIR"),
        Param("path", "paths", DATA, "fix only this path an Errno 13 names (and the folders "
              "to it)", capture="path", metavar="P"),
        Param("from_log", "paths", HOST, "fix only the paths this Odoo log's Errno 13 errors "
              "name", metavar="LOG"),
        Param("patterns", "path", HOST, "the patterns file to read --from-log with",
              metavar="FILE"),
    )
    description = ("Give Odoo's data_dir, filestore, sessions, log file and addons the "
                   "configured owner and modes (never world-writable, never through a "
                   "symlink), or only the path an Errno 13 names.")

    def check(self, params):
        if not params.get("roots"):
            raise ActionError(f"{NAME} needs roots (--root, or [fixes] roots): an odoo.conf "
                              "only narrows them")
        for key, kind in (("dir_mode", "dir"), ("file_mode", "file")):
            if params.get(key):
                check_mode(parse_mode(params[key]), kind)
        parse_owner(params.get("owner"))

    def plan(self, context, params):
        user, group, uid, gid = parse_owner(params.get("owner"))
        dir_mode = check_mode(parse_mode(params.get("dir_mode", DEFAULT_DIR_MODE)), "dir")
        file_mode = check_mode(parse_mode(params.get("file_mode", DEFAULT_FILE_MODE)), "file")
        want = {"dir": dir_mode, "file": file_mode}

        operator = as_list(params.get("roots")) or [os.fspath(r) for r in context.roots]
        if not operator:  # pragma: no cover - check() refuses it first
            raise ActionError(f"{NAME} needs roots (--root, or [fixes] roots): an odoo.conf "
                              "only narrows them")
        given, notes = list(operator), []
        if params.get("config"):
            from_conf, conf_notes = roots_from_config(params["config"])
            notes += conf_notes
            given, outside_conf = narrow(from_conf, operator)
            notes += outside_conf
        data_dirs = list(DEFAULT_DATA_DIRS) + as_list(params.get("data_dir"))
        roots, outside, forbidden = [], [], []
        for root in given:
            real = os.path.realpath(root)
            reason = system_reason(root, data_dirs=data_dirs, allowed_users=(user,))
            if reason or is_odoo_code(real):
                forbidden.append(reason or f"{root} is Odoo's own code")
                continue
            if context.roots:
                try:
                    fsutil.resolve_inside(root, context.roots)
                except fsutil.PathEscapeError as exc:
                    outside.append(str(exc))
                    continue
            if not os.path.lexists(real):
                notes.append(f"{root} does not exist; nothing to do there")
                continue
            if real not in roots:
                roots.append(real)

        named = as_list(params.get("path"))
        if params.get("from_log"):
            named += [p for p in paths_from_log(as_list(params["from_log"]),
                                                params.get("patterns")) if p not in named]
        targeted = bool(named) or bool(params.get("from_log"))

        symlinks, others, entries, seen, left_alone = [], [], [], set(), []

        def add(root, path, st):
            if path in seen:
                return
            seen.add(path)
            if stat.S_ISLNK(st.st_mode):
                symlinks.append(f"{path} -> {os.readlink(path)}")
            elif stat.S_ISREG(st.st_mode) and st.st_nlink > 1:
                others.append(f"{path} ({st.st_nlink} hard links)")
            elif stat.S_ISDIR(st.st_mode) or stat.S_ISREG(st.st_mode):
                entries.append(_entry(root, path, st))
            else:
                others.append(path)

        checks, skipped = [], []
        if targeted:
            for path in named:
                try:
                    real = fsutil.resolve_inside(path, roots) if roots else None
                except fsutil.PathEscapeError:
                    real = None
                root = _root_of(real, roots) if real else None
                if root is None:
                    skipped.append(f"{path}: outside the roots ({', '.join(roots) or 'none'})")
                    continue
                existing = real
                while not os.path.lexists(existing) and existing != root:
                    existing = os.path.dirname(existing)
                # the folders from the root down: the owner must be able to get there
                chain, folder = [], existing
                while folder != root:
                    folder = os.path.dirname(folder)
                    chain.append(folder)
                for folder in reversed(chain):
                    add(root, folder, os.lstat(folder))
                for found, st in _walk(existing, symlinks, others, left_alone):
                    add(root, found, st)
                kind = "dir" if os.path.isdir(existing) else "file"
                if [kind, existing] not in checks:
                    checks.append([kind, existing])
        else:
            for root in roots:
                for found, st in _walk(root, symlinks, others, left_alone):
                    add(root, found, st)
                checks.append(["dir" if os.path.isdir(root) else "file", root])

        changes = []
        for entry in entries:
            mode = want["dir"] if entry["kind"] == "dir" else \
                new_file_mode(want["file"], entry["mode"])
            new = {"new_mode": mode, "new_uid": uid, "new_gid": gid}
            if (entry["mode"], entry["uid"], entry["gid"]) != (new["new_mode"], uid, gid):
                changes.append({**entry, **new})
        # prove writes on the roots or named paths, and on a sample of what changed
        for change in changes:
            if len(checks) >= PROOF_LIMIT:
                break
            if [change["kind"], change["path"]] not in checks:
                checks.append([change["kind"], change["path"]])

        owner = f"{user}:{group}"
        steps = [
            "%s %s: %04o %s -> %04o %s" % (c["kind"], c["path"], c["mode"],
                                          _name(c["uid"], c["gid"]), c["new_mode"], owner)
            for c in changes[:STEP_LIMIT]]
        if len(changes) > STEP_LIMIT:
            steps.append(f"... and {len(changes) - STEP_LIMIT} more (all in the plan details)")
        steps += [f"skip symlink {s} (never followed, never changed)" for s in symlinks[:50]]
        steps += [f"skip {p} (not a plain file or folder)" for p in others[:50]]
        steps += [f"leave {why} (the system's, even below a root)" for why in left_alone[:50]]
        steps += [f"skip {s}" for s in skipped]
        steps += [f"note: {n}" for n in notes]
        if changes:
            steps.append(f"then check, as {owner}, that it can write in "
                         f"{len(checks)} place(s)")

        chown_needed = any((c["uid"], c["gid"]) != (uid, gid) for c in changes)
        preconditions = [
            Precondition("no root is a system location or Odoo's own code", not forbidden,
                         "refused: " + "; ".join(forbidden) if forbidden else ""),
            Precondition("the roots lie inside the allowed roots", not outside,
                         "; ".join(outside)),
            Precondition("at least one usable root exists", bool(roots),
                         "" if roots else "none of %s" % ", ".join(given) if given else
                         "the config names no folder inside the operator's roots (%s)"
                         % ", ".join(operator)),
        ]
        if targeted and not named:
            preconditions.append(Precondition(
                "the log names a path Odoo could not write", False,
                "no [Errno 13] Permission denied: '<path>' in it"))
        elif targeted:
            preconditions.append(Precondition(
                "a named path lies inside the roots", len(skipped) < len(named),
                "; ".join(skipped)))
        if chown_needed:
            preconditions.append(Precondition(
                "running as root (needed to change owners)", os.geteuid() == 0,
                "" if os.geteuid() == 0 else f"running as uid {os.geteuid()}"))
        target = ", ".join(os.path.realpath(p) for p in named) if targeted and named \
            else ", ".join(roots) or ", ".join(given)
        if changes:
            summary = ("set %s, folders %04o, files %04o on %d path(s)"
                       % (owner, dir_mode, file_mode, len(changes)))
        elif not roots:
            summary = "no root to work on"
        else:
            summary = (f"every path already has {owner}, folders {dir_mode:04o}, "
                       f"files {file_mode:04o}")
        return Plan(NAME, target, summary, steps=steps, preconditions=preconditions,
                    changes=bool(changes),
                    details={"owner": owner, "user": user, "uid": uid, "gid": gid,
                             "dir_mode": dir_mode, "file_mode": file_mode, "roots": roots,
                             "named": named, "changes": changes, "checks": checks,
                             "symlinks": symlinks, "skipped": skipped})

    def backup(self, context, plan):
        saved = []
        for change in plan.details["changes"]:
            mode, uid, gid = _check_entry(change)
            saved.append({k: change[k] for k in ("path", "root", "rel", "kind", "dev", "ino")}
                         | {"mode": mode, "uid": uid, "gid": gid})
        return {"entries": saved}

    def apply(self, context, plan, backup):
        changed = 0
        for change in plan.details["changes"]:
            want = (change["new_mode"], change["new_uid"], change["new_gid"])
            if _check_entry(change) != want:
                safefs.set_owner_mode(change["root"], change["rel"],
                                      (change["dev"], change["ino"]), change["new_uid"],
                                      change["new_gid"], change["new_mode"], change["kind"])
                changed += 1
        return (f"{changed} path(s) set to {plan.details['owner']}, folders "
                f"{plan.details['dir_mode']:04o}, files {plan.details['file_mode']:04o}")

    def verify(self, context, plan):
        wrong = []
        for change in plan.details["changes"]:
            try:
                now = _check_entry(change)
            except (OSError, EngineError) as exc:
                wrong.append(f"{change['path']}: {exc}")
                continue
            if now != (change["new_mode"], change["new_uid"], change["new_gid"]):
                wrong.append("%s is %04o %s" % (change["path"], now[0], _name(*now[1:])))
        if wrong:
            return False, "not as planned: " + "; ".join(wrong[:20])
        details = plan.details
        results = prove_writable(details["user"], details["uid"], details["gid"],
                                 details["checks"])
        denied = [f"{path}: {why}" for path, why in results.items() if why]
        if denied:
            return False, f"{details['owner']} still cannot write: " + "; ".join(denied[:20])
        return True, (f"{len(plan.details['changes'])} path(s) have {details['owner']} and "
                      f"the planned modes; {details['owner']} can write in "
                      f"{len(results)} place(s)")

    def rollback(self, context, plan, backup):
        errors, restored, same = [], 0, 0
        for entry in reversed((backup or {}).get("entries", [])):
            try:
                if _check_entry(entry) == (entry["mode"], entry["uid"], entry["gid"]):
                    same += 1
                    continue
                safefs.set_owner_mode(entry["root"], entry["rel"], (entry["dev"], entry["ino"]),
                                      entry["uid"], entry["gid"], entry["mode"], entry["kind"])
                restored += 1
            except (OSError, EngineError) as exc:
                errors.append(f"{entry['path']}: {exc}")
        if errors:
            raise ActionError("; ".join(errors[:20]))
        if not restored:
            return f"{same} path(s) still have their original mode and owner: nothing to roll back"
        return f"restored mode and owner of {restored} path(s)"
