"""Fix action ``restore_config``: put back a kept version of odoo.conf.

The versions are the ones ``bin/auto-heal backup --config`` keeps
(:mod:`engine.backup`)::

    plan     the version (file name or sha256 prefix) checked against its sha256;
      │      the unified diff current -> version, passwords masked
    backup   the current file: a new config version (engine.backup.backup_config)
      │      and fsutil.backup_file (bytes, mode, owner) for the rollback
    apply    still the planned bytes? engine.backup.restore_version (atomic,
      │      with the version's mode and owner)
    verify   configparser reads it, it has [options], its sha256 is the version's
    rollback the pre-restore bytes, mode and owner, exactly

Parameters: ``config`` (the odoo.conf to restore), ``version`` (a name in the
versions folder, or 8+ hex digits of its sha256), ``versions_dir`` (where
``backup`` keeps versions). ``context.roots``, when set, must hold ``config``.

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
import stat

from .. import backup as versions
from .. import fsutil
from ..errors import EngineError
from ..fixes.cron_fields import unified_diff
from ..secrets import mask_secrets
from .base import ActionError, FixAction, Plan, Precondition, register

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


def _read(path):
    with open(path, "rb") as fh:
        return fh.read()


@register
class RestoreConfig(FixAction):
    """Restore odoo.conf from a kept version, after showing the masked diff."""

    name = NAME
    runs_on = "host"
    needs = ("config", "version", "versions_dir")
    description = ("Restore odoo.conf from a version kept by `auto-heal backup`, after "
                   "showing the diff with passwords masked.")

    def plan(self, context, params):
        config = params["config"]
        if context.roots:
            real = fsutil.resolve_inside(config, context.roots)
        else:
            real = os.path.realpath(config)
        if not os.path.isfile(real):
            raise ActionError(f"config file not found: {config}")
        try:
            version = versions.find_version(params["versions_dir"], str(params["version"]))
        except EngineError as exc:
            raise ActionError(str(exc)) from None
        current = _read(real)
        st = os.stat(real)
        data = _read(version.path)
        intact = fsutil.sha256_bytes(data) == version.sha256
        parses, parse_detail = parses_as_odoo_config(data)
        same_bytes = fsutil.sha256_bytes(current) == version.sha256
        same_meta = (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid) == \
            (version.mode, version.uid, version.gid)
        steps = [f"restore {real} from {version.name} (kept {version.created_at}, "
                 f"sha256 {version.sha256[:12]}, mode {version.mode:04o}, "
                 f"owner {version.uid}:{version.gid})"]
        if same_bytes and not same_meta:
            steps.append("only the mode/owner differ: %04o %d:%d -> %04o %d:%d" % (
                stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid,
                version.mode, version.uid, version.gid))
        steps.append("keep the current file first (a new version, and a backup for rollback)")
        preconditions = [
            Precondition(f"version {version.name} is intact (sha256)", intact,
                         "" if intact else "its bytes do not match the recorded sha256"),
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
                    details={"config": real, "versions_dir": os.path.abspath(
                        params["versions_dir"]), "version": version.name,
                        "version_sha256": version.sha256,
                        "sha256_before": fsutil.sha256_bytes(current),
                        "mode": version.mode, "uid": version.uid, "gid": version.gid})

    def backup(self, context, plan):
        if not context.backup_dir:
            raise ActionError(f"{NAME}: no backup folder")
        config = plan.details["config"]
        kept = versions.backup_config(config, plan.details["versions_dir"])
        record = fsutil.backup_file(config, context.backup_dir)
        if record.sha256 != plan.details["sha256_before"]:
            raise ActionError(f"{config} changed since the plan was made; plan again")
        return {"file": record.to_dict(), "kept_version": kept.name}

    def apply(self, context, plan, backup):
        details = plan.details
        config = details["config"]
        if context.roots:
            fsutil.resolve_inside(config, context.roots)
        current = fsutil.sha256_bytes(_read(config))
        if current not in (details["sha256_before"], details["version_sha256"]):
            raise ActionError(f"{config} changed since the plan was made; plan again")
        version = versions.find_version(details["versions_dir"], details["version"])
        if version.sha256 != details["version_sha256"]:
            raise ActionError(f"version {details['version']} is not the planned one")
        versions.restore_version(version, path=config)
        return (f"restored {config} from {version.name}; the previous file is kept as "
                f"version {backup.get('kept_version')} and in {backup['file']['backup_path']}")

    def verify(self, context, plan):
        details = plan.details
        data = _read(details["config"])
        ok, detail = parses_as_odoo_config(data)
        if not ok:
            return False, f"{details['config']} does not parse as an Odoo config: {detail}"
        digest = fsutil.sha256_bytes(data)
        if digest != details["version_sha256"]:
            return False, (f"sha256 {digest[:12]} is not the version's "
                           f"{details['version_sha256'][:12]}")
        st = os.stat(details["config"])
        meta = (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid)
        if meta != (details["mode"], details["uid"], details["gid"]):
            return False, "mode/owner %04o %d:%d are not the version's" % meta
        return True, (f"{details['config']} parses ({detail}) and its sha256 "
                      f"{digest[:12]} is the version's")

    def rollback(self, context, plan, backup):
        record = fsutil.BackupRecord.from_dict(backup["file"])
        note = ""
        try:
            current = fsutil.sha256_bytes(_read(record.path))
        except FileNotFoundError:
            current = None
        if current not in (None, record.sha256, plan.details["version_sha256"]) \
                and context.backup_dir:
            kept = fsutil.backup_file(record.path, context.backup_dir)
            note = f" (it had changed since the restore; that content is kept in " \
                   f"{kept.backup_path})"
        fsutil.restore_backup(record)
        return f"put back {record.path} as it was before the restore{note}"
