"""Samples the tests of every floor share: pytest's (engine/, host/, tools/) and the
addon's Odoo tests (``from ..tools.samples import ...``), so the standard library
only.

The legacy cron module is the fixture that made the real Odoo 18 logs of
tests/samples/real/ (tests/samples/fixtures/addons/ah_fx_cron_legacy): an
installable module whose ``data/cron.xml`` still sets ``numbercall`` and
``doall``, the two ir.cron fields Odoo 18 removed.

>>> CRON_RECORD_LINE, NUMBERCALL_LINE, DOALL_LINE
(3, 10, 11)
>>> b"numbercall" in CRON_XML_FIXED or b"doall" in CRON_XML_FIXED
False
"""

import shutil
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
FIXTURES = REPO / "tests" / "samples" / "fixtures"
LEGACY_CRON_MODULE = FIXTURES / "addons" / "ah_fx_cron_legacy"

#: The legacy module's cron file, and the same once both fields are removed.
CRON_XML = (LEGACY_CRON_MODULE / "data" / "cron.xml").read_bytes()
DEPRECATED_FIELDS = (b'        <field name="numbercall">-1</field>\n'
                     b'        <field name="doall" eval="False"/>\n')
CRON_XML_FIXED = CRON_XML.replace(DEPRECATED_FIELDS, b"")


def line_of(text, needle):
    """The 1-based line of *text* (bytes) where *needle* first stands."""
    return text[: text.index(needle)].count(b"\n") + 1


#: The lines Odoo's error and the fix name: the record, then each field.
CRON_RECORD_LINE = line_of(CRON_XML, b'model="ir.cron"')
NUMBERCALL_LINE = line_of(CRON_XML, b'name="numbercall"')
DOALL_LINE = line_of(CRON_XML, b'name="doall"')


def legacy_cron_module(parent, name="legacy_cron"):
    """A copy of the legacy module in *parent*/*name* (its technical name); its
    folder (a Path)."""
    folder = Path(parent) / name
    shutil.copytree(LEGACY_CRON_MODULE, folder, ignore=shutil.ignore_patterns("__pycache__"))
    return folder
