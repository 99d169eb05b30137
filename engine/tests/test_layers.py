"""The fence between the floors: engine/ never imports odoo or host/; host/ never
imports the addon's models (readme/DEVELOP.md)."""

import ast
import os

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _modules(folder):
    for dirpath, dirnames, filenames in os.walk(os.path.join(REPO, folder)):
        dirnames[:] = [d for d in dirnames if d not in ("__pycache__",)]
        for name in filenames:
            if name.endswith(".py"):
                yield os.path.join(dirpath, name)


def _imports(path):
    """Top-level names of every module *path* imports, relative imports resolved
    against the repository root."""
    tree = ast.parse(open(path, encoding="utf-8").read(), path)
    package = os.path.relpath(os.path.dirname(path), REPO).split(os.sep)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name.split(".")[0]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[:len(package) - node.level + 1]
                parts = base + (node.module.split(".") if node.module else [])
                yield parts[0] if parts else ""
            elif node.module:
                yield node.module.split(".")[0]


FENCES = [
    ("engine", {"odoo", "host", "models", "controllers", "wizards", "tools"}),
    ("host", {"odoo", "models", "controllers", "wizards"}),
]


@pytest.mark.parametrize("folder, forbidden", FENCES, ids=[f for f, _ in FENCES])
def test_no_import_crosses_the_fence(folder, forbidden):
    crossing = []
    for path in _modules(folder):
        if f"{os.sep}tests{os.sep}" in path:
            continue  # tests may drive anything (host tests start a real Odoo)
        for name in _imports(path):
            if name in forbidden:
                crossing.append(f"{os.path.relpath(path, REPO)} imports {name}")
    assert not crossing, crossing


def test_the_fence_sees_a_crossing(tmp_path):
    """The check itself finds an import of odoo, plain or relative."""
    bad = tmp_path / "engine" / "x.py"
    bad.parent.mkdir()
    bad.write_text("import odoo.tools\nfrom ..models import y\n")
    global REPO
    saved, REPO = REPO, str(tmp_path)
    try:
        assert sorted(_imports(str(bad))) == ["models", "odoo"]
    finally:
        REPO = saved
