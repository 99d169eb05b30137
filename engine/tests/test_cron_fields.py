import os
import stat

import pytest
from lxml import etree

from engine import xmledit as cron_fields
from engine.errors import EngineError
from engine.xmledit import (
    CronFieldError,
    files_from_findings,
    find_xml_files,
    plan,
)


def test_removed_fields_match_odoo18_ir_cron():
    """Every field removed is really gone from Odoo 18's ir.cron (when its source is here)."""
    src = "/opt/odoo18/src/odoo/addons/base/models/ir_cron.py"
    if not os.path.exists(src):
        pytest.skip("no Odoo 18 source here")
    text = open(src).read()
    for name in cron_fields.REMOVED_FIELDS:
        assert "%s = fields." % name not in text
    # and the fields kept in XML files still exist
    for name in ("interval_number", "interval_type", "nextcall", "priority", "active", "user_id"):
        assert "%s = fields." % name in text


def _write(tmp_path, name, data):
    p = tmp_path / name
    p.write_bytes(data)
    return str(p)


def _apply(tmp_path, path):
    """The one apply path: the fix action, through the runner."""
    from engine.actions.runner import Context, execute
    from engine.audit import AuditLog

    context = Context(actor="test", audit=AuditLog(str(tmp_path / "audit.jsonl")),
                      backup_dir=str(tmp_path / "backups"))
    return execute("remove_deprecated_cron_fields", context, {"paths": [path]})


def _fix(tmp_path, path):
    p = plan(path)
    assert p is not None
    assert _apply(tmp_path, path).state == "done"
    with open(path, "rb") as fh:
        new = fh.read()
    assert new == p.new
    etree.fromstring(new)  # lxml parses the result
    assert plan(path) is None  # idempotent: the second run finds nothing
    return p, new


BOTH = b"""<?xml version="1.0" encoding="utf-8"?>
<odoo>
    <data noupdate="1">
        <record id="ir_cron_legacy" model="ir.cron">
            <field name="name">Legacy job</field>
            <field name="model_id" ref="base.model_res_partner"/>
            <field name="state">code</field>
            <field name="code">model._legacy()</field>
            <field name="interval_number">1</field>
            <field name="interval_type">days</field>
            <field name="numbercall">-1</field>
            <field name="doall" eval="False"/>

            <field name="active" eval="True"/>
        </record>
    </data>
</odoo>
"""

BOTH_FIXED = b"""<?xml version="1.0" encoding="utf-8"?>
<odoo>
    <data noupdate="1">
        <record id="ir_cron_legacy" model="ir.cron">
            <field name="name">Legacy job</field>
            <field name="model_id" ref="base.model_res_partner"/>
            <field name="state">code</field>
            <field name="code">model._legacy()</field>
            <field name="interval_number">1</field>
            <field name="interval_type">days</field>

            <field name="active" eval="True"/>
        </record>
    </data>
</odoo>
"""


def test_numbercall_and_doall_together(tmp_path):
    path = _write(tmp_path, "cron.xml", BOTH)
    p, new = _fix(tmp_path, path)
    assert new == BOTH_FIXED
    assert [(r.line, r.field, r.record_id) for r in p.removals] == [
        (11, "numbercall", "ir_cron_legacy"),
        (12, "doall", "ir_cron_legacy"),
    ]
    label = path.lstrip("/")
    assert p.diff == (
        "--- a/%s\n+++ b/%s\n" % (label, label) + "@@ -8,8 +8,6 @@\n"
        '             <field name="code">model._legacy()</field>\n'
        '             <field name="interval_number">1</field>\n'
        '             <field name="interval_type">days</field>\n'
        '-            <field name="numbercall">-1</field>\n'
        '-            <field name="doall" eval="False"/>\n'
        " \n"
        '             <field name="active" eval="True"/>\n'
        "         </record>\n"
    )


def test_only_doall(tmp_path):
    src = (
        b'<odoo>\n  <record id="c" model="ir.cron">\n'
        b'    <field name="name">x</field>\n'
        b'    <field name="doall">1</field>\n'
        b"  </record>\n</odoo>\n"
    )
    path = _write(tmp_path, "c.xml", src)
    p, new = _fix(tmp_path, path)
    assert (
        new == b'<odoo>\n  <record id="c" model="ir.cron">\n'
        b'    <field name="name">x</field>\n  </record>\n</odoo>\n'
    )
    assert [r.field for r in p.removals] == ["doall"]


def test_self_closing_text_and_multiline_forms(tmp_path):
    src = (
        b"<odoo>\n"
        b'<record id="a" model="ir.cron">\n'
        b'  <field name="numbercall" eval="-1"/>\n'
        b'  <field name="doall"\n'
        b'         eval="True" />\n'
        b'  <field name="priority">5</field>\n'
        b"</record>\n"
        b'<record id="b" model="ir.cron">\n'
        b'  <field name="numbercall">-1</field>\n'
        b'  <field name="doall"></field>\n'
        b"</record>\n"
        b"</odoo>\n"
    )
    path = _write(tmp_path, "forms.xml", src)
    p, new = _fix(tmp_path, path)
    assert new == (
        b"<odoo>\n"
        b'<record id="a" model="ir.cron">\n'
        b'  <field name="priority">5</field>\n'
        b"</record>\n"
        b'<record id="b" model="ir.cron">\n'
        b"</record>\n"
        b"</odoo>\n"
    )
    assert [(r.line, r.field, r.record_id) for r in p.removals] == [
        (3, "numbercall", "a"),
        (4, "doall", "a"),
        (9, "numbercall", "b"),
        (10, "doall", "b"),
    ]


def test_single_quotes_and_gt_inside_attribute(tmp_path):
    src = (
        b"<?xml version='1.0' encoding='UTF-8'?>\n"
        b"<odoo>\n"
        b"  <record id='q' model='ir.cron'>\n"
        b"    <field name='code'>model.run(x='>')</field>\n"
        b"    <field name='numbercall' eval='-1'/>\n"
        b"    <field name='doall' eval=\"'a>b' and False\"/>\n"
        b"  </record>\n"
        b"</odoo>\n"
    )
    path = _write(tmp_path, "q.xml", src)
    _, new = _fix(tmp_path, path)
    assert new == (
        b"<?xml version='1.0' encoding='UTF-8'?>\n"
        b"<odoo>\n"
        b"  <record id='q' model='ir.cron'>\n"
        b"    <field name='code'>model.run(x='>')</field>\n"
        b"  </record>\n"
        b"</odoo>\n"
    )


def test_comments_right_next_to_the_fields_are_kept(tmp_path):
    src = (
        b"<odoo>\n"
        b'  <record id="c" model="ir.cron">\n'
        b'    <!-- run forever, and catch up: <field name="numbercall">-1</field> -->\n'
        b'    <field name="numbercall">-1</field><!-- forever -->\n'
        b'    <!-- catch up --><field name="doall" eval="True"/>\n'
        b'    <field name="name">n</field> <field name="doall" eval="0"/>'
        b'   <field name="numbercall">2</field>\n'
        b"  </record>\n"
        b"</odoo>\n"
    )
    path = _write(tmp_path, "c.xml", src)
    p, new = _fix(tmp_path, path)
    assert new == (
        b"<odoo>\n"
        b'  <record id="c" model="ir.cron">\n'
        b'    <!-- run forever, and catch up: <field name="numbercall">-1</field> -->\n'
        b"    <!-- forever -->\n"
        b"    <!-- catch up -->\n"
        b'    <field name="name">n</field>\n'
        b"  </record>\n"
        b"</odoo>\n"
    )
    assert [(r.line, r.field) for r in p.removals] == [
        (4, "numbercall"),
        (5, "doall"),
        (6, "doall"),
        (6, "numbercall"),
    ]


NON_CRON = b"""<odoo>
    <record id="partner_x" model="res.partner">
        <field name="name">Has a numbercall field</field>
        <field name="numbercall">3</field>
        <field name="doall" eval="True"/>
    </record>
    <record id="view_x" model="ir.ui.view">
        <field name="arch" type="xml">
            <data>
                <record model="ir.cron"><field name="numbercall">1</field></record>
            </data>
        </field>
    </record>
</odoo>
"""


def test_non_cron_records_are_not_touched(tmp_path):
    path = _write(tmp_path, "partner.xml", NON_CRON)
    assert plan(path) is None
    assert open(path, "rb").read() == NON_CRON
    # mixed with a cron record in one file: only the cron's fields go
    mixed = NON_CRON.replace(
        b"</odoo>",
        b'    <record id="c" model="ir.cron">\n'
        b'        <field name="numbercall">-1</field>\n    </record>\n</odoo>',
    )
    path = _write(tmp_path, "mixed.xml", mixed)
    p, new = _fix(tmp_path, path)
    assert new == NON_CRON.replace(
        b"</odoo>", b'    <record id="c" model="ir.cron">\n    </record>\n</odoo>'
    )
    assert [(r.field, r.record_id) for r in p.removals] == [("numbercall", "c")]


def test_openerp_root_and_not_odoo_files(tmp_path):
    src = (
        b'<?xml version="1.0"?>\n<openerp>\n<data>\n<data>\n'
        b'<record model="ir.cron" id="old"><field name="doall" eval="1"/>'
        b'<field name="name">n</field></record>\n'
        b"</data>\n</data>\n</openerp>\n"
    )
    path = _write(tmp_path, "old.xml", src)
    _, new = _fix(tmp_path, path)
    assert new == src.replace(b'<field name="doall" eval="1"/>', b"")
    other = _write(
        tmp_path,
        "other.xml",
        b'<templates><record model="ir.cron"><field name="doall"/></record></templates>\n',
    )
    assert plan(other) is None


def test_latin1_declared_encoding_bytes_preserved(tmp_path):
    src = (
        b'<?xml version="1.0" encoding="iso-8859-1"?>\n'
        b"<odoo>\n"
        b"  <!-- t\xe2che planifi\xe9e -->\n"
        b'  <record id="cron_\xe9t\xe9" model="ir.cron">\n'
        b'    <field name="name">R\xe9sum\xe9 quotidien</field>\n'
        b'    <field name="numbercall">-1</field>\n'
        b'    <field name="doall" eval="False"/>\n'
        b"  </record>\n"
        b"</odoo>\n"
    )
    path = _write(tmp_path, "latin1.xml", src)
    p, new = _fix(tmp_path, path)
    assert new == (
        b'<?xml version="1.0" encoding="iso-8859-1"?>\n'
        b"<odoo>\n"
        b"  <!-- t\xe2che planifi\xe9e -->\n"
        b'  <record id="cron_\xe9t\xe9" model="ir.cron">\n'
        b'    <field name="name">R\xe9sum\xe9 quotidien</field>\n'
        b"  </record>\n"
        b"</odoo>\n"
    )
    assert p.encoding.lower() == "iso-8859-1"
    assert p.removals[0].record_id == "cron_\xe9t\xe9"
    assert '-    <field name="numbercall">-1</field>\n' in p.diff
    assert etree.fromstring(new).find("record").get("id") == "cron_\xe9t\xe9"


def test_crlf_line_endings(tmp_path):
    src = BOTH.replace(b"\n", b"\r\n")
    path = _write(tmp_path, "crlf.xml", src)
    p, new = _fix(tmp_path, path)
    assert new == BOTH_FIXED.replace(b"\n", b"\r\n")
    assert b"\n" not in new.replace(b"\r\n", b"")
    assert [r.line for r in p.removals] == [11, 12]
    assert '-            <field name="numbercall">-1</field>\r\n' in p.diff


def test_no_trailing_newline_and_bom(tmp_path):
    src = (
        b'\xef\xbb\xbf<odoo><record id="x" model="ir.cron">'
        b'<field name="doall">1</field></record></odoo>'
    )
    path = _write(tmp_path, "bom.xml", src)
    p, new = _fix(tmp_path, path)
    assert new == b'\xef\xbb\xbf<odoo><record id="x" model="ir.cron"></record></odoo>'
    assert p.diff.endswith("\\ No newline at end of file\n")


def test_malformed_xml_names_file_and_line_and_leaves_it(tmp_path):
    src = (
        b'<odoo>\n  <record id="x" model="ir.cron">\n'
        b'    <field name="numbercall">-1</field>\n</odoo>\n'
    )
    path = _write(tmp_path, "broken.xml", src)
    with pytest.raises(CronFieldError) as exc:
        plan(path)
    msg = str(exc.value)
    assert msg.startswith("%s:4: malformed XML: " % path)
    assert "\n" not in msg
    assert isinstance(exc.value, EngineError)
    assert exc.value.line == 4
    assert open(path, "rb").read() == src
    for junk in (b"\x00\x01\x02\xff" * 10, b"\xff\xfe<\x00o\x00>\x00", b"not xml at all\n"):
        p2 = _write(tmp_path, "junk.xml", junk)
        with pytest.raises(CronFieldError, match="junk.xml:1: "):
            plan(p2)
    # Odoo ships empty data files: nothing to fix, not an error
    assert plan(_write(tmp_path, "empty.xml", b"\n")) is None


def test_entities_and_namespaces_are_handled_like_odoo(tmp_path):
    ent = (
        b"<!DOCTYPE odoo [<!ENTITY x \"<field name='doall'>1</field>\">]>\n"
        b'<odoo><record id="a" model="ir.cron">&x;'
        b'<field name="numbercall">1</field></record></odoo>\n'
    )
    path = _write(tmp_path, "ent.xml", ent)
    with pytest.raises(
        CronFieldError, match=r"ent.xml:2: ir.cron record 'a' uses an entity reference"
    ):
        plan(path)
    assert open(path, "rb").read() == ent
    # odoo/tools/convert.py matches tags without a namespace: so do we
    ns = (
        b'<odoo xmlns:x="urn:x"><x:record id="a" model="ir.cron">'
        b'<field name="numbercall">1</field></x:record>'
        b'<record id="b" model="ir.cron"><x:field name="doall"/>'
        b'<field name="doall"/></record></odoo>'
    )
    p = plan(_write(tmp_path, "ns.xml", ns))
    assert p.new == ns.replace(b'<field name="doall"/>', b"")


def test_missing_file(tmp_path):
    with pytest.raises(CronFieldError, match="cannot read"):
        plan(str(tmp_path / "nope.xml"))


def test_apply_keeps_mode_and_backup(tmp_path):
    path = _write(tmp_path, "c.xml", BOTH)
    os.chmod(path, 0o640)
    record = _apply(tmp_path, path)
    assert record.state == "done", record.error
    backup = record.backup["files"][0]
    assert open(backup["backup_path"], "rb").read() == BOTH
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o640
    assert open(path, "rb").read() == BOTH_FIXED


def test_find_xml_files(tmp_path):
    root = tmp_path / "addons"
    (root / "m" / "data").mkdir(parents=True)
    (root / ".git").mkdir()
    (root / ".git" / "x.xml").write_text("<odoo/>")
    (root / "m" / "data" / "cron.xml").write_text("<odoo/>")
    (root / "m" / "data" / "notes.txt").write_text("x")
    (root / "m" / "views.XML").write_text("<odoo/>")
    outside = tmp_path / "outside.xml"
    outside.write_text("<odoo/>")
    os.symlink(outside, root / "m" / "evil.xml")
    skipped = []
    files = find_xml_files(
        [str(root), str(root / "m" / "data" / "cron.xml")], on_skip=lambda p, r: skipped.append(p)
    )
    assert files == [str(root / "m" / "data" / "cron.xml"), str(root / "m" / "views.XML")]
    assert skipped == [str(root / "m" / "evil.xml")]
    with pytest.raises(CronFieldError, match="no such file"):
        find_xml_files([str(tmp_path / "missing")])


class _F:
    def __init__(self, pattern_type, captures):
        self.pattern_type = pattern_type
        self.captures = captures


def test_files_from_findings_existing_only(tmp_path):
    a = _write(tmp_path, "a.xml", b"<odoo/>")
    findings = [
        _F("cron_field_deprecated", {"xml_file": a, "xml_line": "3"}),
        _F("cron_field_deprecated", {"xml_file": a, "xml_line": "9"}),
        _F("cron_field_deprecated", {"xml_file": str(tmp_path / "gone.xml")}),
        _F("view_tree_renamed", {"xml_file": a}),
        _F("cron_field_deprecated", {}),
    ]
    assert files_from_findings(findings) == [a]


SAMPLE = os.path.join(
    os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
    "tests",
    "samples",
    "real",
    "odoo18-numbercall-startup-failure.log",
)


def test_files_from_log_real_sample(tmp_path):
    from engine.patterns import load_patterns
    from engine.scanner import DEFAULT_PATTERNS

    patterns = load_patterns(DEFAULT_PATTERNS)
    # the real log names a file of another machine: reported, not returned
    assert cron_fields.files_from_log(SAMPLE, patterns) == (
        [],
        ["/srv/addons/legacy_cron/data/cron.xml"],
    )
    # the same log naming a file that exists here
    xml = _write(tmp_path, "cron.xml", BOTH)
    log = tmp_path / "odoo.log"
    log.write_text(open(SAMPLE).read().replace("/srv/addons/legacy_cron/data/cron.xml", xml))
    assert cron_fields.files_from_log(str(log), patterns) == ([xml], [])
