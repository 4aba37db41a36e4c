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
def debug_kernels(tmp_path_factory):
    out = tmp_path_factory.mktemp("debug_build")
    env = dict(os.environ, RESNET_CORE_DEBUG="1")
    proc = subprocess.run(
        [sys.executable, "setup.py", "build_ext", "--build-lib", str(out), "--build-temp",
         str(out / "tmp"), "--force"], cwd=ROOT, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.fail(f"debug build failed:\n{proc.stderr[-3000:]}")
    so = next((out / "resnet_core").glob("_kernels*.so"))
    spec = importlib.util.spec_from_file_location("resnet_core_debug._kernels", so)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


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
