"""Time to a certified eps-SOPSP from exact saddles: find_sopsp against PGD and scipy's
trust-region methods (issue 23).

    python benchmarks/bench_second_order.py [--repeat R]      # the comparison table
    pytest benchmarks/bench_second_order.py --benchmark-enable  # pytest-benchmark suites

Under pytest (run once as smoke tests in CI): find_sopsp from Example 1's and breast
cancer's saddles, each asserting a certified result; PGD on breast cancer is ``slow``.

Problems (same start for every method):

- Example 1 at curvature ``c = 1e-3``, from its saddle ``(0, -1/c)``; target ``eps = c^2/4``,
  ``mu2 = 1`` (threshold ``-c/2``: the saddle, ``lambda_min = -c``, does not pass);
- breast cancer (569 x 31) and digits 0-4 vs 5-9 (1797 x 65), logistic loss, fixed random
  tanh features (``k = 8``, seed 0), residual head, from the exact saddle of Theorem 2
  (``w = 0``, ``V = -s g^T / ||g||^2``, zero gradient); target ``eps = 1e-3``, ``mu2 = 1``.

Methods, each timed to a point that ``check_sopsp`` certifies (the certificate's own time
included):

- ``find_sopsp`` with ``method="newton-nc"`` and ``"cubic"``;
- PGD (``perturbed_gd``, ``eps``, ``rho = mu2``, ``ell = 1`` on Example 1 as in the
  package's escape studies, estimated at the start on the real data), stopped as
  soon as an iterate passes the test (checked every 100 iterations by a callback: PGD's
  best case), then certified;
- scipy ``trust-krylov`` (``fun``/``jac``/``hessp``) and ``trust-exact`` (``fun``/``jac``/
  ``hess``, the dense Hessian) with ``gtol = eps``, then certified.  From an exact saddle
  their gradient test holds at the start: they stop there, uncertified.  They, and
  find_sopsp, are therefore also run from the saddle plus a random kick of norm 0.1
  (seed 1; the "(kicked)" rows), where the gradient test does not hold.

Times are medians of ``R`` blocks (default 5) in which the methods take turns
(``resnet_core.bench.timing.block_medians``), one thread.
"""

from __future__ import annotations

import argparse

import numpy as np
import pytest
from scipy.optimize import minimize

import resnet_core as rc
from resnet_core.bench.timing import block_medians
from resnet_core.reproduce import datasets
from resnet_core.saddles import theorem2_stationary_point
from resnet_core.second_order import METHODS, find_sopsp, pgd_until_certified


def problems(real=("breast_cancer", "digits")):
    c = 1e-3
    obj, z0 = rc.theory.example1(c)
    yield "example1 (c=1e-3)", obj, z0, c**2 / 4, 1.0, 1.0  # ell = 1, as the studies use
    for name in real:
        data = {"breast_cancer": "breast_cancer", "digits": "digits_binary"}[name]
        X, y = datasets.load(data)
        rng = np.random.default_rng(0)
        Phi = np.tanh(X @ rng.standard_normal((X.shape[1], 8)) / np.sqrt(X.shape[1]))
        fo = rc.FeatureObjective(X, Phi, y, loss="logistic", n_threads=1)
        yield name, fo, theorem2_stationary_point(fo).x, 1e-3, 1.0, None


# Norm of the random kick added to the saddle for the "(kicked)" rows (seed 1).
KICK = 0.1


def _certify(fo, z, eps, mu2):
    return rc.check_sopsp(fo, z, eps=eps, mu2=mu2)


def runners(fo, z0, eps, mu2, ell):
    """name -> callable returning ``(final point, iterations, certificate)``."""
    ell = rc.estimate_ell_rho(fo, z0, seed=0)[0] if ell is None else ell
    kick = np.random.default_rng(1).standard_normal(z0.size)
    z1 = z0 + KICK * kick / np.linalg.norm(kick)

    def second(method, start):
        def run():
            r = find_sopsp(fo, start, eps, mu2=mu2, method=method, max_iter=100_000)
            return r.x, r.nit, r.certificate
        return run

    def pgd():
        r, rep = pgd_until_certified(fo, z0, eps, mu2=mu2, ell=ell)
        return r.x, r.nit, rep

    def scipy_tr(method, start):
        def run():
            kw = dict(hessp=fo.hessp) if method == "trust-krylov" else dict(hess=fo.hessian)
            r = minimize(fo.fun, start, jac=fo.grad, method=method,
                         options={"gtol": eps, "maxiter": 100_000}, **kw)
            return r.x, r.nit, _certify(fo, r.x, eps, mu2)
        return run

    return {"newton-nc": second("newton-nc", z0), "cubic": second("cubic", z0), "pgd": pgd,
            "trust-krylov": scipy_tr("trust-krylov", z0),
            "trust-exact": scipy_tr("trust-exact", z0),
            "newton-nc (kicked)": second("newton-nc", z1), "cubic (kicked)": second("cubic", z1),
            "trust-krylov (kicked)": scipy_tr("trust-krylov", z1),
            "trust-exact (kicked)": scipy_tr("trust-exact", z1)}


def main(repeat: int = 5):
    print(f"{'problem':<20} {'method':<22} {'median s':>10} {'iterations':>10} "
          f"{'certified':>9} {'F':>10} {'vs newton-nc':>12}")
    for name, fo, z0, eps, mu2, ell in problems():
        fns = runners(fo, z0, eps, mu2, ell)
        results = {k: fn() for k, fn in fns.items()}
        times = block_medians(fns, repeat=repeat, block=1)
        for k, (x, nit, rep) in results.items():
            print(f"{name:<20} {k:<22} {times[k]:>10.4f} {nit:>10d} "
                  f"{str(rep.is_sopsp):>9} {rep.F:>10.4g} "
                  f"{times[k] / times['newton-nc']:>11.1f}x")


# -- pytest-benchmark suites --------------------------------------------------------------------
def _problem(name):
    if name != "example1":
        pytest.importorskip("sklearn")
    probs = list(problems(real=() if name == "example1" else (name,)))
    return probs[0] if name == "example1" else probs[-1]


@pytest.mark.parametrize("name", ["example1", "breast_cancer"])
@pytest.mark.parametrize("method", METHODS)
def test_find_sopsp_from_saddle(benchmark, name, method):
    _, fo, z0, eps, mu2, _ = _problem(name)
    benchmark.group = f"certified eps-SOPSP from the saddle: {name}"
    res = benchmark(lambda: find_sopsp(fo, z0, eps, mu2=mu2, method=method))
    assert res.success and res.certificate.is_sopsp
    assert name != "example1" or res.nit <= 10


@pytest.mark.slow
def test_pgd_from_saddle(benchmark):
    _, fo, z0, eps, mu2, _ = _problem("breast_cancer")
    ell = rc.estimate_ell_rho(fo, z0, seed=0)[0]
    benchmark.group = "certified eps-SOPSP from the saddle: breast_cancer"
    res, rep = benchmark(lambda: pgd_until_certified(fo, z0, eps, mu2=mu2, ell=ell))
    assert rep.is_sopsp


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    main(parser.parse_args().repeat)
