"""fix-cron planning stays linear in the file's size (issue 14).

A data file with 20,000 ir.cron records to fix took 15 s to plan: line
numbers were counted from the start of the file for each removal, line
bounds searched back to offset 0 for a CR, and difflib aligned two almost
equal files. The diff is now written from the known cuts; it must stay the
diff difflib writes.
"""

import pytest

from engine import xmledit as cron_fields


def _file(records, newline="\n", tail=True):
    parts = ['<?xml version="1.0" encoding="utf-8"?>', "<odoo>"]
    for i in range(records):
        parts += [f'    <record id="cron_{i}" model="ir.cron">',
                  f'        <field name="name">Job {i}</field>',
                  '        <field name="numbercall">-1</field>',
                  '        <field name="doall" eval="False"/>',
                  '        <field name="interval_number">1</field>',
                  "    </record>"]
    parts.append("</odoo>")
    return (newline.join(parts) + (newline if tail else "")).encode()


def test_twenty_thousand_records_plan_every_removal():
    data = _file(10_000)
    plan = cron_fields.plan_bytes(data, "big.xml")
    assert len(plan.removals) == 20_000
    assert b"numbercall" not in plan.new and b"doall" not in plan.new
    assert [r.line for r in plan.removals[:4]] == [5, 6, 11, 12]
    assert plan.removals[-1].line == 2 + 6 * 9_999 + 4
    removed = [line for line in plan.diff.splitlines() if line.startswith("-    ")]
    assert len(removed) == 20_000


@pytest.mark.parametrize("data", [
    _file(40),
    _file(40, newline="\r\n"),
    _file(3, tail=False),
    # two removed fields on one line, and one sharing its line with a kept field
    b'<odoo>\n  <record id="a" model="ir.cron">\n'
    b'    <field name="numbercall">1</field> <field name="doall">1</field>\n'
    b'    <field name="name">x</field><field name="doall">0</field>\n'
    b'    <field name="numbercall">2</field><field name="name">y</field>\n'
    b'  </record>\n</odoo>\n',
], ids=["lf", "crlf", "no-final-newline", "shared-lines"])
def test_the_diff_is_the_one_difflib_writes(data):
    plan = cron_fields.plan_bytes(data, "/srv/addons/x/data/cron.xml")
    assert plan.diff == cron_fields.unified_diff(data, plan.new, "/srv/addons/x/data/cron.xml")


def test_a_file_past_libxml2s_line_65535_is_planned():
    """libxml2 reports lines past 65535 one too high; the spans still match them."""
    data = _file(12_000)  # 72,003 lines
    plan = cron_fields.plan_bytes(data, "big.xml")
    assert len(plan.removals) == 24_000
    assert plan.removals[-1].line == 2 + 6 * 11_999 + 4
    assert b"numbercall" not in plan.new and b"doall" not in plan.new
