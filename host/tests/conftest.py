"""Fixtures shared by the host tests."""

import secrets

import pytest

from host.tests.real_odoo import drop_database


@pytest.fixture
def dbname(request):
    """A fresh database name for the test, dropped afterwards."""
    name = "auto_heal_%s_%s" % (request.node.name[:20].lower().strip("_"),
                                secrets.token_hex(4))
    yield name
    drop_database(name)
