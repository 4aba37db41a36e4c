"""The loss and activation codes have one source, the enums of src/_loss.pxd and
src/_activation.pxd, exported by the kernels and read by losses.py, features.py and the numba
loops; numba's cached machine code follows a change of the codes."""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import resnet_core as rc
from resnet_core import _kernels, _loops

ROOT = Path(__file__).resolve().parents[1]


def test_python_reads_the_kernels_codes():
    assert {name: loss.code for name, loss in rc.BUILTIN_LOSSES.items()} == _kernels.LOSS_CODES
    assert rc.ACTIVATIONS == _kernels.ACTIVATION_CODES
    assert rc.CustomLoss(lambda p, y: (p, p, p)).code == _kernels.LOSS_CODE_EXTERNAL < 0
    assert len(set(_kernels.LOSS_CODES.values())) == len(_kernels.LOSS_CODES)
    assert len(set(_kernels.ACTIVATION_CODES.values())) == len(_kernels.ACTIVATION_CODES)


@pytest.mark.parametrize("name", sorted(_kernels.LOSS_CODES))
def test_numba_losses_are_the_kernels(name, rng):
    code = _kernels.LOSS_CODES[name]
    p = np.concatenate([3 * rng.standard_normal(200), [0.0, 0.5, 1.0, 1.5, -0.5]])
    y = np.where(rng.random(p.size) > 0.5, 1.0, -1.0)
    l, d1, _ = rc.BUILTIN_LOSSES[name].derivatives(p, y)
    mine = np.array([_loops.loss_d1(code, pi, yi) for pi, yi in zip(p, y)])
    assert np.allclose(mine[:, 0], l, rtol=1e-13, atol=1e-15)
    assert np.allclose(mine[:, 1], d1, rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize("name", sorted(_kernels.ACTIVATION_CODES))
def test_numba_activations_are_the_kernels(name, rng):
    code = _kernels.ACTIVATION_CODES[name]
    z = np.concatenate([4 * rng.standard_normal(200), [0.0, 30.0, -30.0]])
    h, d1, d2 = z.copy(), np.empty_like(z), np.empty_like(z)
    _kernels.activation(code, h, d1, d2)
    mine = np.array([_loops.act_d1(code, zi) for zi in z])
    assert np.allclose(mine[:, 0], h, rtol=1e-13, atol=1e-15)
    assert np.allclose(mine[:, 1], d1, rtol=1e-13, atol=1e-15)


SWAP = textwrap.dedent(
    """
    from resnet_core import _loops
    _loops.check_codes()
    squared = _loops.loss_d1(0, 2.0, 0.0)  # compiled (and cached) with the true codes
    _loops._SQUARED, _loops._LOGISTIC = 1, 0  # as if the kernels were rebuilt so
    _loops._CODES = (1, 0) + _loops._CODES[2:]
    _loops._codes_checked = False
    _loops.check_codes()
    assert _loops._frozen_codes() == _loops._CODES
    assert _loops.loss_d1(1, 2.0, 0.0) == squared
    """
)
TRUE = textwrap.dedent(
    """
    from resnet_core import _kernels, _loops
    _loops.check_codes()
    assert _loops._frozen_codes() == _loops._CODES
    assert _loops._CODES[:2] == (_kernels.LOSS_CODES["squared"], _kernels.LOSS_CODES["logistic"])
    assert _loops.loss_d1(_kernels.LOSS_CODES["squared"], 2.0, 0.0) == (2.0, 2.0)
    """
)


def test_cached_machine_code_follows_the_codes(tmp_path):
    """A cache compiled with other codes (here: swapped) is dropped at import."""
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path),
               PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    for script in (SWAP, TRUE):
        proc = subprocess.run([sys.executable, "-c", script], env=env, cwd=ROOT,
                              capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr[-3000:]
    assert any(tmp_path.rglob("*.nbi"))  # the runs did use this cache
