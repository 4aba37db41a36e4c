"""estimate_hessian_lipschitz: the Hessian-Lipschitz constant mu2 of Definition 1 on a stated
region.  Example 1's constant on Remark 3's box is known in closed form (derived below) and
bounded rigorously; elsewhere the estimate is checked against lower bounds of the truth
(difference quotients of dense Hessians), and the inputs are validated."""

import itertools
import json
import time

import numpy as np
import pytest

import resnet_core as rc
from resnet_core import lipschitz as L
from resnet_core.lipschitz import Ball, Box, estimate_hessian_lipschitz, region_from_dict
from conftest import make_data


def _fo(rng, n, d, k, loss="logistic", head="residual", n_threads=1):
    # One kernel thread: these problems are tiny, and on a loaded machine OpenMP threads
    # waiting for cores make every pass ~100x slower, whatever the estimator does.
    X, y, sw = make_data(rng, n, d, loss)
    Phi = np.tanh(rng.standard_normal((n, k)) + X[:, :1])
    return rc.FeatureObjective(X, Phi, y, loss=loss, head=head, sample_weight=sw,
                               n_threads=n_threads)


def _example1(eps):
    obj, z0 = rc.theory.example1(eps)
    obj.n_threads = 1
    return obj, z0


def _in_ball(rng, ball, m):
    n = ball.dim
    g = rng.standard_normal((m, n))
    g /= np.linalg.norm(g, axis=1, keepdims=True)
    return ball.center + ball.radius * rng.random((m, 1)) ** (1.0 / n) * g


def _pairwise_lower_bound(fo, points, rng, short=1e-3):
    """max ||H(a) - H(b)||_2 / ||a - b|| over pairs of points (far apart, and a short
    step from each point in a random direction): each ratio is <= mu2 on a convex region
    holding both points (mean value theorem)."""
    H = [fo.hessian(p) for p in points]
    best = 0.0
    for i in range(0, len(points) - 1, 2):
        dist = np.linalg.norm(points[i] - points[i + 1])
        if dist > 0:
            best = max(best, np.linalg.norm(H[i] - H[i + 1], 2) / dist)
    for p, Hp in zip(points, H):
        u = rng.standard_normal(p.size)
        u *= short / np.linalg.norm(u)
        best = max(best, np.linalg.norm(fo.hessian(p + u) - Hp, 2) / short)
    return best


# -- Example 1 ----------------------------------------------------------------------------

# F(w, v) = (w a - 1)^2 / 2 with a = 1 + eps v.  Its derivatives (paper.md):
#   F_ww = a^2,  F_wv = eps (2 w a - 1),  F_vv = eps^2 w^2,
# so the third derivatives are
#   F_www = 0,  F_wwv = 2 eps a,  F_wvv = 2 eps^2 w,  F_vvv = 0
# and the fourth F_wwvv = 2 eps^2 (constant: F is a quartic).  With alpha = 2 eps a and
# beta = 2 eps^2 w,
#   T(u, u, u) = 3 alpha u_w^2 u_v + 3 beta u_w u_v^2,
# affine in (alpha, beta), hence in (w, v).  ||T|| = max_|u|=1 |T(u, u, u)| is a norm of
# (alpha, beta), so convex: its maximum over the box [-2/eps, 2/eps]^2 is at a corner, where
# a = 1 + eps v is -1 or 3 and eps w is +-2, i.e. (alpha, beta) = eps (a', b') with
# a' in {-2, 6}, b' in {-4, 4}.  On u = (cos t, sin t), tau = tan t:
#   T(u, u, u) = eps (3 a' tau + 3 b' tau^2) / (1 + tau^2)^(3/2)   (and 0 at cos t = 0),
# stationary where 3 a' + 6 b' tau - 6 a' tau^2 - 3 b' tau^3 = 0.  So mu2 = K eps with K
# the largest |T| over those roots and corners: K = 10.6488 (at a' = 6, b' = +-4).

def _example1_K() -> float:
    best = 0.0
    for a, b in itertools.product((-2.0, 6.0), (-4.0, 4.0)):
        roots = np.roots([-3 * b, -6 * a, 6 * b, 3 * a])
        for tau in roots[np.abs(roots.imag) < 1e-12].real:
            best = max(best, abs(3 * a * tau + 3 * b * tau**2) / (1 + tau**2) ** 1.5)
    return best


def test_example1_closed_form_is_right():
    """The derivation above against brute force: the third derivatives by differences of
    the paper's Hessian, and K by a fine grid of directions at the four corners."""
    K = _example1_K()
    assert K == pytest.approx(10.648783365635, rel=1e-12)
    eps, h = 0.3, 1e-4

    def hess(w, v):
        a = 1 + eps * v
        return np.array([[a**2, eps * (2 * w * a - 1)], [eps * (2 * w * a - 1), eps**2 * w**2]])

    for w, v in [(0.7, -2.0), (-3.0, 1.5)]:
        Tw = (hess(w + h, v) - hess(w - h, v)) / (2 * h)
        Tv = (hess(w, v + h) - hess(w, v - h)) / (2 * h)
        a = 1 + eps * v
        assert np.allclose(Tw, [[0, 2 * eps * a], [2 * eps * a, 2 * eps**2 * w]], atol=1e-8)
        assert np.allclose(Tv, [[2 * eps * a, 2 * eps**2 * w], [2 * eps**2 * w, 0]], atol=1e-8)
    t = np.linspace(0, 2 * np.pi, 200001)
    c, s = np.cos(t), np.sin(t)
    grid = max(np.abs(3 * a * c**2 * s + 3 * b * c * s**2).max()
               for a, b in itertools.product((-2.0, 6.0), (-4.0, 4.0)))
    assert grid == pytest.approx(K, rel=1e-9)


@pytest.mark.parametrize("eps", [1.0, 0.1, 0.01])
def test_example1_bound_on_remark3_box(eps):
    obj, z0 = _example1(eps)
    box = Box([-2 / eps] * 2, [2 / eps] * 2)
    est = estimate_hessian_lipschitz(obj, box)
    true = _example1_K() * eps
    assert est.rigorous and est.method.startswith("proven bound")
    assert est.safety == 1.0
    assert true * (1 - 1e-12) <= est.value <= 1.5 * true
    assert est.value <= 1.001 * true  # the net's factor 1 / (1 - 3e-4) and rounding
    assert est.lower <= true * (1 + 1e-9)  # attained: cannot exceed the truth
    assert est.lower == pytest.approx(true, rel=1e-9)
    assert est.corners_evaluated == est.corners_total == 4
    assert set(np.abs(est.argmax)) == {2 / eps}  # a corner
    # the honest mu2 = 10.65 eps makes z0 an eps-SOPSP for every eps:
    # lambda_min = -eps >= -sqrt(mu2 eps) = -3.26 eps
    lam = np.linalg.eigvalsh(obj.hessian(z0))[0]
    assert lam == pytest.approx(-eps) and lam >= -np.sqrt(est.value * eps)
    # an explicit safety factor is applied on top of the bound
    est2 = estimate_hessian_lipschitz(obj, box, safety=1.2)
    assert est2.value == pytest.approx(1.2 * est.raw_max) and est2.rigorous


def test_example1_ball_is_sampled():
    obj, z0 = _example1(0.1)
    est = estimate_hessian_lipschitz(obj, Ball(z0, 5.0))
    assert not est.rigorous and est.method.startswith("sampled (the region is a ball)")
    assert est.value == pytest.approx(1.25 * est.raw_max)
    # within the box bound, and above the sampled truth
    assert est.raw_max <= _example1_K() * 0.1
    pts = _in_ball(np.random.default_rng(0), Ball(z0, 5.0), 40)
    lb = _pairwise_lower_bound(obj, list(pts), np.random.default_rng(1))
    assert est.raw_max >= lb * (1 - 1e-6)


# -- certificates of the norm of a 3-tensor ------------------------------------------------

@pytest.mark.parametrize("n", [2, 3])
def test_sphere_net_bound_encloses_the_norm(n):
    rng = np.random.default_rng(n)
    P, theta = L._sphere_net(n, L.NET_THETA[n])
    assert 0 < theta <= L.NET_THETA[n] * (1 + 1e-9)
    assert np.allclose(np.linalg.norm(P, axis=1), 1.0)
    for _ in range(5):
        T = rng.standard_normal((n, n, n))
        T = sum(T.transpose(p) for p in itertools.permutations(range(3))) / 6
        upper = np.abs(L._cubic_form(T, P)).max() / (1 - 3 * theta)
        # a lower bound: many random directions, each pushed to a local maximum
        U = rng.standard_normal((400, n))
        best = max(L._ascend(lambda v: np.einsum("ijk,j,k->i", T, v, v), u, 100, 1e-15)[0]
                   for u in U[:5])
        best = max(best, np.abs(L._cubic_form(T, U / np.linalg.norm(U, axis=1)[:, None])).max())
        # Banach: the norm max_{u, v, x} T(u, v, x) equals max_u |T(u, u, u)|; check with
        # the matrix norms ||T(u, ., .)||_2 along the net
        mats = np.abs(np.linalg.eigvalsh(np.einsum("ijk,ni->njk", T, P[::97]))).max()
        assert best <= upper and mats <= upper
        assert upper <= best * (1 + 4 * theta) + 1e-12


def test_ascent_is_monotone_and_reaches_a_fixed_point():
    rng = np.random.default_rng(3)
    n = 12
    T = rng.standard_normal((n, n, n))
    T = sum(T.transpose(p) for p in itertools.permutations(range(3))) / 6
    tuu = lambda v: np.einsum("ijk,j,k->i", T, v, v)  # noqa: E731
    u0 = rng.standard_normal(n)
    values = [L._ascend(tuu, u0, it, 0.0)[0] for it in (1, 2, 5, 20, 200)]
    assert all(b >= a - 1e-12 for a, b in zip(values, values[1:]))
    f, u = L._ascend(tuu, u0, 500, 1e-15)
    g = tuu(u)  # at a critical point on the sphere, T(., u, u) is parallel to u
    assert np.linalg.norm(g - (g @ u) * u) <= 1e-6 * np.linalg.norm(g)
    assert f == pytest.approx(u @ g) and f > 0


# -- sampled estimates ---------------------------------------------------------------------

def test_ball_logistic_bounds_difference_quotients():
    rng = np.random.default_rng(7)
    fo = _fo(rng, 50, 3, 2, loss="logistic")
    ball = Ball(0.5 * rng.standard_normal(fo.n_params), 0.5)
    est = estimate_hessian_lipschitz(fo, ball, safety=1.0)
    assert not est.rigorous and est.method.startswith("sampled (F_theta is not a polynomial")
    assert est.value == est.raw_max == est.lower
    assert ball.contains(est.argmax)
    assert np.linalg.norm(est.direction) == pytest.approx(1.0)
    lb = _pairwise_lower_bound(fo, list(_in_ball(rng, ball, 200)), rng)
    assert est.value >= lb
    default = estimate_hessian_lipschitz(fo, ball)
    assert default.value == pytest.approx(1.25 * default.raw_max)
    assert default.fd_rel_error < 1e-3 and 0 < default.fd_step <= 1e-3


def test_quartic_with_more_than_three_parameters_is_sampled_but_bounds_quotients():
    rng = np.random.default_rng(8)
    fo = _fo(rng, 40, 2, 1, loss="squared")  # 4 parameters, 16 corners
    z = rng.standard_normal(fo.n_params)
    box = Box.around(z, 0.4)
    est = estimate_hessian_lipschitz(fo, box, safety=1.0)
    assert not est.rigorous and "the maximisation over u is not certified" in est.method
    assert est.corners_evaluated == est.corners_total == 16
    assert box.contains(est.argmax)
    pts = [box.lower + rng.random(fo.n_params) * (box.upper - box.lower) for _ in range(100)]
    corners = [np.where(rng.random(fo.n_params) < 0.5, box.lower, box.upper) for _ in range(40)]
    assert est.value >= _pairwise_lower_bound(fo, pts + corners, rng)


def test_three_parameter_quartic_is_proven_and_tight():
    """d = 1, k = 2 (3 parameters), squared loss: all 8 corners, certified tensor norms."""
    rng = np.random.default_rng(9)
    fo = _fo(rng, 30, 1, 2, loss="squared")
    box = Box(rng.standard_normal(3) - 1.0, rng.standard_normal(3) + 1.5)
    est = estimate_hessian_lipschitz(fo, box)
    assert est.rigorous and est.corners_evaluated == 8
    # brute force at the corners: dense Hessians, central differences (exact for a quartic),
    # norms over many directions
    U = rng.standard_normal((20000, 3))
    U /= np.linalg.norm(U, axis=1, keepdims=True)
    brute, h = 0.0, 0.5
    for c in itertools.product(*zip(box.lower, box.upper)):
        c = np.array(c)
        T = np.stack([(fo.hessian(c + h * e) - fo.hessian(c - h * e)) / (2 * h)
                      for e in np.eye(3)])
        brute = max(brute, np.abs(L._cubic_form(T, U)).max())
    assert brute <= est.value <= 1.02 * brute
    # and the interior never beats the corners (convexity), sampled
    for _ in range(30):
        z = box.lower + rng.random(3) * (box.upper - box.lower)
        T = np.stack([(fo.hessian(z + h * e) - fo.hessian(z - h * e)) / (2 * h)
                      for e in np.eye(3)])
        assert np.abs(L._cubic_form(T, U)).max() <= est.value


def test_skip_head_squared_is_quadratic():
    rng = np.random.default_rng(10)
    fo = _fo(rng, 30, 3, 2, loss="squared", head="skip")
    est = estimate_hessian_lipschitz(fo, Ball(rng.standard_normal(fo.n_params), 2.0))
    assert est.value == 0.0 and est.rigorous and est.n_hessp == 0
    assert est.method.startswith("exact")
    a, b = rng.standard_normal((2, fo.n_params))
    assert np.allclose(fo.hessian(a), fo.hessian(b), atol=1e-13)


def test_a_custom_squared_loss_is_not_trusted_as_a_polynomial():
    rng = np.random.default_rng(11)
    X, y, _ = make_data(rng, 20, 1, "squared")
    sq = rc.CustomLoss(lambda p, y: (0.5 * (p - y) ** 2, p - y, np.ones_like(p)),
                       name="squared")
    fo = rc.FeatureObjective(X, np.tanh(rng.standard_normal((20, 1))), y, loss=sq,
                             n_threads=1)
    est = estimate_hessian_lipschitz(fo, Box.around(np.zeros(2), 1.0), n_points=2, n_refine=2)
    assert not est.rigorous and "not a polynomial" in est.method


def test_large_problem_uses_hessp_only_and_is_fast(monkeypatch):
    """d = k = 8 (72 parameters), residual head: products only, no dense Hessian or
    3-tensor, in well under 2 s with the default settings."""
    rng = np.random.default_rng(12)
    fo = _fo(rng, 200, 8, 8, loss="logistic")

    def no_dense(*a, **k):
        raise AssertionError("dense Hessian formed")

    monkeypatch.setattr(fo, "hessian", no_dense)
    monkeypatch.setattr(fo, "stats", no_dense)
    z = 0.3 * rng.standard_normal(fo.n_params)
    for region in (Ball(z, 0.5), Box.around(z, 0.2)):
        t = time.perf_counter()
        est = estimate_hessian_lipschitz(fo, region)
        elapsed = time.perf_counter() - t
        assert elapsed < 2.0, elapsed
        assert np.isfinite(est.value) and est.value > 0 and not est.rigorous
        assert 100 <= est.n_hessp <= 600
        assert region.contains(est.argmax)
    assert est.corners_total == 2**72 and est.corners_evaluated == 3
    assert "3 of 2^72 corners" in est.method


def test_reproducible_with_a_seed():
    rng = np.random.default_rng(13)
    fo = _fo(rng, 50, 3, 2)
    ball = Ball(rng.standard_normal(fo.n_params), 0.3)
    a = estimate_hessian_lipschitz(fo, ball, seed=5)
    b = estimate_hessian_lipschitz(fo, ball, seed=5)
    assert a.value == b.value and a.n_hessp == b.n_hessp
    assert np.array_equal(a.argmax, b.argmax) and np.array_equal(a.direction, b.direction)
    assert a.to_dict() | {"seconds": 0} == b.to_dict() | {"seconds": 0}


def test_general_objective_is_accepted_by_duck_typing():
    rng = np.random.default_rng(14)
    X, y, _ = make_data(rng, 30, 2, "squared")
    obj = rc.Objective(X, y, loss="squared", widths=(2,), n_threads=1)
    x = obj.init(0)
    est = estimate_hessian_lipschitz(obj, Ball(x, 0.1), n_points=2, n_refine=2)
    assert not est.rigorous and np.isfinite(est.value) and est.value > 0


# -- regions and reports -------------------------------------------------------------------

def test_regions_describe_and_serialise():
    box = Box([-2, -2], [2, 2])
    assert box.describe() == "box [-2, 2]^2"
    assert box.dim == 2 and box.scale == 2.0 and np.array_equal(box.center, [0, 0])
    ball = Ball([0.0, -10.0], 0.5)
    assert ball.describe() == "ball ||z - c|| <= 0.5 around c = [0, -10]"
    big = Ball(np.ones(50), 1.0)
    assert "R^50" in big.describe()
    assert "R^50" in Box.around(np.ones(50), np.linspace(0, 1, 50)).describe()
    for r in (box, ball, big, Box([0, 1, 2], [0, 3, 4])):
        d = json.loads(json.dumps(r.to_dict()))
        assert region_from_dict(d) == r and hash(region_from_dict(d)) == hash(r)
    assert Box.around([1.0, 2.0], 0.5) == Box([0.5, 1.5], [1.5, 2.5])
    with pytest.raises(Exception):  # frozen
        ball.radius = 2.0
    assert not ball.center.flags.writeable


def test_estimate_serialises():
    obj, _ = _example1(0.1)
    est = estimate_hessian_lipschitz(obj, Box([-20, -20], [20, 20]))
    d = json.loads(json.dumps(est.to_dict()))
    assert d["mu2"] == est.value and d["mu2_source"] == "estimated (proven bound)"
    assert d["region"]["kind"] == "box" and d["region"]["description"] == "box [-20, 20]^2"
    assert region_from_dict(d["region"]) == Box([-20, -20], [20, 20])
    assert d["rigorous"] is True and d["n_hessp"] == est.n_hessp
    assert "proven bound" in str(est) and "box [-20, 20]^2" in str(est)


# -- validation ----------------------------------------------------------------------------

def test_linear_max_is_the_frank_wolfe_vertex(rng):
    """``argmax_{s in region} <q, s>``: no point of the region does better."""
    q = np.array([1.0, -2.0, 0.0])
    z = np.array([0.1, 0.2, 0.3])
    box = Box([-1.0, -2.0, -3.0], [1.0, 2.0, 3.0])
    assert np.array_equal(box.linear_max(q, z), [1.0, -2.0, 0.3])  # z's coordinate at q = 0
    ball = Ball([1.0, 0.0, 0.0], 2.0)
    s = ball.linear_max(q, z)
    assert np.allclose(s, [1.0, 0.0, 0.0] + 2.0 * q / np.linalg.norm(q))
    assert np.array_equal(ball.linear_max(np.zeros(3), z), z)
    for region, best in ((box, box.linear_max(q, z)), (ball, s)):
        others = [region.project(rng.uniform(-4, 4, 3)) for _ in range(200)]
        assert all(q @ o <= q @ best + 1e-12 for o in others) and region.contains(best)


def test_region_validation():
    with pytest.raises(ValueError, match="radius must be a positive finite number"):
        Ball([0.0, 0.0], 0.0)
    with pytest.raises(ValueError, match="radius"):
        Ball([0.0, 0.0], -1.0)
    for bad in (np.nan, np.inf):
        with pytest.raises(ValueError, match="radius"):
            Ball([0.0, 0.0], bad)
    with pytest.raises(TypeError, match="radius"):
        Ball([0.0, 0.0], "1")
    with pytest.raises(ValueError, match="center must be finite"):
        Ball([0.0, np.nan], 1.0)
    with pytest.raises(ValueError, match="center must be 1-D"):
        Ball(np.zeros((2, 2)), 1.0)
    with pytest.raises(ValueError, match="center must have at least one coordinate"):
        Ball([], 1.0)
    with pytest.raises(ValueError, match=r"lower must be <= upper coordinatewise; lower\[1\]"):
        Box([0.0, 3.0], [1.0, 2.0])
    with pytest.raises(ValueError, match="upper must be finite"):
        Box([0.0, 0.0], [1.0, np.inf])
    with pytest.raises(ValueError, match="lower must be finite"):
        Box([-np.inf, 0.0], [1.0, 1.0])
    with pytest.raises(ValueError, match="same length"):
        Box([0.0], [1.0, 2.0])
    with pytest.raises(ValueError, match="half_width"):
        Box.around([0.0, 0.0], -1.0)
    with pytest.raises(ValueError, match="region dict"):
        region_from_dict({"kind": "sphere"})


def test_estimator_validation():
    obj, z0 = _example1(0.1)
    with pytest.raises(ValueError, match="region has dimension 3 but objective.n_params is 2"):
        estimate_hessian_lipschitz(obj, Ball(np.zeros(3), 1.0))
    with pytest.raises(TypeError, match="region must be a Ball or a Box"):
        estimate_hessian_lipschitz(obj, (z0, 1.0))
    with pytest.raises(TypeError, match="objective must have n_params and hessp"):
        estimate_hessian_lipschitz(object(), Ball(z0, 1.0))
    region = Ball(z0, 1.0)
    for kw, match in [({"n_points": -1}, "n_points"), ({"n_starts": 0}, "n_starts"),
                      ({"max_iter": 0}, "max_iter"), ({"n_refine": -2}, "n_refine"),
                      ({"max_corners": 0}, "max_corners"), ({"safety": 0.5}, "safety must be >= 1"),
                      ({"safety": np.nan}, "safety"), ({"fd_step": 0.0}, "fd_step"),
                      ({"fd_step": -1e-3}, "fd_step")]:
        with pytest.raises(ValueError, match=match):
            estimate_hessian_lipschitz(obj, region, **kw)
    with pytest.raises(TypeError, match="n_points"):
        estimate_hessian_lipschitz(obj, region, n_points=2.5)
