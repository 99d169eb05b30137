"""Fix action ``remove_deprecated_cron_fields``: fix-cron as a runner action.

Odoo 18 refuses ``numbercall`` and ``doall`` on ``ir.cron``; a module whose
data XML still sets them stops Odoo with "Failed to initialize database".
This action wraps :mod:`engine.xmledit` (which finds the byte spans
to cut and proves the result equals the old tree minus those fields) into the
five steps of :mod:`engine.actions.base`::

    params {"paths": [...]} or {"from_log": [...]}
        │
      plan     every XML file, its removals, one unified diff, sha256 before/after
        │
      backup   per file, read on descriptors: still the planned snapshot
        │      (device, inode, size, mtime, sha256)? keep bytes, mode, owner
      apply    per file: still the planned snapshot? cut, engine.safefs.replace
        │      (temporary file and rename in the folder's descriptor, compared
        │      once more right before the rename)
        │
      verify   lxml re-parse: no ir.cron record sets numbercall/doall, sha256 as planned
        │
      rollback restore_backup per file (exact bytes, mode, owner)

Parameters:

``paths``
    XML files or module folders (searched recursively for ``*.xml``).
``from_log``
    Odoo log files: fix exactly the XML files their ``cron_field_deprecated``
    errors name (``patterns`` names another patterns file).

Roots: ``context.roots`` when given, else the paths themselves (a folder, or
a file's own folder); ``from_log`` needs ``context.roots`` (a log names files
anyone could have written there). A system location or Odoo's own code is
never a root (:mod:`engine.roots`). Every file is read and written on
descriptors (:mod:`engine.safefs`): a symlink or hard link below a root is
refused. The target (what the budget counts) is the module folder, or the one
file or folder given.

>>> import os, tempfile
>>> from engine.actions.runner import Context, execute
>>> from engine.audit import AuditLog
>>> d = tempfile.mkdtemp()
>>> os.makedirs(os.path.join(d, "legacy", "data"))
>>> xml = os.path.join(d, "legacy", "data", "cron.xml")
>>> with open(xml, "wb") as fh:
...     _ = fh.write(b'<odoo><record id="c" model="ir.cron">'
...                  b'<field name="numbercall">-1</field></record></odoo>\\n')
>>> ctx = Context(audit=AuditLog(os.path.join(d, "audit.jsonl")),
...               backup_dir=os.path.join(d, "backups"))
>>> execute("remove_deprecated_cron_fields", ctx, {"paths": [xml]}).state
'done'
>>> open(xml, "rb").read()
b'<odoo><record id="c" model="ir.cron"></record></odoo>\\n'
>>> execute("remove_deprecated_cron_fields", ctx, {"paths": [xml]}).state
'noop'
"""

import os

from lxml import etree

from .. import fsutil, safefs
from .. import xmledit as fixes
from ..errors import EngineError
from ..roots import is_odoo_code, system_reason
from ..secrets import mask_secrets
from .base import ActionError, FixAction, Plan, Precondition, register
from .params import DATA, HOST, Param

NAME = "remove_deprecated_cron_fields"


def as_list(value):
    """A parameter that may be one string or a list of them, as a list.

    >>> as_list("a"), as_list(["a", "b"]), as_list(None)
    (['a'], ['a', 'b'], [])
    """
    if value in (None, "", [], ()):
        return []
    if isinstance(value, (str, os.PathLike)):
        return [os.fspath(value)]
    return [os.fspath(v) for v in value]


def load_pattern_set(path=None):
    """The patterns to read logs with: *path*, else the default patterns file."""
    from ..patterns import load_patterns
    from ..scanner import DEFAULT_PATTERNS

    return load_patterns(path or os.environ.get("AUTO_HEAL_PATTERNS") or DEFAULT_PATTERNS)


def module_folder(path):
    """The nearest folder above *path* holding ``__manifest__.py``, or None."""
    folder = os.path.dirname(path)
    while folder and folder != os.path.dirname(folder):
        if os.path.isfile(os.path.join(folder, "__manifest__.py")):
            return folder
        folder = os.path.dirname(folder)
    return None


def _target(inputs, files):
    """What the run is about: the one path given (a file or a module folder),
    else the module folder of all the files, else their common folder."""
    if len(inputs) == 1:
        return os.path.realpath(inputs[0])
    modules = {module_folder(f) for f in files}
    if len(modules) == 1 and None not in modules:
        return modules.pop()
    if len(files) > 1:
        return os.path.commonpath(files)
    if files:
        return files[0]
    return ", ".join(os.path.realpath(p) for p in inputs)


def cron_fields_left(data):
    """(record id, field, line) of every ir.cron field Odoo 18 refuses in *data*.

    An independent lxml look at the bytes, used by verify.

    >>> cron_fields_left(b'<odoo><record id="x" model="ir.cron">'
    ...                  b'<field name="doall">1</field></record></odoo>')
    [('x', 'doall', 1)]
    """
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False,
                             huge_tree=True)
    root = etree.fromstring(data, parser)
    names = " or ".join("@name='%s'" % name for name in fixes.REMOVED_FIELDS)
    # a <record> inside a <field> (a view's arch) is text to Odoo, not a record
    return [(el.getparent().get("id", ""), el.get("name"), el.sourceline)
            for el in root.xpath("//record[@model='ir.cron'][not(ancestor::field)]"
                                 "/field[%s]" % names)]


def _root_id(root):
    """``(dev, ino)`` of a root folder, walked on descriptors."""
    fd = safefs.open_dir(root)
    try:
        st = os.fstat(fd)
        return [st.st_dev, st.st_ino]
    finally:
        os.close(fd)


def _roots_for(context, given, paths, logs):
    """The real roots the files must lie in: the operator's (*given*, bounded by
    ``context.roots``), else the paths given.

    Files named by a log are never their own root: a log is text anyone can
    write, so ``from_log`` needs configured roots.
    """
    if given:
        for root in given:
            if context.roots:
                try:
                    fsutil.resolve_inside(root, context.roots)
                except fsutil.PathEscapeError as exc:
                    raise ActionError(str(exc)) from None
        return [os.path.realpath(r) for r in given]
    if context.roots:
        return [os.path.realpath(r) for r in context.roots]
    if logs and not paths:
        raise ActionError(f"{NAME}: from_log needs roots (--root, or [fixes] roots): the "
                          "files a log names are never their own root")
    roots = []
    for path in paths:
        real = os.path.realpath(path)
        roots.append(real if os.path.isdir(real) else os.path.dirname(real))
    return list(dict.fromkeys(roots))


@register
class RemoveDeprecatedCronFields(FixAction):
    """Remove numbercall and doall from ir.cron records of Odoo XML data files."""

    name = NAME
    runs_on = "host"
    description = ("Remove the ir.cron fields Odoo 18 no longer has (numbercall, doall) "
                   "from module XML data files, all at once.")
    params = (
        Param("paths", "paths", DATA, "an XML file or module folder to fix, inside the roots",
              capture="xml_file", aliases=("path",), option="--path", metavar="PATH"),
        Param("from_log", "paths", HOST, "fix the XML files this Odoo log's errors name",
              metavar="LOG"),
        Param("roots", "paths", HOST, "a folder this fix may touch (needed with --from-log)",
              option="--root", metavar="DIR"),
        Param("patterns", "path", HOST, "the patterns file to read --from-log with",
              metavar="FILE"),
    )

    def check(self, params):
        if not params.get("paths") and not params.get("from_log"):
            raise ActionError(f"{NAME} needs paths or from_log")

    def plan(self, context, params):
        paths = as_list(params.get("paths"))
        logs = as_list(params.get("from_log"))
        skipped, missing, files, outside = [], [], [], []
        roots = []
        for root in _roots_for(context, as_list(params.get("roots")), paths, logs):
            reason = system_reason(root) or (is_odoo_code(root) and f"{root} is Odoo's own code")
            if reason:
                skipped.append(f"root {reason}: never fixed")
            else:
                roots.append(root)
        for path in paths:
            try:
                safefs.locate(path, roots)
            except safefs.UnsafeFileError as exc:  # not even walked
                outside.append(str(exc))
                continue
            found = fixes.find_xml_files([path], on_skip=lambda p, why: skipped.append(why))
            files.extend(f for f in found if f not in files)
        if logs:
            pattern_set = load_pattern_set(params.get("patterns"))
            for log in logs:
                if not os.path.isfile(log):
                    raise ActionError(f"log file not found: {log}")
                found, gone = fixes.files_from_log(log, pattern_set)
                files.extend(f for f in found if f not in files)
                missing.extend(g for g in gone if g not in missing)

        changes, unchanged, diffs, steps = [], [], [], []
        root_ids = {}
        for path in files:
            try:
                root, rel = safefs.locate(path, roots)
                if root not in root_ids:
                    root_ids[root] = _root_id(root)
                data, snap = safefs.read(root, rel, expect_root=root_ids[root])
            except (OSError, EngineError) as exc:
                outside.append(str(exc) if isinstance(exc, EngineError)
                               else f"{path}: {exc.strerror or exc}")
                continue
            shown = os.path.join(root, rel)
            planned = fixes.plan_bytes(data, shown)  # CronFieldError names the file and line
            if planned is None:
                unchanged.append(shown)
                continue
            removed = ", ".join(
                "%s (line %d%s)" % (r.field, r.line, ", record %s" % r.record_id
                                    if r.record_id else "") for r in planned.removals)
            steps.append(f"remove {removed} from {shown}")
            diffs.append(planned.diff)
            changes.append({
                "path": shown, "root": root, "rel": rel, "root_id": root_ids[root],
                "before": snap.to_dict(),
                "sha256_before": snap.sha256,
                "sha256_after": fsutil.sha256_bytes(planned.new),
                "removals": [r.to_dict() for r in planned.removals],
            })
        for path in unchanged:
            steps.append(f"leave {path}: no ir.cron record sets numbercall or doall")
        for reason in skipped + outside:
            steps.append(f"skip {reason}")
        for path in missing:
            steps.append(f"skip {path}: named in the log, but not on this host")

        preconditions = [Precondition(
            "the XML files to fix are inside the allowed roots, on no symlink or hard link",
            not outside, "; ".join(outside))]
        if logs:
            preconditions.append(Precondition(
                "the log names an existing ir.cron XML file", bool(files),
                "" if files else "named but missing here: %s" % (", ".join(missing) or "none")))
        for change in changes:
            folder = os.path.dirname(change["path"])
            preconditions.append(Precondition(
                f"{folder} is writable (atomic write needs a temporary file there)",
                os.access(folder, os.W_OK | os.X_OK)))
        target = _target(paths, [c["path"] for c in changes] + unchanged or files) \
            if (paths or files) else ", ".join(logs)
        summary = ("remove numbercall/doall from %d file(s)" % len(changes) if changes
                   else "no ir.cron record sets numbercall or doall")
        return Plan(NAME, target, summary, steps=steps,
                    diff=mask_secrets("".join(diffs)), preconditions=preconditions,
                    changes=bool(changes),
                    details={"roots": roots, "files": changes, "unchanged": unchanged,
                             "missing": missing, "skipped": skipped + outside})

    def backup(self, context, plan):
        if not context.backup_dir:
            raise ActionError(f"{NAME}: no backup folder")
        records = []
        for change in plan.details["files"]:
            data, snap = safefs.read(change["root"], change["rel"],
                                     expect_root=change["root_id"])
            planned = safefs.Snapshot.from_dict(change["before"])
            if snap.differences(planned):
                raise ActionError(f"{change['path']} changed since the plan was made "
                                  f"({', '.join(snap.differences(planned))}); plan again")
            record = fsutil.backup_bytes(data, snap, change["root"], change["rel"],
                                         context.backup_dir)
            records.append(record.to_dict())
        return {"files": records}

    def apply(self, context, plan, backup):
        out = []
        for change in plan.details["files"]:
            path = change["path"]
            data, snap = safefs.read(change["root"], change["rel"],
                                     expect_root=change["root_id"])
            if snap.sha256 == change["sha256_after"]:
                out.append(f"{path}: already fixed")
                continue
            planned_snap = safefs.Snapshot.from_dict(change["before"])
            if snap.differences(planned_snap):
                raise ActionError(f"{path} changed since the plan was made "
                                  f"({', '.join(snap.differences(planned_snap))}); plan again")
            planned = fixes.plan_bytes(data, path)
            if planned is None or fsutil.sha256_bytes(planned.new) != change["sha256_after"]:
                raise ActionError(f"{path}: the fix no longer gives the planned bytes")
            safefs.replace(change["root"], change["rel"], planned_snap, planned.new,
                           expect_root=change["root_id"])
            removed = ", ".join(r["field"] for r in change["removals"])
            out.append(f"fixed {path}: removed {removed}")
        return "\n".join(out)

    def verify(self, context, plan):
        problems, checked = [], 0
        for change in plan.details["files"]:
            path = change["path"]
            try:
                data, _ = safefs.read(change["root"], change["rel"],
                                      expect_root=change["root_id"])
                left = cron_fields_left(data)
            except (OSError, EngineError, etree.XMLSyntaxError) as exc:
                problems.append(f"{path}: {exc}")
                continue
            if left:
                problems.append("%s still sets %s" % (path, ", ".join(
                    "%s (line %s)" % (name, line) for _, name, line in left)))
            elif fsutil.sha256_bytes(data) != change["sha256_after"]:
                problems.append(f"{path} does not hold the planned bytes")
            checked += 1
        if problems:
            return False, "; ".join(problems)
        return True, (f"{checked} file(s) parse with lxml and no ir.cron record sets "
                      "numbercall or doall")

    def rollback(self, context, plan, backup):
        out, errors = [], []
        after = {c["path"]: c["sha256_after"] for c in plan.details.get("files", [])}
        for data in (backup or {}).get("files", []):
            record = fsutil.BackupRecord.from_dict(data)
            try:
                out.append(restore_file(record, after.get(record.path), context.backup_dir))
            except (OSError, EngineError) as exc:
                errors.append(f"{record.path}: {exc}")
        if errors:
            raise ActionError("; ".join(errors))
        return "\n".join(out)


def restore_file(record, sha_after, backup_dir):
    """Put *record* back on descriptors; keep a copy of content that is neither
    ours nor the original. Returns what was done, for the run's output."""
    data, current = fsutil.current_state(record)
    note = ""
    if current is not None and current.sha256 not in (record.sha256, sha_after) and backup_dir:
        root, rel = record.where()
        kept = fsutil.backup_bytes(data, current, root, rel, backup_dir)
        note = f" (it had changed since the fix; that content is kept in {kept.backup_path})"
    if not fsutil.restore_backup(record, current):
        return f"{record.path} still holds its original bytes: nothing to roll back"
    return f"restored {record.path} from {record.backup_path}{note}"
