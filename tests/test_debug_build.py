"""The kernels built with bounds and initialisation checks on (``RESNET_CORE_DEBUG=1``) give
the optimised build's numbers on awkward shapes: an indexing error would raise there."""

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import resnet_core as rc
from resnet_core import _kernels

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def debug_build(tmp_path_factory):
    """The folder of a debug build of both kernel modules."""
    out = tmp_path_factory.mktemp("debug_build")
    env = dict(os.environ, RESNET_CORE_DEBUG="1")
    proc = subprocess.run(
        [sys.executable, "setup.py", "build_ext", "--build-lib", str(out), "--build-temp",
         str(out / "tmp"), "--force"], cwd=ROOT, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.fail(f"debug build failed:\n{proc.stderr[-3000:]}")
    return out


def _load(out, name):
    so = next((out / "resnet_core").glob(f"{name}.*so"))
    spec = importlib.util.spec_from_file_location(f"resnet_core_debug.{name}", so)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def debug_kernels(debug_build):
    return _load(debug_build, "_kernels")


@pytest.fixture(scope="module")
def debug_vkernels(debug_build):
    return _load(debug_build, "_vkernels")


@pytest.mark.parametrize("feature_bias", [False, True])
@pytest.mark.parametrize("n, chunk, threads", [(1, 1, 1), (37, 8, 3), (130, 128, 2)])
def test_debug_build_agrees(debug_kernels, monkeypatch, n, chunk, threads, feature_bias):
    rng = np.random.default_rng(n)
    X = rng.standard_normal((n, 3))
    y = np.where(rng.random(n) > 0.5, 1.0, -1.0)
    results = []
    for kernels in (_kernels, debug_kernels):
        monkeypatch.setattr("resnet_core._engine._kernels", kernels)
        obj = rc.Objective(X, y, widths=(4, 2), chunk_size=chunk, n_threads=threads,
                           feature_bias=feature_bias)
        x = obj.init(1)
        part = obj.partial(x)
        z = x[:part.n_params]
        results.append((obj.fun_and_grad(x)[1], obj.hessp(x, x), part.stats(z).G,
                        obj.features(x), part.hessp(z, z)))
    for fast, debug in zip(*results):
        assert np.allclose(fast, debug, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("head", ["residual", "skip"])
@pytest.mark.parametrize("n, chunk, threads", [(3, 1, 1), (37, 8, 3), (130, 128, 2)])
def test_debug_build_agrees_for_c_outputs(debug_vkernels, monkeypatch, n, chunk, threads,
                                          head):
    """The same for the kernels of c outputs (issue 11): cross-entropy with the constant
    feature, and the squared loss on given features."""
    from resnet_core import _vkernels

    rng = np.random.default_rng(n)
    X = rng.standard_normal((n, 3))
    labels = np.arange(n) % 3
    Y = rng.standard_normal((n, 2))
    results = []
    for kernels in (_vkernels, debug_vkernels):
        monkeypatch.setattr("resnet_core._engine._vkernels", kernels)
        obj = rc.Objective(X, labels, loss="cross_entropy", widths=(4, 2), chunk_size=chunk,
                           n_threads=threads, feature_bias=True, head=head)
        x = obj.init(1)
        part = obj.partial(x)
        z = x[:part.n_params]
        fo = rc.FeatureObjective(X, X[:, :2] ** 2, Y, loss="squared", head=head,
                                 chunk_size=chunk, n_threads=threads)
        zf = np.linspace(-1, 1, fo.n_params)
        results.append((obj.fun_and_grad(x)[1], obj.hessp(x, x), obj.features(x),
                        obj.predict(x), part.hessp(z, z), fo.grad(zf), fo.hessp(zf, zf)))
    for fast, debug in zip(*results):
        assert np.allclose(fast, debug, rtol=1e-12, atol=1e-14)
