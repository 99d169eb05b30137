"""pytest plugin: the repository root is an Odoo addon, not a package for pytest.

The root holds ``__init__.py`` (Odoo imports it as ``odoo.addons.auto_heal``),
so pytest would name ``engine/fsutil.py`` after the checkout folder
(``main.engine.fsutil`` in a folder called ``main``, ``engine.fsutil`` in one
called ``auto-heal``) and import a second copy of every module next to the
``engine.fsutil`` that the tests import. Doctests would then see other class
names and other objects. This plugin stops pytest's package walk below any
folder holding ``__manifest__.py``, so ``engine``, ``host`` and ``tools`` are
top-level packages, exactly as the watchdog and the tests import them.

Loaded by pytest.ini (``-p tools.pytest_plugin``).
"""

from __future__ import annotations

from pathlib import Path

import _pytest.config
import _pytest.pathlib

_original = _pytest.pathlib.resolve_package_path


def resolve_package_path(path: Path) -> Path | None:
    result = _original(path)
    if result is None:
        return None
    for parent in (path, *path.parents):
        if parent == result:
            return result
        if (parent.parent / "__manifest__.py").is_file():
            return parent  # parent.parent is an addon root: stop below it
    return result


for _module in (_pytest.pathlib, _pytest.config):
    if getattr(_module, "resolve_package_path", None) is _original:
        _module.resolve_package_path = resolve_package_path
