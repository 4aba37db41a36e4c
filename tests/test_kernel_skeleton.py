"""The skeleton both kernel modules share (src/_pass.pxi): the serial switch of a forked
child, the build's dependencies on the shared files, and the softmax's row maxima kept in the
scratch block of the last, shorter chunk."""

import re
from pathlib import Path

import numpy as np
import pytest

import reference as ref
import resnet_core as rc
from resnet_core import _kernels, _vkernels

ROOT = Path(__file__).resolve().parents[1]


def _passes(dtype):
    """Every pass of both modules, on three slots: scalar value, gradient, HVP, Gram and
    features; c outputs' value, gradient, HVP and predictions."""
    rng = np.random.default_rng(5)
    X = rng.standard_normal((203, 4)).astype(dtype)
    y = np.where(X[:, 0] > 0, 1.0, -1.0)
    obj = rc.Objective(X, y, widths=(6, 3), chunk_size=16, n_threads=3, feature_bias=True)
    x = obj.init(0)
    part = obj.partial(x)
    z = x[:part.n_params]
    vobj = rc.Objective(X, np.arange(203) % 4, loss="cross_entropy", widths=(5,),
                        chunk_size=16, n_threads=3)
    xv = vobj.init(1)
    return [*obj.fun_and_grad(x), obj.hessp(x, x), part.stats(z).G, obj.features(x),
            *vobj.fun_and_grad(xv), vobj.hessp(xv, xv), vobj.predict(xv)]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_set_serial_gives_the_same_bits(dtype):
    """set_serial(True) (what a forked child runs) changes the threads, not the numbers."""
    threaded = _passes(dtype)
    try:
        _kernels.set_serial(True)
        _vkernels.set_serial(True)
        serial = _passes(dtype)
    finally:
        _kernels.set_serial(False)
        _vkernels.set_serial(False)
    assert len(serial) == len(threaded)
    for a, b in zip(serial, threaded):
        assert np.asarray(a).dtype == np.asarray(b).dtype
        assert np.array_equal(a, b)


def test_serial_switch_is_public():
    for module in (_kernels, _vkernels):
        assert callable(module.set_serial) and not hasattr(module, "_set_serial")


def test_setup_rebuilds_on_every_shared_file():
    """Each file a kernel module includes (Cython ``include``, C ``#include "..."`` of the
    headers) is a dependency in setup.py, so that changing it rebuilds both modules."""
    setup = (ROOT / "setup.py").read_text()
    depends = set(re.findall(r'"src/([\w.]+)"', setup.split("depends=", 1)[1].split("]")[0]))
    included = set()
    for path in (ROOT / "src").iterdir():
        if path.suffix in (".pyx", ".pxi", ".h"):
            text = path.read_text()
            included |= set(re.findall(r'^include "([\w.]+)"', text, re.M))
            included |= set(re.findall(r'^#include "([\w.]+)"', text, re.M))
    assert {"_pass.pxi", "_mlp.pxi", "rc_math.h"} <= included
    assert included <= depends, f"not in setup.py's depends: {sorted(included - depends)}"


def _reached(name: str) -> set[str]:
    """The files of src/ that ``name`` reaches through Cython ``include`` and ``cimport``
    of a .pxd, ``cdef extern from`` and C ``#include "..."``, recursively."""
    seen, todo = set(), [name]
    while todo:
        path = ROOT / "src" / todo.pop()
        if path.name in seen or not path.exists():
            continue
        seen.add(path.name)
        text = path.read_text()
        todo += re.findall(r'^(?:include|cdef extern from|#include) "([\w.]+)"', text, re.M)
        todo += [f"{m}.pxd" for m in re.findall(r"^from (\w+) cimport", text, re.M)]
    return seen - {name}


def test_setup_rebuilds_each_module_on_the_files_it_reaches():
    """Each extension's depends in setup.py (the shared list and its own) hold every header
    and Cython file its .pyx reaches (src/rc_margin.h for the Gram pass's chunks)."""
    setup = (ROOT / "setup.py").read_text()
    common = set(re.findall(r'"src/([\w.]+)"', setup.split("depends=", 1)[1].split("]")[0]))
    modules = re.findall(r'Extension\("resnet_core\.(\w+)", \["src/([\w.]+)"\],(.*?)\),$',
                         setup, re.M | re.S)
    assert {m[0] for m in modules} >= {"_kernels", "_vkernels", "_margin_pass"}
    for module, pyx, rest in modules:
        depends = set(re.findall(r'"src/([\w.]+)"', rest)) | (common if "**common" in rest
                                                               else set())
        # .pxd files Cython tracks itself (cimports); headers and .pxi it may not
        missing = {f for f in _reached(pyx) if not f.endswith(".pxd")} - depends
        assert not missing, f"{module}: not in setup.py's depends: {sorted(missing)}"
    assert "rc_margin.h" in _reached("_margin_pass.pyx")


@pytest.mark.parametrize("dtype, rtol", [(np.float64, 1e-12), (np.float32, 1e-5)])
@pytest.mark.parametrize("chunk", [7, 64])
def test_softmax_of_large_scores_in_a_short_last_chunk(dtype, rtol, chunk):
    """Scores of size 1e3 (exp overflows without the row maximum) in chunks of 7 rows (the
    last one shorter: its row maxima sit right after its m x c exponentials): the value and
    gradient of the NumPy reference."""
    rng = np.random.default_rng(chunk)
    n, c = 50, 4
    X = rng.standard_normal((n, 3)) * 1e2
    Phi = rng.standard_normal((n, 2))
    y = np.arange(n) % c
    fo = rc.FeatureObjective(X.astype(dtype), Phi.astype(dtype), y, loss="cross_entropy",
                             head="skip", chunk_size=chunk, n_threads=2)
    z = (rng.standard_normal(fo.n_params) * 5).astype(dtype)
    F, g = fo.fun_and_grad(z)
    F_ref, g_ref, _ = ref.vector_feature_value_grad_hessian(
        X.astype(dtype).astype(np.float64), Phi.astype(dtype).astype(np.float64), y,
        z.astype(np.float64), c=c, loss="cross_entropy", head="skip")
    assert F_ref > 10  # large margins: the maximum matters
    assert F == pytest.approx(F_ref, rel=rtol)
    np.testing.assert_allclose(g, g_ref, rtol=rtol, atol=rtol * np.abs(g_ref).max())
