"""remove_deprecated_cron_fields through the runner, on real module folders."""

import json
import os
import shutil

import pytest

from engine.actions import Context, get_action
from engine.actions.cron_fields import cron_fields_left
from engine.actions.runner import execute, rollback_run
from engine.actions.store import RunStore
from engine.audit import AuditLog
from engine.fsutil import sha256_bytes
from tools import samples

ACTION = "remove_deprecated_cron_fields"
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SAMPLE = os.path.join(REPO, "tests", "samples", "real", "odoo18-numbercall-startup-failure.log")
IS_ROOT = os.geteuid() == 0

#: The legacy module's cron file, plus the same field name on another model (kept).
CRON_XML = samples.CRON_XML.replace(b"</odoo>", b"""\
    <record id="not_a_cron" model="res.partner">
        <field name="numbercall">kept: not an ir.cron record</field>
    </record>
</odoo>""")
CRON_XML_FIXED = CRON_XML.replace(samples.DEPRECATED_FIELDS, b"")
NUMBERCALL, DOALL = samples.NUMBERCALL_LINE, samples.DOALL_LINE


@pytest.fixture
def module(tmp_path):
    folder = samples.legacy_cron_module(tmp_path / "addons")
    cron = folder / "data" / "cron.xml"
    cron.write_bytes(CRON_XML)
    os.chmod(cron, 0o604)
    if IS_ROOT:
        os.chown(cron, 65534, 65534)  # nobody: the owner must survive every step
    (folder / "data" / "views.xml").write_bytes(
        b"<odoo><record id='v' model='ir.ui.view'/></odoo>\n")
    return folder


@pytest.fixture
def context(tmp_path):
    return Context(actor="test", audit=AuditLog(str(tmp_path / "audit.jsonl")),
                   backup_dir=str(tmp_path / "backups"))


def _meta(path):
    st = os.stat(path)
    return st.st_mode & 0o7777, st.st_uid, st.st_gid


def test_plan_apply_verify_noop_rollback(module, context, tmp_path):
    cron = module / "data" / "cron.xml"
    before = _meta(cron)

    # 1. plan: nothing written; the diff and the removals are there
    planned = execute(ACTION, context, {"paths": [str(module)]}, dry_run=True)
    assert planned.state == "planned"
    assert planned.target == str(module)
    assert cron.read_bytes() == CRON_XML
    plan = planned.plan
    assert plan["changes"] and plan["reversible"]
    assert [r["field"] for r in plan["details"]["files"][0]["removals"]] == ["numbercall", "doall"]
    assert '-        <field name="numbercall">-1</field>\n' in plan["diff"]
    assert '-        <field name="doall" eval="False"/>\n' in plan["diff"]
    assert plan["details"]["unchanged"] == [str(module / "data" / "views.xml")]
    assert plan["steps"][0].startswith(f"remove numbercall (line {NUMBERCALL}, record "
                                       f"ir_cron_legacy), doall (line {DOALL}")

    # 2.+3. apply and verify
    store = RunStore(str(tmp_path / "runs"))
    record = store.save(execute(ACTION, context, {"paths": [str(module)]}))
    assert record.state == "done", record.error
    assert cron.read_bytes() == CRON_XML_FIXED
    assert _meta(cron) == before
    assert cron_fields_left(cron.read_bytes()) == []
    assert "verified: 1 file(s) parse with lxml" in record.output
    backup = record.backup["files"][0]
    assert open(backup["backup_path"], "rb").read() == CRON_XML
    assert (backup["mode"], backup["uid"], backup["gid"]) == before

    # 4. a second run changes nothing, backs up nothing
    copies = sorted(os.listdir(context.backup_dir))
    again = execute(ACTION, context, {"paths": [str(module)]})
    assert again.state == "noop"
    assert cron.read_bytes() == CRON_XML_FIXED
    assert sorted(os.listdir(context.backup_dir)) == copies

    # 5. rollback restores the exact bytes, mode and owner
    rollback_run(store.load(record.run_id), context)
    assert cron.read_bytes() == CRON_XML
    assert _meta(cron) == before
    lines = [json.loads(line) for line in open(context.audit.path)]
    assert [line["action"].split(".")[1] for line in lines if
            line["details"]["run_id"] == record.run_id] == ["plan", "apply", "verify", "rollback"]


def test_from_log_fixes_exactly_the_named_file(module, context, tmp_path):
    cron = module / "data" / "cron.xml"
    other = tmp_path / "addons" / "other"
    other.mkdir()
    shutil.copy(cron, other / "cron.xml")
    log = tmp_path / "odoo.log"
    log.write_text(open(SAMPLE).read().replace("/srv/addons/legacy_cron/data/cron.xml",
                                               str(cron)))
    context.roots = (str(tmp_path / "addons"),)
    record = execute(ACTION, context, {"from_log": [str(log)]})
    assert record.state == "done", record.error
    assert record.target == str(module)  # the module folder of the named file
    assert cron.read_bytes() == CRON_XML_FIXED
    assert (other / "cron.xml").read_bytes() == CRON_XML


def test_from_log_without_roots_is_blocked(module, context, tmp_path):
    """A log is text anyone can write: the files it names are never their own root."""
    log = tmp_path / "odoo.log"
    log.write_text(open(SAMPLE).read().replace("/srv/addons/legacy_cron/data/cron.xml",
                                               str(module / "data" / "cron.xml")))
    record = execute(ACTION, context, {"from_log": [str(log)]})
    assert record.state == "blocked"
    assert "from_log needs roots" in record.error
    assert (module / "data" / "cron.xml").read_bytes() == CRON_XML


def test_from_log_naming_a_missing_file_is_blocked(context, tmp_path):
    context.roots = (str(tmp_path),)
    record = execute(ACTION, context, {"from_log": [SAMPLE]})
    assert record.state == "blocked"
    assert "the log names an existing ir.cron XML file" in record.error
    assert "/srv/addons/legacy_cron/data/cron.xml" in record.error


def test_roots_refuse_a_file_outside(module, context, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    context.roots = (str(elsewhere),)
    record = execute(ACTION, context, {"paths": [str(module / "data" / "cron.xml")]})
    assert record.state == "blocked"
    assert "outside the allowed roots" in record.error
    assert (module / "data" / "cron.xml").read_bytes() == CRON_XML


def test_symlink_out_of_the_module_is_skipped(module, context, tmp_path):
    outside = tmp_path / "outside.xml"
    outside.write_bytes(CRON_XML)
    os.symlink(outside, module / "data" / "evil.xml")
    record = execute(ACTION, context, {"paths": [str(module)]})
    assert record.state == "done"
    assert outside.read_bytes() == CRON_XML
    assert any("outside the allowed roots" in s for s in record.plan["details"]["skipped"])


def test_malformed_xml_blocks_with_file_and_line(context, tmp_path):
    bad = tmp_path / "bad.xml"
    bad.write_bytes(b"<odoo>\n<record id='x' model='ir.cron'>\n</odoo>\n")
    record = execute(ACTION, context, {"paths": [str(bad)]})
    assert record.state == "blocked"
    assert f"{bad}:3: malformed XML" in record.error
    assert bad.read_bytes() == b"<odoo>\n<record id='x' model='ir.cron'>\n</odoo>\n"


def test_file_changed_between_plan_and_apply_is_refused(module, context):
    """The plan keeps the sha256 it was made from; apply refuses other bytes."""
    action = get_action(ACTION)
    cron = module / "data" / "cron.xml"
    plan = action.plan(context, {"paths": [str(module)]})
    manifest = action.backup(context, plan)
    edited = CRON_XML.replace(b"Legacy job", b"Edited job")
    cron.write_bytes(edited)
    with pytest.raises(Exception, match="changed since the plan was made"):
        action.apply(context, plan, manifest)
    assert cron.read_bytes() == edited
    # a rollback of such a run keeps the foreign edit in a backup before restoring
    out = action.rollback(context, plan, manifest)
    assert "that content is kept in" in out
    assert cron.read_bytes() == CRON_XML
    kept = [p for p in os.listdir(context.backup_dir) if not p.endswith(".json")]
    assert sorted(open(os.path.join(context.backup_dir, p), "rb").read() for p in kept) == \
        sorted([CRON_XML, edited])


def test_verify_measures_the_file(module, context):
    action = get_action(ACTION)
    plan = action.plan(context, {"paths": [str(module)]})
    ok, detail = action.verify(context, plan)  # not applied yet: the fields are there
    assert not ok
    assert f"still sets numbercall (line {NUMBERCALL}), doall (line {DOALL})" in detail
    assert sha256_bytes((module / "data" / "cron.xml").read_bytes()) == \
        plan.details["files"][0]["sha256_before"]


def test_system_locations_and_odoo_code_are_never_roots(context, tmp_path):
    """A file below /usr (Odoo's Debian package) is refused even when named."""
    context.roots = ("/usr/lib/python3/dist-packages", str(tmp_path))
    record = execute(ACTION, context, {"paths": ["/usr/lib/python3/dist-packages/odoo"]})
    assert record.state == "blocked"
    assert "outside the allowed roots" in record.error
    assert any("system location (below /usr)" in s
               for s in record.plan["details"]["skipped"])
