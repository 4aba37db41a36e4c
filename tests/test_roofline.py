"""The roofline's flop counts against the kernels' BLAS calls, and a small run of it."""

import numpy as np
import pytest

from resnet_core.bench import roofline


def _gemm(m, n, k):
    return 2 * m * n * k


def _kernel_flops(kind, d, widths, k):
    """Per-sample BLAS flops, read off src/_kernels.pyx and src/_mlp.pxi call by call for a
    chunk of one sample (each gemm / gemv / syrk as it appears there)."""
    dims = [d, *widths]
    L = len(widths)
    fwd = sum(_gemm(1, dims[l + 1], dims[l]) for l in range(L))         # _forward
    loss = 2 * d + 2 * k                                                 # _loss_chunk gemvs
    if kind == "value":                                                  # MODE_PREDICT
        return fwd + 2 * d + 2 * k
    if kind == "fun_and_grad":
        back = 0
        for l in reversed(range(L)):                                     # _backward
            back += _gemm(dims[l + 1], dims[l], 1)                       # dW_l
            if l > 0:
                back += _gemm(1, dims[l], dims[l + 1])                   # G_{l-1}
        return fwd + loss + 2 * d + 2 * k + back
    if kind == "hessp (full)":
        rfwd = 0
        for l in range(L):                                               # _r_forward
            rfwd += _gemm(1, dims[l + 1], dims[l])
            if l > 0:
                rfwd += _gemm(1, dims[l + 1], dims[l])
        rback = 0
        for l in reversed(range(L)):                                     # _r_backward
            rback += _gemm(dims[l + 1], dims[l], 1)
            if l > 0:
                rback += _gemm(dims[l + 1], dims[l], 1) + 3 * _gemm(1, dims[l], dims[l + 1])
        gemv = 2 * d + 2 * k + 2 * k + 2 * d + 2 * k + 2 * k + 2 * k     # Rp, vx, vp, g, RH^T r
        return fwd + rfwd + loss + gemv + rback
    if kind == "hessp (partial)":
        return loss + 2 * d + 2 * k + 2 * d + 2 * k + 2 * k
    D = d + k
    return loss + 2 * d + 2 * k + D * (D + 1)                            # Gram: syrk


@pytest.mark.parametrize("kind", roofline.PASSES)
@pytest.mark.parametrize("d, widths", [(64, (64, 64)), (5, (3,)), (7, (4, 9, 2)), (3, (8, 8))])
def test_flop_formulas_match_the_kernels_calls(kind, d, widths):
    k = widths[-1]
    assert roofline.flops(kind, d, widths, k) == _kernel_flops(kind, d, widths, k)


def test_reference_problem_counts():
    # the figures quoted in docs/performance.md
    d, widths, n = 64, (64, 64), 200_000
    assert roofline.flops("fun_and_grad", d, widths, 64) * n == 8_294_400_000
    assert roofline.flops("hessp (full)", d, widths, 64) * n == 18_252_800_000
    assert roofline.bytes_moved("fun_and_grad", d, 64, 8) * n == 110_400_000
    assert roofline.bytes_moved("Gram", d, 64, 4) * n == 106_400_000
    assert roofline.activations("hessp (full)", widths) == 128
    assert roofline.activations("Gram", widths) == 0


def test_small_run_fills_every_row():
    rows, gemm, read_gbs, threads = roofline.run(600, 4, (3, 3), repeat=1, large=64,
                                                  read_bytes=1 << 20)
    assert [r[:2] for r in rows] == [(kind, dt) for dt in ("float64", "float32")
                                     for kind in roofline.PASSES]
    for r in rows:
        values = np.array(r[2:4] + r[5:], dtype=float)
        assert np.all(np.isfinite(values)) and np.all(values > 0) and r[4] >= 0
    assert {g[:2] for g in gemm} == {(dt, t) for dt in ("float64", "float32")
                                     for t in sorted({1, threads})}
    assert read_gbs > 0
    table = roofline.format_tables(rows, gemm, read_gbs, threads)
    assert all(f"| {kind} | float32 |" in table for kind in roofline.PASSES)
