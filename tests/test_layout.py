"""The package's layout: no import circles, and the core apart from its applications.

The graph is built from the source with ``ast``: every ``import`` and ``from ... import``
of a ``resnet_core`` module counts, at module level or inside a function (a lazy import is
still a dependency, and a circle through one only waits for its first call).
"""

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "resnet_core"
# The applications of the core: the CLI, the reproduction of the paper, the benchmarks.
APPLICATIONS = ("resnet_core.cli", "resnet_core.__main__", "resnet_core.reproduce",
                "resnet_core.bench")


def _modules() -> dict[str, Path | None]:
    """``{dotted name: file}`` of every module of the package (a package is its __init__;
    the compiled extensions that setup.py declares have no file to read: None)."""
    out = dict.fromkeys(re.findall(r'Extension\(\s*"(resnet_core\.\w+)"',
                                   (ROOT / "setup.py").read_text()))
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = (PACKAGE.name,) + path.relative_to(PACKAGE).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _target(name: str, modules) -> str | None:
    """The module of ``resnet_core`` that importing ``name`` runs, if any (the longest
    prefix that is a module: ``resnet_core.optim.gradient_descent`` -> ``resnet_core.optim``)."""
    parts = name.split(".")
    for k in range(len(parts), 0, -1):
        if ".".join(parts[:k]) in modules:
            return ".".join(parts[:k])
    return None


def import_graph() -> dict[str, set[str]]:
    """``{module: {modules of the package it imports}}``, from the source."""
    modules = _modules()
    graph = {}
    for name, path in modules.items():
        if path is None:
            graph[name] = set()
            continue
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        edges = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                    base = f"{base}.{node.module}" if node.module else base
                else:
                    base = node.module
                # ``from pkg import sub`` imports the submodule ``pkg.sub`` when there is one
                names = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base
                         for a in node.names]
            else:
                continue
            edges |= {t for t in (_target(n, modules) for n in names) if t and t != name}
        graph[name] = edges
    return graph


def _cycle(graph) -> list[str] | None:
    """One import circle of ``graph`` (as a path that returns to its start), or None."""
    state, stack = {}, []

    def visit(u):
        state[u] = "open"
        stack.append(u)
        for v in sorted(graph[u]):
            if state.get(v) == "open":
                return stack[stack.index(v):] + [v]
            if v not in state and (found := visit(v)):
                return found
        stack.pop()
        state[u] = "done"
        return None

    for u in sorted(graph):
        if u not in state and (found := visit(u)):
            return found
    return None


def _is_application(name: str) -> bool:
    return any(name == a or name.startswith(a + ".") for a in APPLICATIONS)


def test_the_graph_sees_lazy_imports():
    graph = import_graph()
    assert "resnet_core.objective" in graph["resnet_core.theory"]  # ``from .objective import``
    assert "resnet_core.theory" in graph["resnet_core.certify"]  # ``from . import theory``
    assert "resnet_core.bench.compare" in graph["resnet_core.cli"]  # ``from .bench import``
    assert "resnet_core.reproduce.demo" in graph["resnet_core.cli"]  # inside ``main`` only


def test_no_import_circles():
    cycle = _cycle(import_graph())
    assert cycle is None, "import circle: " + " -> ".join(cycle)


def test_the_core_does_not_import_its_applications():
    """The core (objectives, heads, losses, features, linear baseline, certificates, spectra,
    theory, optimisers, studies) works without the CLI, the reproduction and the benchmarks."""
    bad = {(m, t) for m, ts in import_graph().items() if not _is_application(m)
           for t in ts if _is_application(t)}
    assert not bad, sorted(bad)


@pytest.mark.parametrize("graph, circle", [
    ({"a": {"b"}, "b": {"c"}, "c": {"a"}}, ["a", "b", "c", "a"]),
    ({"a": {"b"}, "b": set(), "c": {"b"}}, None),
])
def test_cycle_finder(graph, circle):
    assert _cycle(graph) == circle


# -- no reaches into other objects' private parts (issue 20) ---------------------------------
# A reach is ``x._name`` where ``x`` is not ``self``/``cls`` (another object's private
# attribute, or another module's private name), or ``from .m import _name``.  Importing an
# internal module (``from . import _kernels``) is not a reach: its public names are the
# package's internal API.  At most three reaches may stay, each with ``# private:`` and the
# reason on its line.
MAX_DECLARED_REACHES = 3


def reaches_in(source: str) -> list[tuple[int, str]]:
    """``(line, text)`` of each reach in ``source`` (see above)."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if (isinstance(node, ast.Attribute) and node.attr.startswith("_")
                and not node.attr.startswith("__")):
            v = node.value
            own = isinstance(v, ast.Name) and v.id in ("self", "cls")
            sup = isinstance(v, ast.Call) and isinstance(v.func, ast.Name) and v.func.id == "super"
            if not (own or sup):
                found.append((node.lineno, ast.unparse(node)))
        elif isinstance(node, ast.ImportFrom) and node.module is not None:
            found += [(node.lineno, f"from {'.' * node.level}{node.module} import {a.name}")
                      for a in node.names
                      if a.name.startswith("_") and not a.name.startswith("__")]
    return found


def private_reaches() -> tuple[set[str], list[str]]:
    """``(reaches without a declaration, declared ones)`` over the package's source."""
    open_, declared = set(), []
    for path in sorted(PACKAGE.rglob("*.py")):
        source = path.read_text()
        lines = source.splitlines()
        where = str(path.relative_to(PACKAGE))
        for lineno, text in reaches_in(source):
            if "# private:" in lines[lineno - 1]:
                declared.append(f"{where}:{lineno}: {text}")
            else:
                open_.add(f"{where}: {text}")
    return open_, declared


def test_no_module_reaches_into_another_objects_private_parts():
    open_, declared = private_reaches()
    assert not open_, sorted(open_)
    assert len(declared) <= MAX_DECLARED_REACHES, declared


def test_the_reach_finder_sees_reaches():
    source = ("from . import _kernels\nfrom .m import _hidden, public\n"
              "def f(obj):\n    self_ok = obj.public + super().__init__\n"
              "    return obj._w + _kernels._set_serial\n"
              "class A:\n    def g(self):\n        return self._x + super()._y\n")
    assert sorted(t for _, t in reaches_in(source)) == [
        "_kernels._set_serial", "from .m import _hidden", "obj._w"]
