"""The best linear predictor: ``inf_w F_lin(w)`` and ``min_{||w|| <= R} F_lin(w)``, with
``F_lin(w) = E[l(w^T x; y)] = F(w, 0, theta)``, exactly.

Every claim of the paper compares with these numbers, so each case is decided, not left to
whatever a solver reached (the derivations are in ``docs/linear_baseline.md``):

- Squared loss: the minimum is always attained (the minimum-norm solution of the normal
  equations when ``X`` is rank deficient).  Trust-region Newton on the Gram pass takes the
  exact Newton step first; the next passes only confirm it (iterative refinement).
- Logistic and smoothed hinge: trust-region Newton on all the data first, each model from
  one float64 Gram pass (:mod:`resnet_core._gram_pass`; a subsampled Hessian far from the
  minimum, the full one once near it).  An iterate whose margins are all positive (rounding
  bounded), or a direction found by a small linear program on the samples an iterate gets
  wrong when they are few, proves complete separation: the infimum is 0, not attained for
  the logistic loss (``w`` is returned along ``u``, far enough that ``F_lin(w) < 1e-15``)
  and attained for the smoothed hinge.  At a converged minimiser the weights
  ``-s_i l'(m_i) > 0``, corrected by a ``d``-dimensional solve, prove overlap
  (:func:`resnet_core.separability.minimiser_certificate`): attained, no linear program.
  Otherwise :func:`resnet_core.linear_separability` decides (its own certificate, then the
  linear program over every sample): quasi-separation gives the minimum over the samples
  ``u`` leaves on its hyperplane.  The decisions are made by
  :func:`resnet_core._baseline.margin_baseline` (the same for ``c`` outputs) over
  :class:`EnginePasses`.
- A user-defined loss: trust-region Newton from 0; ``converged`` only when the Newton
  decrement says so (a convex loss: the minimum; otherwise a stationary point).
- A radius ``R``: squared loss, the secular equation on the eigendecomposition of the Gram
  matrix (one pass); other losses, projected Newton on the ball
  (:func:`resnet_core._baseline.ball_newton`).  The returned ``w`` is never outside the
  ball; the KKT residual ``||grad F_lin(w) + lam w||`` is reported.

- ``c`` outputs (``loss="cross_entropy"`` on classes, or the squared loss on an (n, c)
  target): the same decisions for ``W`` of shape (c, d), in :mod:`resnet_core.linear_vector`.

Stopping rule: the Newton decrement ``nu^2 = g^T H^+ g`` (twice the decrease the Newton step
predicts) against ``|F|``: ``nu^2 / 2 <= tol |F|``, invariant to rescaling ``X`` or ``y``.
"""

from __future__ import annotations

import contextlib
import functools

import numpy as np
from numpy.typing import ArrayLike

from ._baseline import (CERTIFIED, EPS64, GRAM_TRUST, LOGISTIC_MARGIN, QR_CHUNK,
                        SAFE_EXPONENT, LinearBaselineResult, Separated, gram_model, lines,
                        scale_exponent, scaled_back, scaled_radius, solve)
from ._data import prepare
from ._engine import Engine, SampleBuffers
from ._gram_pass import (accurate_value, chunk_rows, gram_pass, hessian_stride,
                         proven_min_margin, smallest_margins)
from ._sources import is_dask, is_out_of_core
from ._threads import blas_single_thread
from ._trust_region import Model, newton_decrement, qr_factor, safe_norm, trust_region_newton
from ._schema import POSITIVE, validated
from ._validation import to_numpy
from .linear_vector import engine_vector_baseline, vector_baseline
from .losses import Loss, get_loss
from .separability import (MAX_LP_ENTRIES, CombinationSums, Separability, binary_separability,
                           minimiser_certificate, subset_direction)

# Rows per feature of the subsampled Hessian far from the minimum (its relative error is
# about sqrt(d / rows)), and the decrement ``nu^2 <= NEAR |F|`` from which the full Hessian
# is made (once).
HESSIAN_ROWS_PER_FEATURE = 512
NEAR = 1e-4
# A pass after a model whose decrement is at most this fraction of |F| (the default stop:
# the polishing steps) carries the accurate value of the answer (gram_pass's ``value``): it
# is most often the last; otherwise the answer's value takes a pass of its own
# (accurate_value).
VALUE_FROM = 2 * EPS64
# Rows per feature of the Hessian the chord passes (after the full one) still sum: only the
# overlap certificate reads it (any rows will do there; a singular one is made again whole).
CERTIFICATE_ROWS_PER_FEATURE = 128
# The warm start at large n: Newton on every ``sample``-th chunk, about
# ``WARM_ROWS_PER_FEATURE * d`` rows (its minimiser is within about ``sqrt(d / rows)`` of the
# full one, in the Hessian's norm: two or three full passes from the full Hessian's
# neighbourhood instead of the whole path from 0), its Hessian from ``WARM_HESSIAN_ROWS * d``
# of them, stopped at the decrement ``WARM_TOL |F|`` or after ``WARM_ITER`` steps; only when
# the subsample is at least ``WARM_MIN_SAMPLE`` times smaller than the data.
WARM_ROWS_PER_FEATURE = 256
WARM_HESSIAN_ROWS = 128
WARM_TOL = 1e-4
WARM_ITER = 8
WARM_MIN_SAMPLE = 4
# Hessians from float32 products (they only make steps: the far passes' subsampled ones and
# the full one of the chord steps) while the latest condition number is below this share of
# :func:`gram_model` trusts a float32 sum with (``1 / (GRAM_TRUST eps32 d)``: its rounding is
# ``eps32 d ev_max``), so that a model it refuses (then made again in float64) is rare.
SINGLE_HESSIAN_MARGIN = 0.1
# Separation near an iterate with few wrong margins (at most ``SEPARATE_ROWS`` per feature):
# samples per feature of the first subset and of each round's addition (the linear program's
# time grows fast with its rows: 8192 x 128 took 0.6 s, 1024 x 128 0.05 s, and the
# direction of the 1024 smallest margins separated all 1e6 samples), and rounds.
SEPARATE_ROWS = 64
SEPARATE_FIRST = 8
SEPARATE_ROUNDS = 6

__all__ = ["LinearBaselineResult", "baseline_on_engine", "linear_baseline"]


class _Rescale(Exception):
    """Raised after the first pass when ``X`` must be solved rescaled by ``2^e``."""

    def __init__(self, e: int):
        super().__init__(f"rescale by 2^{e}")
        self.e = e


class EnginePasses:
    """:class:`resnet_core._baseline.MarginPasses` (margin losses; the :class:`Passes` part
    for every loss) over a linear engine's data: ``F_lin``, its gradient and Hessian.

    Margin losses (logistic, smoothed hinge): ``F``, ``g`` and the Gram matrix ``H`` in one
    float64 pass (:func:`resnet_core._gram_pass.gram_pass`), the QR factor below only when
    ``H`` is too ill-conditioned for its rounding (:func:`resnet_core._baseline.gram_model`).

    Otherwise the Hessian ``E[l'' x x^T] = R^T R`` of a built-in (convex) loss comes as the factor
    ``R`` of a QR decomposition of the rows ``sqrt(s_i l''_i) x_i``, accumulated chunk by
    chunk (tall-skinny QR: memory ``O(chunk d)``): its small eigenvalues are resolved to
    ``eps^2`` of the largest, where a Gram matrix loses them below ``eps`` (the squared
    condition number).  The squared loss's factor does not depend on ``w``: made once.
    """

    def __init__(self, engine: Engine, check_scale: bool = False):
        self.engine = engine
        self.size = engine.d
        self.empty = np.empty(0, dtype=engine.dtype)
        self.eps = float(np.finfo(engine.dtype).eps)
        self.use_factor = self.convex = engine.loss.code >= 0
        self.constant_hessian = engine.loss.quadratic and self.use_factor
        self._factor = {}
        # Margin losses: Newton models from one float64 Gram pass (F, g, H together), so
        # trial points are evaluated by ``full`` (``trial_full``).
        self.gram_steps = engine.loss.margin and self.use_factor
        self.loss_name = engine.loss.name
        self.decides_separability = self.gram_steps
        self.quadratic = self.constant_hessian
        # a loss that is exactly 0 past a margin reaches its infimum on a separating ray
        self.attains_on_ray = engine.loss.zero_margin is not None
        self.far_margin = (engine.loss.zero_margin * (1 + 1e-9) if self.attains_on_ray
                           else LOGISTIC_MARGIN)
        self.history = []  # (w, GramPass) of the latest Gram passes, newest first
        self.stride = hessian_stride(engine.n, engine.d, HESSIAN_ROWS_PER_FEATURE,
                                     chunk_rows(engine))
        self.reference = None  # (ev, Q, null) of a full Hessian near the minimum
        self.near = False
        self._norms = {}  # chunks' largest row norms
        self._tried = np.iinfo(np.int64).max  # wrong margins at the last separate_near
        self.cert_stride = hessian_stride(engine.n, engine.d, CERTIFICATE_ROWS_PER_FEATURE,
                                          chunk_rows(engine))
        self.cond = np.inf  # condition number of the latest subsampled Hessian
        self.single_cond = SINGLE_HESSIAN_MARGIN / (
            GRAM_TRUST * float(np.finfo(np.float32).eps) * max(engine.d, 1))
        self.check_scale = check_scale and isinstance(engine.X, np.ndarray) \
            and not isinstance(engine.X, np.memmap)
        self.warm_passes = 0  # warm-start passes, each over every ``warm_sample``-th chunk
        self.warm_sample = 1
        self._first = None  # (w, GramPass): the warm start's check, the Newton run's first
        self.decrement = np.inf  # the latest model's Newton decrement over |F|

    def coords(self, w):
        return np.asarray(w, dtype=np.float64)

    def full(self, w, least_shift: float = 0.0) -> Model:
        if self.gram_steps:
            return self._gram_model(w, least_shift)
        buf = self.engine.new_buffers()
        if not self.use_factor:
            F, g, _, H = self.engine.gram(w.astype(self.engine.dtype), self.empty, None, buf)
            return Model.from_hessian(F, g.astype(np.float64), H.astype(np.float64), self.eps)
        need_R = "R" not in self._factor or not self.constant_hessian
        if self.engine.stateless:  # no per-sample buffers: the factor in the same pass
            F, g, R = _grad_and_factor(self.engine, w, need_R)
        else:
            F, g = self.grad(w, buf)
            R = _qr_factor(self.engine.X, buf.q) if need_R else None
        if need_R:
            self._factor["R"] = R
        return Model.from_factor(F, g, self._factor["R"], self.eps, self.engine.n)

    def _gram_model(self, w, least_shift) -> Model:
        """The model from one float64 Gram pass (:func:`gram_pass`).

        Far from the minimum, ``H`` from a subsample of the rows (``stride``); once the
        previous model's decrement is below ``NEAR |F|``, ``H`` from every row, made once
        and kept for the remaining steps (chord steps: ``H`` changes by ``O(||w - w_ref||)``
        there, so they converge as fast as Newton's), from float32 products when the
        subsampled Hessian's condition number is small (``SINGLE_HESSIAN_MARGIN``); the chord
        passes then sum ``H`` over ``CERTIFICATE_ROWS_PER_FEATURE`` rows only, for the
        overlap certificate.  When :func:`gram_model` does not trust ``H``, the QR factor of the
        point instead (one more pass)."""
        exact = self.stride == 1 or (self.near and self.reference is None)
        # float32 products for a Hessian that only makes steps: the full one near the
        # minimum, and the far passes' subsampled ones (the certificate reads the chord
        # passes')
        single_hessian = self.stride > 1 and self.reference is None and \
            self.cond < self.single_cond
        stride = (1 if exact else self.cert_stride if self.reference is not None
                  else self.stride)
        if self._first is not None and np.array_equal(self._first[0], w):
            gp, self._first = self._first[1], None  # the warm start's check, made here
        else:
            # a polishing pass (the last model's decrement at rounding level) is most often
            # the last: it carries the answer's accurate value (no pass of its own then)
            with self._unchecked():
                gp = gram_pass(self.engine, np.asarray(w, dtype=np.float64), stride=stride,
                               norms=self._norms, single_hessian=single_hessian,
                               value=self.decrement <= VALUE_FROM)
        if self.check_scale:
            self._check_scale(gp.top, whole=True)
        self.history = [(w, gp)] + self.history[:3]
        if self.reference is not None:
            m = Model(gp.F, gp.g, *self.reference, EPS64)
        else:
            H = np.triu(gp.H) + np.triu(gp.H, 1).T
            h_eps = float(np.finfo(np.float32).eps) if single_hessian else EPS64
            with blas_single_thread():
                m = gram_model(gp.F, gp.g, H / max(gp.h_share, 1e-300),
                               least_shift=least_shift, h_eps=h_eps) if gp.h_share > 0 else None
            if m is None:
                if single_hessian:  # not trusted in float32: the float64 Hessian instead
                    self.cond = np.inf
                    return self._gram_model(w, least_shift)
                return self._qr_model(w, gp.F, gp.g)
            if exact and self.stride > 1:
                self.reference = (m.ev, m.Q, m.null)
            elif m.ev[0] > m.null:
                self.cond = float(m.ev[-1] / m.ev[0])
        decrement = newton_decrement(m)
        self.near = decrement <= NEAR * abs(m.F)
        self.decrement = decrement / abs(m.F) if m.F else np.inf
        # rounding of g: at most about eps sum lam_i ||x_i|| per component
        pos = m.ev > m.null
        m.noise = float((EPS64 * gp.sums.b_abs) ** 2 * np.mean(1.0 / m.ev[pos])) \
            if pos.any() else 0.0
        return m

    def _unchecked(self):
        """Floating-point warnings off while the range of ``X`` is not yet checked (a pass
        over out-of-range data overflows; it is then discarded, the data rescaled)."""
        return np.errstate(all="ignore") if self.check_scale else contextlib.nullcontext()

    def _check_scale(self, top, whole: bool):
        """After the first pass: raise :class:`_Rescale` when ``X``'s largest magnitude lies
        outside the range :func:`scale_exponent` keeps (read from the largest row norm
        ``top``, which is within ``sqrt(d)`` of it; only when that leaves it open is ``X``
        read again).  ``whole``: the pass saw every row (the check is then done; a
        subsample's pass can only find the range exceeded)."""
        low = 2.0 ** -SAFE_EXPONENT * np.sqrt(self.engine.d)
        if np.isfinite(top) and top <= 2.0 ** SAFE_EXPONENT and (low <= top or not whole):
            self.check_scale = not whole
            return
        self.check_scale = False
        e = scale_exponent(self.engine.X)
        if e:
            raise _Rescale(e)

    def start(self) -> np.ndarray:
        """Where Newton's run starts: 0, or at large ``n`` (``X`` an in-memory array or a
        memmap) the minimiser of ``F_lin`` over every ``sample``-th chunk of rows
        (``WARM_ROWS_PER_FEATURE`` rows per feature), found by trust-region Newton with
        Hessians from ``WARM_HESSIAN_ROWS`` rows per feature (float32 products while
        :func:`gram_model` trusts them).  When that run separates its
        rows or does not converge (separable data: its iterates run along a ray), its last
        point if ``F_lin`` over all the data is below ``F_lin(0)`` there, else 0."""
        eng = self.engine
        zero = np.zeros(self.size)
        rows = chunk_rows(eng)
        sample = eng.n // max(WARM_ROWS_PER_FEATURE * eng.d, rows)
        if not (self.gram_steps and sample >= WARM_MIN_SAMPLE
                and isinstance(eng.X, np.ndarray)):
            return zero
        self.warm_sample = sample
        n_sub = -(-eng.n // rows // sample) * rows
        stride = hessian_stride(n_sub, eng.d, WARM_HESSIAN_ROWS, rows)

        single = True  # float32 Hessians until gram_model refuses one

        def full(z):
            nonlocal single
            self.warm_passes += 1
            with self._unchecked():
                gp = gram_pass(eng, z, stride=stride, norms=self._norms, sample=sample,
                               single_hessian=single)
            if self.check_scale:
                self._check_scale(gp.top, whole=False)
            if gp.min_margin > 0:
                raise Separated(z, gp.min_margin)  # its rows separated
            H = np.triu(gp.H) + np.triu(gp.H, 1).T
            with blas_single_thread():
                m = gram_model(gp.F, gp.g, H / max(gp.h_share, 1e-300),
                               h_eps=float(np.finfo(np.float32).eps) if single else EPS64)
            if m is None and single:
                single = False
                return full(z)
            if m is None:
                raise Separated(z, 0.0)  # ill-conditioned: no warm start
            return m

        try:
            res = trust_region_newton(full, None, zero, tol=WARM_TOL, max_iter=WARM_ITER,
                                      trial_full=True, polish=False)
            w_sub, converged = res.w, res.converged
            if converged and res.model.ev[0] > res.model.null:
                self.cond = float(res.model.ev[-1] / res.model.ev[0])
        except Separated as found:
            w_sub, converged = found.z, False
        if converged:
            return w_sub
        if not np.any(w_sub):
            return zero
        # Its rows separated, or nearly (Newton's iterates run along a ray): a good start for
        # separable data, kept when F_lin over all the data is below F_lin(0) there (the
        # pass is the Newton run's first).
        with self._unchecked():
            gp = gram_pass(eng, w_sub, stride=self.stride, norms=self._norms)
        zero_loss = float(eng.loss.derivatives(np.zeros(1), np.ones(1))[0][0])
        if self.check_scale:
            self._check_scale(gp.top, whole=True)
        if not gp.F < zero_loss * float(np.sum(eng.s)):
            return zero
        self._first = (w_sub, gp)
        return w_sub

    def _qr_model(self, w, F, g) -> Model:
        """The model at ``w`` from the QR factor of the rows ``sqrt(s_i l''_i) x_i``."""
        if self.engine.stateless:
            R = _grad_and_factor(self.engine, w, True)[2]
        else:
            buf = self.engine.new_buffers()
            self.grad(w, buf)
            R = _qr_factor(self.engine.X, buf.q)
        with blas_single_thread():
            return Model.from_factor(F, g, R, EPS64, self.engine.n)

    def pass_at(self, w, make: bool = True):
        """The latest float64 Gram pass made at ``w`` (one more when none was, or None
        without ``make``)."""
        for w_seen, gp in self.history:
            if np.array_equal(w_seen, w) and not gp.single_hessian:
                return gp
        if not make:
            return None
        return gram_pass(self.engine, np.asarray(w, dtype=np.float64), stride=self.stride,
                         norms=self._norms)

    def certificate_sums(self, w) -> CombinationSums:
        """The sums of the latest float64 pass at ``w``; when its Hessian rows (a subsample:
        ``lambda_min`` scales with their number) do not prove overlap, those of a pass with
        every row (one more pass, only where no proof came)."""
        gp = self.pass_at(w)
        if gp.h_share < 1:
            with blas_single_thread():
                if not minimiser_certificate(gp.sums) < CERTIFIED:
                    gp = gram_pass(self.engine, np.asarray(w, dtype=np.float64),
                                   norms=self._norms)
        return gp.sums

    def value(self, w):
        return self.grad(w)[0]

    def grad(self, w, buf=None):
        """``(F_lin(w), grad F_lin(w))`` (``buf``: the point's per-sample buffers, to be
        read afterwards)."""
        buf = self.engine.new_buffers() if buf is None else buf
        F, g, _, _ = self.engine.value_grad(w.astype(self.engine.dtype), self.empty, None, buf,
                                            need_theta=False)
        return F, g.astype(np.float64)

    def margins(self, u):
        """``y_i x_i^T u`` per sample, in the data's dtype (one streamed pass)."""
        p, _ = self.engine.predict(u.astype(self.engine.dtype), self.empty, None)
        return p * self.engine.y

    def separation(self, w) -> float:
        """The smallest margin at ``w``, rounding bounded: positive proves separation.  Read
        from the latest Gram pass when it was at ``w`` and found a margin <= 0 (the usual
        case); one more pass confirms a positive one.  When few margins are wrong
        (``SEPARATE_ROWS * d`` at most, half as many as at the last try),
        :meth:`separate_near` looks for a separating direction near ``w`` (raising
        :class:`Separated` when it finds one)."""
        if self.history and self.history[0][0] is w and self.history[0][1].min_margin <= 0:
            gp = self.history[0][1]
            if gp.n_wrong <= min(SEPARATE_ROWS * self.engine.d, self._tried // 2):
                self._tried = max(gp.n_wrong, 1)
                found = self.separate_near(w, 2 * gp.n_wrong + 8 * self.engine.d)
                if found is not None:
                    raise Separated(*found)
            return gp.min_margin
        return proven_min_margin(self.engine, np.asarray(w, dtype=np.float64))

    def separate_near(self, w, k):
        """Constraint generation from ``w``: the ``k`` samples of smallest margin (at most
        ``SEPARATE_FIRST * d``, or ``SEPARATE_ROWS * d`` when that is every sample), a small
        linear program for a direction separating them
        (:func:`subset_direction`), checked on all the data (rounding bounded); the most
        violated samples join, for ``SEPARATE_ROUNDS`` rounds.  ``(u, smallest margin)`` or
        None (the subset is not separable, or the rounds ran out)."""
        eng = self.engine
        if is_dask(eng.X):
            return None
        # small data: the samples the program can take at once (each round costs 2 passes)
        k = min(k, (SEPARATE_ROWS if eng.n <= SEPARATE_ROWS * eng.d else SEPARATE_FIRST) * eng.d)
        rows = smallest_margins(eng, np.asarray(w, dtype=np.float64), k)
        for _ in range(SEPARATE_ROUNDS):
            A = (np.asarray(eng.X[rows], dtype=np.float64)
                 * np.asarray(eng.y[rows], dtype=np.float64)[:, None])
            u = subset_direction(A)
            if u is None:
                return None
            smallest = proven_min_margin(eng, u)
            if smallest > 0:
                return u, smallest
            rows = np.union1d(rows, smallest_margins(eng, u, k))
        return None

    def ray(self, w, smallest) -> Separability:
        """The separable answer from a ``w`` found to separate every weighted sample;
        ``separated`` is None (all of them) on out-of-core and distributed data, where no
        n-vector is kept."""
        eng = self.engine
        return Separability("separable", w / np.linalg.norm(w),
                            None if eng.stateless else np.asarray(eng.s) > 0, smallest,
                            "separated by a direction from Newton's iterates: every margin "
                            f"y_i x_i^T w > 0 (smallest {smallest:.3g}, rounding bounded)")

    def linear_program(self, max_lp_entries) -> Separability:
        eng = self.engine
        if eng.stateless:
            return Separability("not_decided", None, None, 0.0, "data not in memory",
                                lp_skipped="data not in memory", lp_entries=eng.n * (eng.d + 1))
        return binary_separability(eng.X, eng.y, eng.s, max_lp_entries)

    def restricted(self, sep) -> "EnginePasses":
        s_rest = np.where(sep.separated, 0, self.engine.s).astype(self.engine.dtype)
        return EnginePasses(self.engine.derive(k=0, s=s_rest))

    def push(self, w_base, sep):
        """``w_base + t u`` (:meth:`push_distance` to ``far_margin``)."""
        u = sep.direction
        return w_base + self.push_distance(w_base, u, sep.separated, self.far_margin) * u

    def push_distance(self, w_base, u, separated, margin) -> float:
        """The least ``t >= 0`` that puts the margin of ``w_base + t u`` at ``margin`` or
        beyond on ``separated`` (a boolean n-vector, or None: every sample of positive
        weight, reduced block by block)."""
        if separated is not None:
            m_u = np.asarray(self.margins(u), dtype=np.float64)[separated]
            m_b = np.asarray(self.margins(w_base), dtype=np.float64)[separated]
            return max(float(np.max((margin - m_b) / m_u)), 0.0)
        dt = self.engine.dtype
        parts = self.engine.map_rows(functools.partial(
            _block_push, w_base.astype(dt), u.astype(dt), float(margin)))
        return max(max(parts), 0.0)

    def result(self, w, *, infimum, attained, converged, lam=0.0, radius=None, nit=0,
               npass=0, decrement=0.0, separability=None, direction=None, method="",
               message="") -> LinearBaselineResult:
        """The answer at ``w``: ``fun`` evaluated accurately with its bound ``fun_error``
        (:func:`accurate_value`); an attained infimum is that value (never below the true
        minimum by more than ``fun_error``)."""
        seen = self.pass_at(w, make=False)
        if seen is not None and seen.value is not None:
            (F, fun_error), g = seen.value, seen.g
        else:
            F, fun_error, g = accurate_value(self.engine, np.asarray(w, dtype=np.float64))
        if self.warm_passes:
            message = lines(message, f"warm start: {self.warm_passes} Newton passes over one "
                                     f"chunk of rows in {self.warm_sample}")
        return LinearBaselineResult(
            w=w, x=w, fun=float(F), fun_error=fun_error,
            infimum=float(F if attained else infimum),
            attained=None if attained is None else bool(attained), converged=bool(converged),
            success=bool(converged), grad_norm=safe_norm(g + lam * w),
            decrement=float(decrement), multiplier=float(lam), radius=radius, nit=int(nit),
            npass=int(npass + 1), separability=separability, direction=direction,
            method=method, message=message, w_fits=True, w_scaled=None, w_exponent=0)


def _qr_factor(X, q) -> np.ndarray:
    """The factor ``R`` of the rows ``sqrt(q_i) x_i`` (float64), accumulated over blocks of
    ``QR_CHUNK`` rows."""
    with blas_single_thread():  # small factorisations: BLAS threads only cost here
        return qr_factor((np.sqrt(np.asarray(q[i0:i0 + QR_CHUNK], dtype=np.float64))[:, None]
                          * X[i0:i0 + QR_CHUNK] for i0 in range(0, X.shape[0], QR_CHUNK)),
                         X.shape[1])


def _block_grad_factor(w, need_R, block):
    """One block's ``(F_b, g_b, R_b)``: its part of the value pass and of the QR factor."""
    eng = block.engine
    buf = SampleBuffers(eng.n, eng.dtype)
    F, g, _, _ = eng.value_grad(w, np.empty(0, eng.dtype), None, buf, need_theta=False)
    return F, g.astype(np.float64), (_qr_factor(block.X, buf.q) if need_R else None)


def _grad_and_factor(engine, w, need_R):
    """``(F, grad, R)`` in one pass over the blocks (tall-skinny QR: the blocks' factors
    stacked in block order and factored once more)."""
    parts = engine.map_rows(functools.partial(_block_grad_factor, w.astype(engine.dtype),
                                              need_R))
    F = sum(p[0] for p in parts)
    g = functools.reduce(np.add, (p[1] for p in parts))
    R = np.linalg.qr(np.vstack([p[2] for p in parts]), mode="r") if need_R else None
    return F, g, R


def _block_margins(u, block):
    p, _ = block.engine.predict(u, np.empty(0, u.dtype), None)
    return np.asarray(p * block.y, dtype=np.float64)


def _block_push(w_base, u, margin, block):
    keep = block.s > 0
    m_u, m_b = _block_margins(u, block)[keep], _block_margins(w_base, block)[keep]
    return float(np.max((margin - m_b) / m_u)) if m_u.size else 0.0


@validated(tol=POSITIVE)
def linear_baseline(X: ArrayLike, y: ArrayLike, *, loss: str | Loss = "logistic",
                    n_classes: int | None = None,
                    sample_weight: ArrayLike | None = None, radius: float | None = None,
                    tol: float | None = None, max_iter: int = 100, n_threads: int | None = None,
                    max_lp_entries: int = MAX_LP_ENTRIES) -> LinearBaselineResult:
    """Best linear predictor: ``inf_w E[l(w^T x; y)]`` or ``min_{||w|| <= radius}``; for
    ``c`` outputs ``inf_W E[l(W x; y)]`` with ``W`` of shape (c, d) and ``||W||_F <= radius``
    (:mod:`resnet_core.linear_vector`).

    Parameters
    ----------
    X : array of shape (n, d)
        In memory, out-of-core (``np.memmap``, zarr: streamed) or a dask array (tasks on
        its row chunks; the linear program is then skipped, see :func:`baseline_on_engine`,
        for c outputs too).
    y : array of shape (n,) or (n, c)
        Targets; for ``loss="cross_entropy"`` integer classes ``0..c-1``; for the squared
        loss an (n, c) array gives ``c`` outputs ((n, 1): the scalar problem, ``w`` of shape
        (1, d)).
    loss : str, Loss or callable
        Also ``"cross_entropy"``: ``l(p; y) = logsumexp(p) - p_y``, ``p = W x``; the
        returned ``W`` is the representative with rows summing to 0 (``F_lin`` is invariant
        to adding one vector to every row).
    n_classes : int, optional
        ``c`` for the cross-entropy (default ``max(y) + 1``).
    sample_weight : array of shape (n,), optional
    radius : float, optional
        Constrain ``||w|| <= radius`` (``||W||_F`` for ``c`` outputs).
    tol : float, optional
        Stop when the Newton decrement ``nu^2 / 2 <= tol |F_lin|``; default the data's
        machine epsilon (full precision).
    max_iter : int
        Newton iterations per solve.
    n_threads : int, optional
    max_lp_entries : int
        Largest separability linear program (non-zeros ``n (d + 1)``); above it, separability
        is read from Newton's iterates (see :mod:`resnet_core.linear`).

    Returns
    -------
    LinearBaselineResult
        ``w``, ``fun = F_lin(w)``, ``infimum``, ``attained``, ``converged``, ``direction``,
        ``separability``, ``grad_norm`` (KKT residual), ``multiplier``, ``message``.
    """
    loss = get_loss(loss)
    if loss.vector or (loss.vector_form is not None and np.ndim(y) == 2):
        dask = any(is_dask(a) for a in (X, y, sample_weight))
        streamed = dask or is_out_of_core(X)
        if not loss.vector and np.shape(y)[1:] == (1,) and n_classes is None:
            res = linear_baseline(X, y[:, 0] if dask else np.asarray(to_numpy("y", y))[:, 0],
                                  loss=loss,
                                  sample_weight=sample_weight, radius=radius, tol=tol,
                                  max_iter=max_iter, n_threads=n_threads)
            res.w = res.x = res.w[None, :]
            return res
        if streamed:  # dask tasks, or out-of-core blocks (linear_vector.engine_vector_baseline)
            data = prepare(X, y, loss=loss, sample_weight=sample_weight, n_classes=n_classes)
            return engine_vector_baseline(data.engine(0, n_threads=n_threads), radius=radius,
                                          tol=tol, max_iter=max_iter,
                                          max_lp_entries=max_lp_entries)
        return vector_baseline(X, y, loss=loss.name if loss.vector else loss.vector_form,
                               n_classes=n_classes,
                               sample_weight=sample_weight, radius=radius, tol=tol,
                               max_iter=max_iter, n_threads=n_threads,
                               max_lp_entries=max_lp_entries)
    if n_classes is not None:
        raise ValueError(f"n_classes is for the cross_entropy loss only; got loss {loss.name!r}")
    data = prepare(X, y, loss=loss, sample_weight=sample_weight, n_threads=n_threads)
    engine = data.engine(0, n_threads=n_threads)
    if loss.quadratic and engine.d > engine.n and not engine.stateless:
        return _row_space(engine, loss, radius, tol, max_iter, max_lp_entries, n_threads)
    return _scaled_baseline(engine, loss, radius, tol, max_iter, max_lp_entries, n_threads)


def _scaled_baseline(engine, loss, radius, tol, max_iter, max_lp_entries, n_threads):
    """:func:`baseline_on_engine` on ``X 2^e`` (and ``y 2^f`` for the squared loss), exact
    powers of two that put the largest magnitude in [1/2, 1) when it lies outside the safe
    range (:func:`resnet_core._baseline.scale_exponent`), the answer scaled back by
    :func:`resnet_core._baseline.scaled_back`.  Out-of-core data are solved as given."""
    in_memory = not engine.stateless
    passes = EnginePasses(engine, check_scale=in_memory)
    if passes.gram_steps:  # the range of X read from the first pass (no pass of its own)
        try:
            return solve(passes, radius=radius, tol=tol if tol is not None else
                         float(np.finfo(engine.dtype).eps), max_iter=max_iter,
                         max_lp_entries=max_lp_entries)
        except _Rescale as r:
            e = r.e
    else:
        e = scale_exponent(engine.X) if in_memory else 0
    f = scale_exponent(engine.y) if in_memory and loss.quadratic else 0
    if e == 0 and f == 0:
        return baseline_on_engine(engine, radius=radius, tol=tol, max_iter=max_iter,
                                  max_lp_entries=max_lp_entries)
    return _solve_scaled(np.ldexp(engine.X, e), e, engine, loss, radius, tol, max_iter,
                         max_lp_entries, n_threads)


def _solve_scaled(X_scaled, e, engine, loss, radius, tol, max_iter, max_lp_entries,
                  n_threads):
    """The baseline on ``X_scaled = X 2^e`` (and ``y 2^f``, ``f`` chosen here for the
    squared loss): the same problem in ``u = w 2^(f-e)``, whose Gram matrices neither
    underflow nor overflow, scaled back by :func:`resnet_core._baseline.scaled_back`."""
    f = scale_exponent(engine.y) if loss.quadratic else 0
    scaled = prepare(X_scaled, np.ldexp(engine.y, f) if f else engine.y,
                     loss=loss, sample_weight=engine.s,
                     n_threads=n_threads).engine(0, n_threads=n_threads)
    res = baseline_on_engine(scaled, radius=scaled_radius(radius, e, f), tol=tol,
                             max_iter=max_iter, max_lp_entries=max_lp_entries)
    return scaled_back(res, e, f, radius) if (e or f) else res


def _row_space(engine, loss, radius, tol, max_iter, max_lp_entries, n_threads):
    """The squared loss with more features than samples, in the n-dimensional row space:
    ``X^T = Q R`` (thin QR, ``Q`` d x n orthonormal), ``X w = R^T z`` with ``z = Q^T w``;
    the minimum-norm ``w`` is ``Q z`` for the minimum-norm ``z``, and ``||w|| = ||z||``,
    ``||grad_w|| = ||grad_z||`` (``Q`` is an isometry), so a radius means the same.  Memory:
    ``Q``, the size of ``X``, never a d x d matrix."""
    e = scale_exponent(engine.X)  # QR of X 2^e: no under- or overflow
    Q, R = np.linalg.qr(np.ldexp(np.asarray(engine.X, dtype=np.float64), e).T, mode="reduced")
    # R^T stays at the scale 2^e (its entries reach sqrt(d) times X's: 2^-e could overflow)
    res = _solve_scaled(np.ascontiguousarray(R.T), e, engine, loss, radius, tol, max_iter,
                        max_lp_entries, n_threads)
    res.w = res.x = (Q @ res.w).astype(np.float64)
    if res.w_scaled is not None:
        res.w_scaled = Q @ res.w_scaled
    res.message += (f"\nrow space: d = {engine.d} > n = {engine.n}, solved in the "
                    f"{engine.n}-dimensional row space of X (w = Q z, X^T = Q R)")
    return res


@validated(tol=POSITIVE)
def baseline_on_engine(engine: Engine, *, radius: float | None = None, tol: float | None = None,
                       max_iter: int = 100, max_lp_entries: int = MAX_LP_ENTRIES
                       ) -> LinearBaselineResult:
    """:func:`linear_baseline` on the data of a linear engine (``k = 0``): an objective's
    own, without validating them again.  On out-of-core and distributed data the
    separability linear program is not run (it needs the data in memory): separability is
    read from Newton's iterates, as for data too large for it."""
    tol = float(np.finfo(engine.dtype).eps) if tol is None else tol
    return solve(EnginePasses(engine), radius=radius, tol=tol, max_iter=max_iter,
                 max_lp_entries=max_lp_entries)
