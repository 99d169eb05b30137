"""Fix action ``restore_config``: put back a kept version of odoo.conf.

The versions are the ones ``bin/auto-heal backup --config`` keeps
(:mod:`engine.backup`)::

    plan     the version (file name or sha256 prefix) checked against its sha256;
      │      the unified diff current -> version, passwords masked
    backup   still the planned snapshot (device, inode, size, mtime, sha256)?
      │      the current file: a new config version and a backup for rollback
    apply    still the planned bytes? engine.safefs.replace on descriptors
      │      (the version's bytes, mode and owner)
    verify   configparser reads it, it has [options], its sha256 is the version's
    rollback the pre-restore bytes, mode and owner, exactly

Parameters: ``config`` (the odoo.conf to restore), ``version`` (a name in the
versions folder, or 8+ hex digits of its sha256), ``versions_dir`` (where
``backup`` keeps versions). ``context.roots``, when set, must hold ``config``;
otherwise the config's own folder is its root. A config that is a symlink or
has several hard links is refused: the odoo user may own its folder.

>>> print(masked_diff(b"[options]\\ndb_password = old\\n", b"[options]\\ndb_password = new\\n",
...                   "/etc/odoo/odoo.conf"), end="")
--- a/etc/odoo/odoo.conf
+++ b/etc/odoo/odoo.conf
@@ -1,2 +1,2 @@
 [options]
-db_password = ***
+db_password = ***
"""

import configparser
import os

from .. import backup as versions
from .. import fsutil, safefs
from ..errors import EngineError
from ..fsutil import unified_diff
from ..secrets import mask_secrets
from .base import ActionError, FixAction, Plan, Precondition, register
from .params import DATA, HOST, Param

NAME = "restore_config"


def masked_diff(old, new, path):
    """A unified diff of two configs with every secret value masked, line by line."""
    lines = []
    for line in unified_diff(old, new, path).splitlines(keepends=True):
        if line[:1] in ("+", "-", " ") and not line.startswith(("---", "+++")):
            lines.append(line[0] + mask_secrets(line[1:]))
        else:
            lines.append(mask_secrets(line))
    return "".join(lines)


def parses_as_odoo_config(data):
    """``(ok, detail)``: configparser reads *data* and finds ``[options]``.

    >>> parses_as_odoo_config(b"[options]\\nworkers = 2\\n")
    (True, '[options] with 1 key(s)')
    >>> parses_as_odoo_config(b"workers = 2\\n")[0]
    False
    """
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    try:
        parser.read_string(data.decode("utf-8"))
    except (UnicodeDecodeError, configparser.Error) as exc:
        return False, " ".join(str(exc).split())[:300]
    if not parser.has_section("options"):
        return False, "no [options] section"
    return True, f"[options] with {len(parser.options('options'))} key(s)"


def _where(context, given, config):
    """``(root, rel, root_id)`` of the config: inside the operator's roots when
    set, else the file's own folder."""
    roots = given or context.roots
    if roots:
        try:
            root, rel = safefs.locate(config, roots)
        except safefs.UnsafeFileError as exc:
            raise ActionError(str(exc)) from None
    else:
        root, rel = fsutil.split_root(config)
    fd = safefs.open_dir(root)
    try:
        st = os.fstat(fd)
    finally:
        os.close(fd)
    return root, rel, [st.st_dev, st.st_ino]


def _current(details):
    """``(bytes, Snapshot)`` of the config now, or ``(None, None)`` when it is gone."""
    try:
        return safefs.read(details["root"], details["rel"], expect_root=details["root_id"])
    except FileNotFoundError:
        return None, None


@register
class RestoreConfig(FixAction):
    """Restore odoo.conf from a kept version, after showing the masked diff."""

    name = NAME
    runs_on = "host"
    params = (
        Param("config", "path", HOST, "the odoo.conf to restore", required=True,
              metavar="FILE"),
        Param("version", "text", DATA, "a kept version: its file name or 8+ hex digits of its "
              "sha256", required=True, metavar="VERSION"),
        Param("versions_dir", "path", HOST, "where `backup --config` keeps versions",
              required=True, option="--versions", metavar="DIR"),
        Param("roots", "paths", HOST, "a folder the config must lie in", option="--root",
              metavar="DIR"),
    )
    description = ("Restore odoo.conf from a version kept by `auto-heal backup`, after "
                   "showing the diff with passwords masked.")

    def plan(self, context, params):
        config = params["config"]
        root, rel, root_id = _where(context, params.get("roots"), config)
        real = os.path.join(root, rel)
        try:
            current, snap = safefs.read(root, rel, expect_root=root_id)
        except FileNotFoundError:
            raise ActionError(f"config file not found: {config}") from None
        try:
            version = versions.find_version(params["versions_dir"], str(params["version"]))
        except EngineError as exc:
            raise ActionError(str(exc)) from None
        try:
            data, intact, intact_detail = versions.read_version(version), True, ""
        except EngineError as exc:
            data, intact, intact_detail = b"", False, str(exc)
        parses, parse_detail = parses_as_odoo_config(data)
        same_bytes = snap.sha256 == version.sha256
        same_meta = (snap.mode, snap.uid, snap.gid) == (version.mode, version.uid, version.gid)
        steps = [f"restore {real} from {version.name} (kept {version.created_at}, "
                 f"sha256 {version.sha256[:12]}, mode {version.mode:04o}, "
                 f"owner {version.uid}:{version.gid})"]
        if same_bytes and not same_meta:
            steps.append("only the mode/owner differ: %04o %d:%d -> %04o %d:%d" % (
                snap.mode, snap.uid, snap.gid, version.mode, version.uid, version.gid))
        steps.append("keep the current file first (a new version, and a backup for rollback)")
        preconditions = [
            Precondition(f"version {version.name} is intact (sha256)", intact, intact_detail),
            Precondition("the version parses as an Odoo config", parses,
                         "" if parses else parse_detail),
            Precondition(f"the version was taken of {real}", version.source == real,
                         "" if version.source == real else f"it was taken of {version.source}"),
            Precondition(f"{os.path.dirname(real)} is writable",
                         os.access(os.path.dirname(real), os.W_OK | os.X_OK)),
        ]
        changes = not (same_bytes and same_meta)
        summary = (f"restore {real} from version {version.name}" if changes
                   else f"{real} already is version {version.name}")
        return Plan(NAME, real, summary, steps=steps,
                    diff=masked_diff(current, data, real), preconditions=preconditions,
                    changes=changes,
                    details={"config": real, "root": root, "rel": rel, "root_id": root_id,
                             "before": snap.to_dict(),
                             "versions_dir": os.path.abspath(params["versions_dir"]),
                             "version": version.name, "version_sha256": version.sha256,
                             "sha256_before": snap.sha256,
                             "mode": version.mode, "uid": version.uid, "gid": version.gid})

    def backup(self, context, plan):
        if not context.backup_dir:
            raise ActionError(f"{NAME}: no backup folder")
        details = plan.details
        data, snap = _current(details)
        planned = safefs.Snapshot.from_dict(details["before"])
        if snap is None or snap.differences(planned):
            raise ActionError(f"{details['config']} changed since the plan was made; plan again")
        kept = versions.backup_config(details["config"], details["versions_dir"])
        record = fsutil.backup_bytes(data, snap, details["root"], details["rel"],
                                     context.backup_dir)
        return {"file": record.to_dict(), "kept_version": kept.name}

    def apply(self, context, plan, backup):
        details = plan.details
        config = details["config"]
        _, snap = _current(details)
        if snap is None or snap.sha256 not in (details["sha256_before"],
                                               details["version_sha256"]):
            raise ActionError(f"{config} changed since the plan was made; plan again")
        version = versions.find_version(details["versions_dir"], details["version"])
        if version.sha256 != details["version_sha256"]:
            raise ActionError(f"version {details['version']} is not the planned one")
        data = versions.read_version(version)
        safefs.replace(details["root"], details["rel"], snap, data, mode=version.mode,
                       uid=version.uid, gid=version.gid, expect_root=details["root_id"])
        return (f"restored {config} from {version.name}; the previous file is kept as "
                f"version {backup.get('kept_version')} and in {backup['file']['backup_path']}")

    def verify(self, context, plan):
        details = plan.details
        data, snap = _current(details)
        if snap is None:
            return False, f"{details['config']} is gone"
        ok, detail = parses_as_odoo_config(data)
        if not ok:
            return False, f"{details['config']} does not parse as an Odoo config: {detail}"
        if snap.sha256 != details["version_sha256"]:
            return False, (f"sha256 {snap.sha256[:12]} is not the version's "
                           f"{details['version_sha256'][:12]}")
        meta = (snap.mode, snap.uid, snap.gid)
        if meta != (details["mode"], details["uid"], details["gid"]):
            return False, "mode/owner %04o %d:%d are not the version's" % meta
        return True, (f"{details['config']} parses ({detail}) and its sha256 "
                      f"{snap.sha256[:12]} is the version's")

    def rollback(self, context, plan, backup):
        from .cron_fields import restore_file

        record = fsutil.BackupRecord.from_dict(backup["file"])
        out = restore_file(record, plan.details["version_sha256"], context.backup_dir)
        return out.replace("it had changed since the fix", "it had changed since the restore")
