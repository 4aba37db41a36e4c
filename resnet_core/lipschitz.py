r"""The Hessian-Lipschitz constant ``mu2`` of ``F_theta`` on a region the caller states.

Definition 1 (``paper.md``) calls a point an eps-SOPSP when ``||grad F_theta|| <= eps`` and
``lambda_min(hess F_theta) >= -sqrt(mu2 eps)``, where ``mu2`` is the Lipschitz constant of
``hess F_theta`` (spectral norm) on an open set containing the point.  This module
estimates it on a region (:mod:`resnet_core.regions`): a :class:`Ball` or a :class:`Box` of
flat parameter vectors ``z = [w, vec(V)]`` (residual head) or ``[w, v]`` (skip head).

What is computed
----------------
On a convex region ``R`` the Lipschitz constant of the Hessian in the spectral norm is

    mu2(R) = sup_{z in R} ||D^3 F(z)||,
    ||T|| = sup_{|u| = 1} ||D_u hess F(z)||_2 = sup_{|u| = |v| = |x| = 1} T(u, v, x)

(mean value theorem one way, a limit of difference quotients the other).  ``T = D^3 F(z)``
is a symmetric trilinear form, so by Banach's theorem on symmetric multilinear forms its
norm is also ``sup_{|u| = 1} |T(u, u, u)| = sup_{|u| = 1} T(u, u, u)`` (odd degree).  Two
things are needed, and neither touches a dense 3-tensor on large problems:

- ``T(., u, u)`` (a vector) at cost two ``hessp`` calls, by symmetry of ``T`` and central
  differences of Hessian-vector products along ``u`` itself:
  ``T(., u, u) = (D_u hess F) u ~ (H(z + h u) u - H(z - h u) u) / (2 h)``.
- ``D^4 F(z)[u, u, u, .] ~ (H(z + h u) u - 2 H(z) u + H(z - h u) u) / h^2`` (one more call),
  the gradient in ``z`` of ``G(z, u) = T_z(u, u, u)``.

Method
------
1. Points: the region's center; its extreme points (all ``2^m`` corners of a box when
   ``2^m <= max_corners``, ``m`` the number of coordinates of positive width, otherwise
   ``ceil(n_points / 2)`` random corners; ``ceil(n_points / 2)`` random points on the
   sphere of a ball); uniform random points inside for the rest of ``n_points``.
2. At each point, ``max_u T(u, u, u)`` by the shifted symmetric higher-order power method
   (SS-HOPM, Kolda & Mayo 2011): ``u <- (T(., u, u) + alpha u) / ||.||`` with the first
   shift ``alpha`` in ``0, s, 4 s, 16 s`` (``s = ||T(., u, u)||``) that increases
   ``T(u, u, u)``: a monotone ascent to a local maximum, from the best direction found so
   far and ``n_starts`` random ones, ``max_iter`` steps at most.
   When ``n_params <= 3`` the tensor itself is formed instead (``2 n_params^2`` hessp
   calls, at steps ``h`` and ``h / 2``) and its norm is bounded above with a certificate:
   ``max |T(u, u, u)|`` on a net of the sphere of geodesic mesh ``theta``, divided by
   ``1 - 3 theta`` (Bernstein's inequality for the trigonometric polynomial of degree 3
   that ``T(u, u, u)`` is on every great circle), plus twice the Frobenius norm of
   ``T_h - T_{h/2}`` (the differences' error, measured).
3. Refinement of the best ``(z, u)``: ``n_refine`` ascent steps of ``G(z, u) = T_z(u, u, u)``
   alternating in ``z`` and ``u``.  In ``z`` (``u`` fixed), with ``q = D^4 F(z)[u, u, u, .]``,
   the first of these that increases ``G``: the Frank-Wolfe vertex
   ``s = argmax_{s in region} <q, s>`` (a corner of the box, a point of the ball's sphere;
   the exact maximiser when ``G`` is affine in ``z``, as for a quartic), projected gradient
   steps of length ``size / 4^j`` and Frank-Wolfe steps ``z + 2^-j (s - z)``, ``j = 0..3``;
   then two SS-HOPM steps in ``u``.  Stops when no step in ``z`` increases ``G``.
4. ``value = safety * raw_max``.

Step of the differences: for a quartic ``F`` (squared loss, residual head) the Hessian is
quadratic in ``z`` and central differences are exact for any step up to rounding, so the
step is the region's size (least rounding).  Otherwise the step starts at
``1e-3 min(size, 1)`` and is divided by 4 until ``T(., u, u)`` at ``h`` and ``h / 2``
agree to ``1e-4`` relative (random ``u`` at the center; at most 4 divisions); the
disagreement there and at the final point is reported as ``fd_rel_error``.

When the value is a proven bound (``rigorous``)
-----------------------------------------------
The sampled maximum is a LOWER estimate of ``mu2`` in general (up to the differences'
error): local ascent can miss the supremum, by a factor 2 in a 72-dimensional box for the
logistic loss (seeds disagree that much there).  The safety factor (default 1.25) is a
stated margin, not a proof.  The result is an upper bound exactly when

- ``F_theta`` is a polynomial of degree at most 4 in ``z`` (:class:`FeatureObjective`,
  built-in squared loss): then ``D^3 F`` is affine in ``z``, its norm is convex in ``z``,
  and the supremum over a box is attained at a corner (interior points and refinement are
  then skipped);
- the region is a box and all its corners were evaluated;
- the norm at each corner is certified from above (the net bound, ``n_params <= 3``).

Then ``raw_max`` is the largest certified upper bound and ``rigorous`` is True (exact up to
floating-point rounding; the measured rounding is added).  With the skip head and the
squared loss ``F_theta`` is quadratic: ``mu2 = 0`` exactly, without any evaluation.  A ball
is never ``rigorous`` (its extreme points are not finitely many).

Monotone under inclusion, and a proven upper bound
--------------------------------------------------
Every estimate is remembered with its objective (weakly: it goes with the objective); an
estimate on a region is at least the ``lower`` of every region inside it evaluated before
(``inherited_from`` names it), since that norm is attained at a point of both.  Besides the
estimate, ``upper`` is a proven upper bound where one is known: ``raw_max`` when
``rigorous``, else the derivative bound of :func:`proven_upper_bound` (squared and logistic
losses; module ``_lipschitz_bounds``), often far above the truth.  A certificate decides
True from the sampled ``lower`` and False only from ``upper``.

Cost
----
Each ``hessp`` at a new point is one pass over the data.  With the defaults
(``n_points=6, n_starts=1, max_iter=6, n_refine=12``) and ``n_params > 3``: at most
``2 (1 + n_starts)(1 + 4 max_iter)`` calls per point, typically
``2 (1 + n_starts)(1 + max_iter) = 28``; about 9 per refinement step; 8 for the step
checks: 200-400 ``hessp`` calls in all (``n_hessp`` in the result says how many; 220-390
measured on d = k = 8, 72 parameters).  With ``n_params <= 3``: ``4 n_params^2`` calls per
point; Example 1 (a box in the plane, quartic) takes 84.
"""

from __future__ import annotations

import functools
import itertools
import json
import math
import threading
import time
import weakref
from typing import NamedTuple
from dataclasses import dataclass, field

import numpy as np

from ._lipschitz_bounds import DerivativeBounds, derivative_bounds, region_norm_bounds
from ._schema import validated
from .losses import BuiltinLoss
from .objective import FeatureObjective
from .regions import Ball, Box, Region, region_from_dict

__all__ = [
    "Ball",
    "Box",
    "DerivativeBounds",
    "HessianLipschitzEstimate",
    "Region",
    "UpperBound",
    "derivative_bounds",
    "estimate_hessian_lipschitz",
    "proven_upper_bound",
    "region_from_dict",
]

#: Largest ``n_params`` for which the 3-tensor is formed and its norm certified by a net.
EXACT_DIM = 3
#: Geodesic mesh of the sphere net, per dimension (the bound is inflated by 1 / (1 - 3 theta)).
NET_THETA = {2: 1e-4, 3: 5e-3}
#: Safety factor of a sampled (not proven) estimate.
DEFAULT_SAFETY = 1.25
#: Ascent steps over u after each refinement step in z.
REFINE_U_STEPS = 2
#: Relative agreement of the differences at ``h`` and ``h / 2`` accepted by the step check.
FD_RTOL = 1e-4


# -- result ---------------------------------------------------------------------------------

@dataclass(frozen=True, eq=False)
class HessianLipschitzEstimate:
    """An estimate of ``mu2 = sup_{z in region} ||D^3 F_theta(z)||``.

    Attributes
    ----------
    value : float
        The ``mu2`` to use: ``safety * raw_max``.
    raw_max : float
        Before the safety factor: the certified upper bound when ``rigorous``, otherwise
        the largest norm found (a lower estimate of the supremum).
    lower : float
        The largest ``||D^3 F(z)||`` attained at an evaluated point (a lower bound of
        ``mu2`` up to the differences' error).
    safety : float
    rigorous : bool
        Whether ``raw_max`` is a proven upper bound (see the module notes).
    method : str
        How it was obtained, in words.
    region : dict
        The region's :meth:`to_dict`, with its ``describe()`` under ``"description"``.
    n_points : int
        Points of the region where the norm was evaluated (refinement included).
    n_hessp : int
        Hessian-vector products used.
    corners_evaluated, corners_total : int
        Corners of a box evaluated / existing (0 and None for a ball).
    fd_step : float
        Step of the central differences.
    fd_rel_error : float
        ``||T_h(., u, u) - T_{h/2}(., u, u)|| / ||T_{h/2}(., u, u)||`` at the step check (the
        center, random ``u``) and, with ``n_params > 3``, at the final point: the
        differences' error (rounding only for a quartic; meaningless where ``T = 0``).
    argmax : array or None
        Where the largest norm was found.
    direction : array or None
        The unit ``u`` maximising ``T(u, u, u)`` there.
    seconds : float
    upper : float or None
        A proven upper bound of ``mu2`` on the region: ``raw_max`` when ``rigorous``, else
        the derivative bound of :func:`proven_upper_bound` where the loss has one (often far
        above the truth), else None.
    upper_method : str
        How ``upper`` was obtained (or why there is none).
    inherited_from : dict or None
        The evaluated region inside this one whose larger ``lower`` was taken over (estimates
        are monotone under inclusion), with its ``description``; None when none was larger.
    """

    value: float
    raw_max: float
    lower: float
    safety: float
    rigorous: bool
    method: str
    region: dict
    n_points: int
    n_hessp: int
    corners_evaluated: int = 0
    corners_total: int | None = None
    fd_step: float = 0.0
    fd_rel_error: float = 0.0
    argmax: np.ndarray | None = field(default=None, repr=False)
    direction: np.ndarray | None = field(default=None, repr=False)
    seconds: float = 0.0
    upper: float | None = None
    upper_method: str = ""
    inherited_from: dict | None = None

    @property
    def mu2(self) -> float:
        """Alias of :attr:`value`."""
        return self.value

    @property
    def source(self) -> str:
        """``"estimated (proven bound)"`` or ``"estimated (sampled)"``: for a report's
        ``mu2_source``."""
        return "estimated (proven bound)" if self.rigorous else "estimated (sampled)"

    def to_dict(self) -> dict:
        """A JSON-serialisable dict of every field, plus ``mu2`` and ``mu2_source``."""
        out = {"mu2": self.value, "mu2_source": self.source}
        for name in self.__dataclass_fields__:
            v = getattr(self, name)
            if isinstance(v, np.ndarray):
                v = v.tolist()
            elif isinstance(v, (np.floating, np.integer, np.bool_)):
                v = v.item()
            out[name] = v
        json.dumps(out)
        return out

    def __str__(self) -> str:
        kind = "proven bound" if self.rigorous else "sampled estimate"
        up = ("" if self.rigorous or self.upper is None else
              f"; proven upper bound {self.upper:.6g}")
        return (f"mu2 = {self.value:.6g} ({kind}; raw {self.raw_max:.6g} x safety "
                f"{self.safety:g}{up}) on {self.region.get('description', '')}: "
                f"{self.n_points} points, {self.n_hessp} hessp, {self.seconds * 1e3:.0f} ms")


# -- the estimator --------------------------------------------------------------------------

def _polynomial_degree(objective) -> int | None:
    """Degree of ``F_theta`` as a polynomial in ``z``, or None when it is not one:
    4 for the residual head with the built-in squared loss (``p`` is quadratic in ``z``),
    2 for the skip head (``p`` linear)."""
    if not isinstance(objective, FeatureObjective):
        return None
    loss = objective.loss
    if isinstance(loss, BuiltinLoss) and loss.quadratic:
        return 4 if objective.head == "residual" else 2
    return None


@functools.lru_cache(maxsize=8)
def _sphere_net(n: int, theta_target: float):
    """Points on the "+" faces of the cube ``[-1, 1]^n`` (spacing ``s``), projected to the
    unit sphere, and the geodesic radius ``theta`` within which they cover the sphere up to
    sign.

    Any unit ``q`` has ``q`` or ``-q`` on a "+" face after scaling by ``1 / max|q_i|``; the
    nearest grid point is within ``(s / 2) sqrt(n - 1)`` there, and the radial projection
    onto the sphere, the metric projection onto the unit ball, is 1-Lipschitz outside it.
    """
    if n == 1:
        return np.ones((1, 1)), 0.0
    chord_target = 2 * math.sin(theta_target / 2)
    m = int(math.ceil(2 / (2 * chord_target / math.sqrt(n - 1)))) + 1
    s = 2.0 / (m - 1)
    chord = 0.5 * s * math.sqrt(n - 1)
    theta = 2 * math.asin(min(chord / 2, 1.0))
    g = np.linspace(-1.0, 1.0, m)
    face = np.stack([a.ravel() for a in np.meshgrid(*([g] * (n - 1)), indexing="ij")], axis=1)
    P = np.concatenate([np.insert(face, a, 1.0, axis=1) for a in range(n)])
    P /= np.linalg.norm(P, axis=1, keepdims=True)
    P.setflags(write=False)
    return P, theta


def _cubic_form(T: np.ndarray, P: np.ndarray) -> np.ndarray:
    """``T(u, u, u) = sum_{i <= j <= k} m_ijk T_ijk u_i u_j u_k`` for each row ``u`` of ``P``
    (``m_ijk`` the number of distinct permutations of ``(i, j, k)``; ``T`` symmetric)."""
    n = T.shape[0]
    cols = [np.ascontiguousarray(P[:, i]) for i in range(n)]
    out = np.zeros(P.shape[0])
    for i, j, k in itertools.combinations_with_replacement(range(n), 3):
        mult = 6 // math.prod(math.factorial(c) for c in
                              (list((i, j, k)).count(x) for x in {i, j, k}))
        out += (mult * T[i, j, k]) * (cols[i] * cols[j] * cols[k])
    return out


def _ascend(tuu, u0: np.ndarray, max_iter: int, rtol: float = 1e-6,
            t0: np.ndarray | None = None):
    """Monotone ascent of ``f(u) = T(u, u, u)`` on the unit sphere (shifted SS-HOPM).

    ``tuu(u)`` returns the vector ``T(., u, u)`` (``grad f = 3 T(., u, u)``).  Each step is
    ``u <- (T(., u, u) + alpha u) / ||.||`` with ``alpha = 0, s, 4 s, 16 s``
    (``s = ||T(., u, u)||``), the first that increases ``f``; stops when none does or the
    increase is below ``rtol f``.  ``t0``: ``T(., u0, u0)`` when already known.
    Returns ``(f, u)``.
    """
    u = u0 / np.linalg.norm(u0)
    t = tuu(u) if t0 is None else t0
    f = float(u @ t)
    if f < 0:  # T(., -u, -u) = T(., u, u) and f(-u) = -f
        u, f = -u, -f
    for _ in range(max_iter):
        s = float(np.linalg.norm(t))
        gain = None
        for alpha in (0.0, s, 4 * s, 16 * s):
            y = t + alpha * u
            ny = float(np.linalg.norm(y))
            if not (ny > 0 and math.isfinite(ny)):
                break
            un = y / ny
            tn = tuu(un)
            fn = float(un @ tn)
            if fn > f:
                gain = fn - f
                u, t, f = un, tn, fn
                break
        if gain is None or gain <= rtol * abs(f):
            break
    return f, u


class _Evaluator:
    """``||D^3 F(z)||`` at points, by central differences of ``objective.hessp``."""

    def __init__(self, objective, h: float, tensor_mode: bool, rng, n_starts: int,
                 max_iter: int):
        self.obj = objective
        self.n = int(objective.n_params)
        self.h = h
        self.tensor_mode = tensor_mode
        self.rng = rng
        self.n_starts = n_starts
        self.max_iter = max_iter
        self.n_hessp = 0
        self.n_points = 0
        self.best_u = None

    def hv(self, z: np.ndarray, p: np.ndarray) -> np.ndarray:
        self.n_hessp += 1
        out = np.asarray(self.obj.hessp(z, p), dtype=np.float64)
        if not np.all(np.isfinite(out)):
            raise FloatingPointError(f"hessp returned a non-finite value at a point within "
                                     f"{self.h:.3g} of the region")
        return out

    def tuu(self, z: np.ndarray, u: np.ndarray, h: float | None = None) -> np.ndarray:
        """``T(., u, u) ~ (H(z + h u) u - H(z - h u) u) / (2 h)``: 2 hessp."""
        h = self.h if h is None else h
        return (self.hv(z + h * u, u) - self.hv(z - h * u, u)) / (2 * h)

    def d4(self, z: np.ndarray, u: np.ndarray) -> np.ndarray:
        """``D^4 F(z)[u, u, u, .] ~ (H(z + h u) u - 2 H(z) u + H(z - h u) u) / h^2``: 3 hessp."""
        h = self.h
        return (self.hv(z + h * u, u) - 2 * self.hv(z, u) + self.hv(z - h * u, u)) / h**2

    def tensor(self, z: np.ndarray, h: float) -> np.ndarray:
        """The symmetrised 3-tensor ``T[i, j, k] = d^3 F / dz_i dz_j dz_k``: ``2 n^2`` hessp."""
        n = self.n
        T = np.empty((n, n, n))
        eye = np.eye(n)
        for i in range(n):
            for j in range(n):
                T[i, j] = (self.hv(z + h * eye[i], eye[j])
                           - self.hv(z - h * eye[i], eye[j])) / (2 * h)
        return sum(T.transpose(p) for p in itertools.permutations(range(3))) / 6

    def norm_at(self, z: np.ndarray):
        """``(lower, upper, u)``: ``max_u T_z(u, u, u)`` found, a certified upper bound of it
        (tensor mode; None otherwise), the maximising direction.  Without the tensor: from
        the best direction so far and ``n_starts`` random ones."""
        self.n_points += 1
        if self.tensor_mode:
            Th = self.tensor(z, self.h)
            Th2 = self.tensor(z, self.h / 2)
            fd = 2.0 * float(np.linalg.norm(Th - Th2))  # Frobenius >= operator norm
            P, theta = _sphere_net(self.n, NET_THETA.get(self.n, 0.0))
            vals = np.abs(_cubic_form(Th, P))
            i = int(np.argmax(vals))
            lower, u = _ascend(lambda v: np.einsum("ijk,j,k->i", Th, v, v), P[i], 200, 1e-15)
            lower = max(lower, float(vals[i]))
            upper = max(float(vals[i]) / (1 - 3 * theta), lower) + fd
            return lower, upper, u
        starts = [] if self.best_u is None else [self.best_u]
        starts += [self.rng.standard_normal(self.n) for _ in range(self.n_starts)]
        best = (-math.inf, None)
        for u0 in starts:
            f, u = _ascend(lambda v: self.tuu(z, v), u0, self.max_iter)
            if f > best[0]:
                best = (f, u)
        return best[0], None, best[1]


def _choose_step(ev: _Evaluator, z: np.ndarray, h0: float, polynomial: bool):
    """Step ``h`` and the relative disagreement of ``T(., u, u)`` at ``h`` and ``h / 2``
    (random ``u``); for a non-polynomial ``F`` divided by 4 until it is below ``FD_RTOL``."""
    u = ev.rng.standard_normal(ev.n)
    u /= np.linalg.norm(u)
    best = None
    h = h0
    for _ in range(1 if polynomial else 5):
        a, b = ev.tuu(z, u, h), ev.tuu(z, u, h / 2)
        rel = float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-300))
        if best is None or rel < best[1]:
            best = (h, rel)
        if rel <= FD_RTOL:
            break
        h /= 4
    return best


@validated
def estimate_hessian_lipschitz(objective, region: Region, *, n_points: int = 6,
                               n_starts: int = 1, max_iter: int = 6, n_refine: int = 12,
                               max_corners: int = 16, seed: int | None = 0,
                               safety: float | None = None,
                               fd_step: float | None = None) -> HessianLipschitzEstimate:
    r"""Estimate ``mu2 = sup_{z in region} ||D^3 F_theta(z)||``, the Lipschitz constant of
    ``hess F_theta`` (spectral norm) on a convex region.

    ``||D^3 F(z)|| = sup_{|u| = 1} ||D_u hess F(z)||_2 = sup_{|u| = 1} T_z(u, u, u)`` with
    ``T_z = D^3 F(z)`` (Banach's theorem for symmetric trilinear forms); the method, its
    cost and when the result is a proven bound are in the module notes.

    Parameters
    ----------
    objective : FeatureObjective
        ``F_theta`` over ``z = [w, vec(V)]`` (or ``[w, v]``); anything with ``n_params`` and
        ``hessp(z, p)`` works (then the estimate is never ``rigorous``).
    region : Ball or Box
        Of dimension ``objective.n_params``.
    n_points : int
        Points sampled besides the center and the enumerated corners (>= 0).
    n_starts : int
        Random starting directions per point for the maximisation over ``u`` (>= 1), on top
        of the best direction found so far.
    max_iter : int
        Ascent steps per start (>= 1).
    n_refine : int
        Ascent steps (in ``z``, then ``u``) refining the best point (>= 0).
    max_corners : int
        Enumerate all the box's corners when there are at most this many (>= 1).
    seed : int or None
        Seed of the random points and directions.
    safety : float, optional
        Factor >= 1 applied to ``raw_max``; default 1 for a proven bound, 1.25 otherwise.
    fd_step : float, optional
        Step of the central differences (default: chosen and checked, module notes).

    Returns
    -------
    HessianLipschitzEstimate
        ``value = safety * raw_max``, with the region, method, counts and ``rigorous``.

    Raises
    ------
    TypeError
        ``objective`` without ``n_params``/``hessp``, or ``region`` not a Ball or Box.
    ValueError
        ``region`` of the wrong dimension, or an invalid setting.
    """
    t0 = time.perf_counter()
    if not (hasattr(objective, "hessp") and hasattr(objective, "n_params")):
        raise TypeError("objective must have n_params and hessp(z, p) (a FeatureObjective); "
                        f"got {type(objective).__name__}")
    if not isinstance(region, (Ball, Box)):
        raise TypeError(f"region must be a Ball or a Box; got {type(region).__name__}")
    n = int(objective.n_params)
    if region.dim != n:
        layout = ""
        if isinstance(objective, FeatureObjective):
            layout = (f" (z = [w, vec(V)], d = {objective.d}, k = {objective.k})"
                      if objective.head == "residual" else
                      f" (z = [w, v], d = {objective.d}, k = {objective.k})")
        raise ValueError(f"region has dimension {region.dim} but objective.n_params is {n}"
                         f"{layout}")
    rng = np.random.default_rng(seed)
    region_info = dict(region.to_dict(), description=region.describe())
    degree = _polynomial_degree(objective)
    center = np.asarray(region.center, dtype=np.float64)

    if degree == 2:
        return HessianLipschitzEstimate(
            value=0.0, raw_max=0.0, lower=0.0, safety=1.0 if safety is None else safety,
            rigorous=True, region=region_info, n_points=0, n_hessp=0,
            method="exact: F_theta is quadratic in z (skip head, squared loss), so D^3 F = 0",
            corners_evaluated=0, corners_total=_corners_total(region),
            argmax=center, direction=None, seconds=time.perf_counter() - t0,
            upper=0.0, upper_method="exact: D^3 F = 0")

    # -- the points ---------------------------------------------------------------------
    corners, interior = _sample_points(region, n_points, max_corners, rng)
    # (a box of zero width is its center, evaluated below)
    all_corners = isinstance(region, Box) and (region.free.size == 0
                                               or len(corners) == _corners_total(region))
    tensor_mode = n <= EXACT_DIM
    if degree == 4 and all_corners and tensor_mode:
        # ||D^3 F|| is convex in z: no other point of the box can beat the corners
        interior, n_refine = [], 0

    # -- the step of the differences ----------------------------------------------------
    scale = region.scale
    ev = _Evaluator(objective, 1.0, tensor_mode, rng, n_starts, max_iter)
    if fd_step is not None:
        h0 = fd_step
    elif degree == 4:
        h0 = scale if scale > 0 else 1.0
    else:
        h0 = 1e-3 * (min(scale, 1.0) if scale > 0 else 1.0)
    ev.h, fd_rel = _choose_step(ev, center, h0, polynomial=degree == 4 or fd_step is not None)

    # -- evaluate -----------------------------------------------------------------------
    best = None  # (lower, z, u)
    upper_max = -math.inf
    for z in [center] + corners + interior:
        lower, upper, u = ev.norm_at(z)
        if upper is not None:
            upper_max = max(upper_max, upper)
        if best is None or lower > best[0]:
            best = (lower, z, u)
            ev.best_u = u

    # -- refine: alternate ascent steps in z and in u of G(z, u) = T_z(u, u, u) -------
    lower, z, u = best
    moved = False
    for _ in range(n_refine):
        step = _refine_step(ev, region, z, u, lower)
        if step is None:
            break
        z, g, t = step
        ev.n_points += 1
        ln, un = _ascend(lambda v: ev.tuu(z, v), u, REFINE_U_STEPS, t0=t)
        lower, u = (ln, un) if ln >= g else (g, u)
        moved = True
    if tensor_mode and moved:  # the exact maximisation over u at the refined point
        ln, up, un = ev.norm_at(z)
        upper_max = max(upper_max, up)
        if ln >= lower:
            lower, u = ln, un

    # -- finite-difference check at the argmax (step check point was the center) -------
    if not tensor_mode:
        a, b = ev.tuu(z, u), ev.tuu(z, u, ev.h / 2)
        fd_rel = max(fd_rel, float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-300)))

    rigorous = bool(degree == 4 and all_corners and tensor_mode)
    inherited = _inherit(objective, region, float(lower))
    if inherited is not None:
        lower, z, u = inherited["lower"], inherited["argmax"], inherited["direction"]
    _remember(objective, region, float(lower), z, u)
    raw = float(upper_max) if rigorous else float(lower)
    raw = max(raw, float(lower))
    if rigorous:
        upper, upper_method = raw, "the proven bound itself (raw_max)"
    else:
        upper, upper_method = proven_upper_bound(objective, region)
    if safety is None:
        safety = 1.0 if rigorous else DEFAULT_SAFETY
    method = _describe_method(region, degree, rigorous, tensor_mode, len(corners),
                              len(interior), all_corners, ev, n_refine, safety)
    if inherited is not None:
        method += (f"; the larger estimate {inherited['lower']:.6g} of "
                   f"{inherited['region']['description']} inside it taken over")
    return HessianLipschitzEstimate(
        value=safety * raw, raw_max=raw, lower=float(lower), safety=float(safety),
        rigorous=rigorous, method=method, region=region_info, n_points=ev.n_points,
        n_hessp=ev.n_hessp, corners_evaluated=len(corners) if isinstance(region, Box) else 0,
        corners_total=_corners_total(region), fd_step=float(ev.h), fd_rel_error=float(fd_rel),
        argmax=np.asarray(z, dtype=np.float64).copy(), direction=np.asarray(u).copy(),
        seconds=time.perf_counter() - t0, upper=upper, upper_method=upper_method,
        inherited_from=None if inherited is None else inherited["region"])


# -- monotone under inclusion ---------------------------------------------------------------

#: objective -> [(region, lower, argmax, direction)]: what was evaluated on it (weakly keyed:
#: an entry goes with its objective).  An estimate is at least the largest ``lower`` of every
#: evaluated region inside its own: each is attained at a point of the region.
_EVALUATED: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()
_EVALUATED_LOCK = threading.Lock()
#: Regions remembered per objective (the oldest go first).
MAX_REMEMBERED = 64


def _entries(objective) -> list:
    try:
        return _EVALUATED.setdefault(objective, [])
    except TypeError:  # not weakly referenceable or not hashable: nothing is remembered
        return []


def _inherit(objective, region: Region, lower: float) -> dict | None:
    """The evaluated region inside ``region`` with the largest ``lower``, if above ``lower``."""
    with _EVALUATED_LOCK:
        best = None
        for reg, low, z, u in _entries(objective):
            if low > lower and (best is None or low > best["lower"]) and region.includes(reg):
                best = {"lower": low, "argmax": z, "direction": u,
                        "region": dict(reg.to_dict(), description=reg.describe())}
        return best


def _remember(objective, region: Region, lower: float, z, u) -> None:
    with _EVALUATED_LOCK:
        entries = _entries(objective)
        entries[:] = [e for e in entries if not (e[0] == region and e[1] <= lower)]
        entries.append((region, lower, np.asarray(z, np.float64).copy(),
                        None if u is None else np.asarray(u, np.float64).copy()))
        del entries[:-MAX_REMEMBERED]


class UpperBound(NamedTuple):
    """A proven upper bound of ``mu2`` (``value``; None when there is none) and how it was
    proven, or why there is none (``method``)."""

    value: float | None
    method: str


def proven_upper_bound(objective, region: Region) -> UpperBound:
    """A proven upper bound of ``mu2`` on ``region`` from the loss's derivative bounds
    (:func:`derivative_bounds` on ``{||w|| <= max_R ||w||, ||V||_2 <= max_R ||V||_F}``, a
    region holding ``region``), or ``UpperBound(None, why not)``.  One pass over the data."""
    if not isinstance(objective, FeatureObjective) or getattr(objective, "n_outputs", 1) > 1:
        return UpperBound(None, "no derivative bounds for this objective")
    w_bound, M_bound = region_norm_bounds(region, objective.d)
    b = derivative_bounds(objective, w_bound, M_bound)
    if b.mu2 is None:
        return UpperBound(None, b.reason)
    return UpperBound(b.mu2, f"sup ||D^3 F|| <= E[L3 q^3 + 3 L2 q e] on ||w|| <= {w_bound:.4g}, "
                             f"||V|| <= {M_bound:.4g} (a region holding this one)")


def _refine_step(ev: _Evaluator, region: Region, z: np.ndarray, u: np.ndarray, f: float):
    """One ascent step in ``z`` of ``G(z, u) = T_z(u, u, u)`` (``u`` fixed) from ``f = G(z, u)``:
    the gradient ``q = D^4 F(z)[u, u, u, .]`` (3 hessp), then the first candidate with a larger
    ``G`` (2 hessp each): the Frank-Wolfe vertex ``s = argmax_{region} <q, s>`` (exact
    maximiser when ``G`` is affine in ``z``, as for a quartic ``F``), then projected gradient
    steps of length ``size / 4^j`` and shorter Frank-Wolfe steps.  Returns
    ``(z_new, G, T_{z_new}(., u, u))`` or None."""
    q = ev.d4(z, u)
    nq = float(np.linalg.norm(q))
    if not (nq > 0 and math.isfinite(nq)):
        return None
    s = region.linear_max(q, z)
    scale = region.scale if region.scale > 0 else 1.0
    candidates = [s]
    for j in range(4):
        candidates.append(region.project(z + (scale / 4**j) * q / nq))
        candidates.append(z + 0.5**(j + 1) * (s - z))
    for zn in candidates:
        if not float(q @ (zn - z)) > 0:
            continue
        t = ev.tuu(zn, u)
        g = float(u @ t)
        if g > f * (1 + 1e-12):
            return zn, g, t
    return None


def _corners_total(region: Region) -> int | None:
    return 2 ** int(region.free.size) if isinstance(region, Box) else None


def _sample_points(region: Region, n_points: int, max_corners: int, rng):
    """``(extreme points, interior points)`` as lists of float64 vectors."""
    n = region.dim
    if isinstance(region, Box):
        free, lo, hi = region.free, region.lower, region.upper
        m = int(free.size)
        if m == 0:
            return [], []
        if m <= 62 and 2**m <= max_corners:
            corners = []
            for signs in itertools.product((0, 1), repeat=m):
                c = lo.copy()
                c[free] = np.where(np.array(signs) == 1, hi[free], lo[free])
                corners.append(c)
            n_extreme_random = 0
        else:
            n_extreme_random = (n_points + 1) // 2
            corners = [np.where(rng.random(n) < 0.5, lo, hi) for _ in range(n_extreme_random)]
        interior = [lo + rng.random(n) * (hi - lo) for _ in range(n_points - n_extreme_random)]
        return corners, interior
    c, r = region.center, region.radius
    n_sphere = (n_points + 1) // 2
    out = []
    for i in range(n_points):
        g = rng.standard_normal(n)
        g /= np.linalg.norm(g)
        radius = r if i < n_sphere else r * rng.random() ** (1.0 / n)
        out.append(c + radius * g)
    return out[:n_sphere], out[n_sphere:]


def _describe_method(region, degree, rigorous, tensor_mode, n_corners, n_interior,
                     all_corners, ev, n_refine, safety) -> str:
    if isinstance(region, Box) and region.free.size == 0:
        pts = "its only point (the box has zero width)"
    elif isinstance(region, Box):
        total = _corners_total(region)
        total = f"2^{region.free.size}" if total > 2**20 else str(total)
        pts = (f"center, {'all ' if all_corners else ''}{n_corners} of {total} corners, "
               f"{n_interior} uniform points")
    else:
        pts = f"center, {n_corners} points on the sphere, {n_interior} uniform points"
    if tensor_mode:
        inner = ("3-tensor from central differences of hessp (step "
                 f"{ev.h:.3g}), its norm bounded by a sphere net with Bernstein's inequality")
    else:
        inner = ("max_u T(u, u, u) by shifted SS-HOPM with T(., u, u) from central "
                 f"differences of hessp (step {ev.h:.3g})")
    if rigorous:
        if n_corners:
            pts = f"the center and all {n_corners} corners"
        return ("proven bound: F_theta is a quartic polynomial in z (residual head, squared "
                "loss), so ||D^3 F(z)|| is convex in z and its maximum over the box is at a "
                f"corner; evaluated at {pts}; {inner} (exact "
                "for a quadratic Hessian up to rounding, measured rounding added)")
    why = ("the region is a ball" if isinstance(region, Ball) and degree == 4 else
           "not all corners were evaluated" if degree == 4 and not all_corners else
           f"n_params > {EXACT_DIM}: the maximisation over u is not certified"
           if degree == 4 else "F_theta is not a polynomial of degree <= 4")
    return (f"sampled ({why}): ||D^3 F|| at {ev.n_points} points ({pts}, then at most "
            f"{n_refine} ascent steps in z and u); {inner}; times safety {safety:g}")
