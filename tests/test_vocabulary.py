"""One vocabulary (docs/api.md): renamed arguments keep working for one release with a
DeprecationWarning naming the new one, every rename is listed in the docs, and no public
signature uses a retired name."""

import importlib
import inspect
import pkgutil
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

import resnet_core as rc
from resnet_core import _schema
from resnet_core._schema import validated

DOC = Path(__file__).resolve().parents[1] / "docs" / "api.md"
# Names the vocabulary retired, wherever they stood (theory's formulas keep the paper's
# letters, see docs/api.md, and are not public optimiser arguments).
RETIRED = {"gtol", "baseline_radius", "max_entries", "b"}
# Names that mean another thing in one place: ``k`` is the feature dimension, never a count
# of eigenpairs (``n_eigs``).
RETIRED_IN = {"hessian_spectrum": {"k"}}
# The Theorem 3 formulas keep the paper's letters (docs/api.md).
PAPER_LETTERS = ("theorem3_",)


def _all_modules():
    """Import every public module, so that every ``@validated`` rename is declared."""
    for info in pkgutil.walk_packages(rc.__path__, "resnet_core."):
        if ".reproduce" in info.name or ".bench" in info.name or info.name.endswith("__main__"):
            continue
        importlib.import_module(info.name)


def _documented() -> set[tuple[str, str, str]]:
    rows = set()
    text = DOC.read_text()
    table = text[text.index("## Renamed arguments"):]
    for line in table.splitlines():
        cells = [c.strip().strip("`") for c in line.strip().strip("|").split("|")]
        if len(cells) == 3 and cells[0] not in ("function", "---"):
            rows.add(tuple(cells))
    return rows


def test_every_rename_is_documented():
    _all_modules()
    declared = {(q.replace(".__init__", ""), old, new) for q, old, new in _schema.RENAMED}
    assert declared, "no rename is declared"
    assert declared <= _documented(), sorted(declared - _documented())


def test_every_documented_rename_is_declared():
    _all_modules()
    declared = {(q.replace(".__init__", ""), old, new) for q, old, new in _schema.RENAMED}
    assert _documented() <= declared, sorted(_documented() - declared)


def test_the_old_name_warns_and_is_passed_on():
    @validated(renamed={"gtol": "eps"})
    def f(*, eps: float = 1.0):
        return eps

    with pytest.warns(DeprecationWarning, match=r"'gtol' is deprecated.*call it 'eps'"):
        assert f(gtol=0.5) == 0.5
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert f(eps=0.25) == 0.25
    with pytest.raises(TypeError, match="both 'gtol'.*and 'eps'"):
        f(gtol=0.5, eps=0.25)
    # the old name goes through the same check as the new one
    with pytest.raises(ValueError, match="eps"), pytest.warns(DeprecationWarning):
        f(gtol=-1.0)


def test_a_rename_to_a_missing_argument_is_refused():
    with pytest.raises(TypeError, match="cannot rename"):
        @validated(renamed={"gtol": "tolerance"})
        def g(*, eps: float = 1.0):
            return eps


def test_gradient_descent_accepts_gtol_for_one_release():
    obj = rc.FeatureObjective(np.eye(3), np.ones((3, 1)), np.array([1.0, -1.0, 1.0]),
                              loss="squared")
    z0 = np.full(obj.n_params, 0.1)
    new = rc.gradient_descent(obj, z0, eta=0.1, eps=-1.0, max_iter=5)
    with pytest.warns(DeprecationWarning, match="gradient_descent.*'gtol'.*'eps'"):
        old = rc.gradient_descent(obj, z0, eta=0.1, gtol=-1.0, max_iter=5)
    np.testing.assert_array_equal(old.x, new.x)


def _public_callables():
    _all_modules()
    seen = set()
    for name in rc.__all__:
        obj = getattr(rc, name)
        if callable(obj) and id(obj) not in seen:
            seen.add(id(obj))
            yield name, obj
            if inspect.isclass(obj):
                for meth_name, meth in inspect.getmembers(obj, inspect.isfunction):
                    if not meth_name.startswith("_") or meth_name == "__init__":
                        yield f"{name}.{meth_name}", meth


def test_no_public_signature_uses_a_retired_name():
    bad = []
    for name, obj in _public_callables():
        try:
            params = inspect.signature(obj).parameters
        except (TypeError, ValueError):
            continue
        if name.startswith(PAPER_LETTERS):
            continue
        retired = RETIRED | RETIRED_IN.get(name, set())
        bad += [f"{name}({p})" for p in params if p in retired]
    assert not bad, bad


def _public_object(function: str):
    """The object ``function`` (a qualified name) names in ``resnet_core`` or one of its
    public modules, or None."""
    _all_modules()
    head, *rest = function.split(".")
    modules = [rc] + [m for name, m in sys.modules.items()
                      if name.startswith("resnet_core.") and "._" not in name]
    obj = next((getattr(m, head) for m in modules if hasattr(m, head)), None)
    for part in rest:
        obj = getattr(obj, part, None)
    return obj


def test_docs_table_names_only_existing_functions():
    for function, old, new in _documented():
        obj = _public_object(function)
        assert callable(obj), function
        assert new in inspect.signature(obj).parameters, (function, new)
    assert _public_object("no_such_function") is None
