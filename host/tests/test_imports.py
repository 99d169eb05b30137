"""The host floor's imports: no circle, and no import of a host module hidden in a
function (a function-level import is how a circle is held together).

Read with ast from the sources, so a module is checked without being run.
"""

import ast
from pathlib import Path

HOST = Path(__file__).resolve().parent.parent


def _modules():
    """``{"host.commands.fix": path}`` for every host module but the tests."""
    found = {}
    for path in sorted(HOST.rglob("*.py")):
        rel = path.relative_to(HOST.parent).with_suffix("")
        if "tests" in rel.parts:
            continue
        parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
        found[".".join(parts)] = path
    return found


MODULES = _modules()


def _imported(node, module, is_package):
    """The host modules an Import or ImportFrom *node* of *module* names."""
    if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
    else:
        if node.level:
            base = module.split(".") if is_package else module.split(".")[:-1]
            base = base[: len(base) - (node.level - 1)]
            source = ".".join(base + ([node.module] if node.module else []))
        else:
            source = node.module or ""
        # `from host import config`: the module host.config; `from host.x import f`: host.x
        names = [f"{source}.{alias.name}" if f"{source}.{alias.name}" in MODULES else source
                 for alias in node.names]
    found = set()
    for name in names:
        while name and name not in MODULES:  # the host module the name lies in
            name = name.rpartition(".")[0]
        if name.split(".")[0] == "host":
            found.add(name)
    return found


def _imports(module):
    """(module-level imports, [(line, name) of imports inside a def or class])."""
    path = MODULES[module]
    tree = ast.parse(path.read_text(), str(path))
    is_package = path.name == "__init__.py"
    top, nested = set(), []

    def visit(node, depth):
        for child in ast.iter_child_nodes(node):
            inner = depth + isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef,
                                               ast.ClassDef, ast.Lambda))
            if isinstance(child, (ast.Import, ast.ImportFrom)):
                names = _imported(child, module, is_package) - {module}
                if inner:
                    nested.extend((child.lineno, name) for name in sorted(names))
                else:
                    top.update(names)
            visit(child, inner)

    visit(tree, 0)
    return top, nested


def _graph():
    """Who imports whom, wherever the import stands (in a function too)."""
    graph = {}
    for module in MODULES:
        top, nested = _imports(module)
        graph[module] = top | {name for _line, name in nested}
    return graph


GRAPH = _graph()


def _cycle(graph):
    """One import circle of *graph* as a list of modules, or None."""
    done, path = set(), []

    def walk(module):
        if module in path:
            return path[path.index(module):] + [module]
        if module in done:
            return None
        path.append(module)
        for name in sorted(graph.get(module, ())):
            found = walk(name)
            if found:
                return found
        path.pop()
        done.add(module)
        return None

    for module in sorted(graph):
        found = walk(module)
        if found:
            return found
    return None


def test_the_host_modules_are_found():
    assert {"host.cli", "host.monitor", "host.commands", "host.commands.base",
            "host.commands.fix"} <= set(MODULES)
    assert "host.commands.base" in GRAPH["host.cli"]
    assert "host.monitor" in GRAPH["host.commands.monitor"]


def test_no_import_circle_among_host_modules():
    assert _cycle(GRAPH) is None, " -> ".join(_cycle(GRAPH))


def test_no_function_level_import_of_a_host_module():
    hidden = [f"{MODULES[m].relative_to(HOST.parent)}:{line}: {name}"
              for m in sorted(MODULES) for line, name in _imports(m)[1]]
    assert not hidden, "imports of host modules inside a function:\n" + "\n".join(hidden)


def test_the_checks_see_a_circle_and_a_hidden_import(tmp_path):
    """The two checks can fail: a circle of three, and an import inside a function."""
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None
    MODULES["host._probe"] = probe = tmp_path / "probe.py"
    try:
        probe.write_text("from . import state\n\n\ndef f():\n    from host.cli import main\n"
                         "    from engine import audit\n")
        top, nested = _imports("host._probe")
        assert top == {"host.state"} and nested == [(5, "host.cli")]
    finally:
        del MODULES["host._probe"]
