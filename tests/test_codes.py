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
from resnet_core import _kernels

ROOT = Path(__file__).resolve().parents[1]


def test_python_reads_the_kernels_codes():
    assert {name: loss.code for name, loss in rc.BUILTIN_LOSSES.items()
            if loss.formula is None} == _kernels.LOSS_CODES
    assert rc.ACTIVATIONS == _kernels.ACTIVATION_CODES
    assert rc.CustomLoss(lambda p, y: (p, p, p)).code == _kernels.LOSS_CODE_EXTERNAL < 0
    assert len(set(_kernels.LOSS_CODES.values())) == len(_kernels.LOSS_CODES)
    assert len(set(_kernels.ACTIVATION_CODES.values())) == len(_kernels.ACTIVATION_CODES)


SWAP = textwrap.dedent(
    """
    from resnet_core import _loop_scalars as S, _loops
    _loops.check_codes()
    squared = S.loss_d1(S.SQUARED, 2.0, 0.0)  # compiled (and cached) with the true codes
    S.SQUARED, S.LOGISTIC = S.LOGISTIC, S.SQUARED  # as if the kernels were rebuilt so
    S.CODES = (S.SQUARED, S.LOGISTIC) + S.CODES[2:]
    _loops._KEY = _loops.loop_key()
    _loops._codes_checked = False
    _loops.check_codes()
    assert _loops._frozen_key() == _loops._KEY
    assert S.loss_d1(S.SQUARED, 2.0, 0.0) == squared
    """
)
TRUE = textwrap.dedent(
    """
    from resnet_core import _kernels, _loop_scalars as S, _loops
    _loops.check_codes()
    assert _loops._frozen_key() == _loops._KEY == _loops.loop_key()
    assert S.CODES[:2] == (_kernels.LOSS_CODES["squared"], _kernels.LOSS_CODES["logistic"])
    assert S.loss_d1(_kernels.LOSS_CODES["squared"], 2.0, 0.0) == (2.0, 2.0)
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
