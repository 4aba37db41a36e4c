"""Regions of parameter space: a :class:`Ball` or a :class:`Box` of flat parameter vectors
``z = [w, vec(V)]`` (residual head) or ``[w, v]`` (skip head), where a constant such as the
Hessian's Lipschitz constant ``mu2`` is estimated (:mod:`resnet_core.lipschitz`) and a
certificate holds (:func:`resnet_core.check_sopsp`'s ``mu2_region``).

Each region knows its size (``scale``), its description in words, its JSON form
(``to_dict``, :func:`region_from_dict`), membership, the nearest point (``project``),
inclusion of another region (``includes``) and the maximiser of a linear function over it
(``linear_max``, the Frank-Wolfe vertex).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Union

import numpy as np
from numpy.typing import ArrayLike

from ._schema import NON_NEGATIVE, check
from ._validation import as_float_array

__all__ = ["Ball", "Box", "Region", "region_from_dict"]


def _vector(name: str, a) -> np.ndarray:
    arr = as_float_array(name, a, ndim=1, dtype=np.dtype(np.float64))
    if arr.size == 0:
        raise ValueError(f"{name} must have at least one coordinate; got an empty array")
    arr = arr.copy()
    arr.setflags(write=False)
    return arr


def _fmt_vec(a: np.ndarray) -> str:
    return "[" + ", ".join(f"{x:.4g}" for x in a) + "]"


@dataclass(frozen=True, eq=False)
class Ball:
    """The closed ball ``{z : ||z - center||_2 <= radius}`` of flat parameter vectors.

    Parameters
    ----------
    center : array of shape (n_params,)
        ``[w, vec(V)]`` (residual head, ``V`` row-major) or ``[w, v]`` (skip head); finite.
    radius : float
        Positive and finite.
    """

    center: np.ndarray
    radius: float

    def __post_init__(self):
        object.__setattr__(self, "center", _vector("center", self.center))
        object.__setattr__(self, "radius", check("radius", self.radius))

    @property
    def dim(self) -> int:
        return int(self.center.size)

    @property
    def scale(self) -> float:
        """The radius: the length the finite-difference steps are measured against."""
        return self.radius

    def describe(self) -> str:
        """E.g. ``"ball ||z - c|| <= 0.5 around c = [0, -100]"``."""
        where = (f"c = {_fmt_vec(self.center)}" if self.dim <= 4
                 else f"a point c of R^{self.dim} (||c|| = {np.linalg.norm(self.center):.4g})")
        return f"ball ||z - c|| <= {self.radius:.4g} around {where}"

    def to_dict(self) -> dict:
        """JSON-serialisable: ``{"kind": "ball", "dim", "center", "radius"}``."""
        return {"kind": "ball", "dim": self.dim, "center": self.center.tolist(),
                "radius": self.radius}

    def contains(self, z: ArrayLike, rtol: float = 1e-12) -> bool:
        z = np.asarray(z, dtype=np.float64)
        return bool(np.linalg.norm(z - self.center) <= self.radius * (1 + rtol))

    def project(self, z: np.ndarray) -> np.ndarray:
        """Nearest point of the ball."""
        d = z - self.center
        n = np.linalg.norm(d)
        return z if n <= self.radius else self.center + d * (self.radius / n)

    def includes(self, other: "Region") -> bool:
        """Whether ``other`` (a Ball or Box of the same dimension) lies inside this ball."""
        if other.dim != self.dim:
            return False
        if isinstance(other, Ball):
            return bool(np.linalg.norm(other.center - self.center) + other.radius
                        <= self.radius)
        far = np.maximum(np.abs(other.lower - self.center), np.abs(other.upper - self.center))
        return bool(np.linalg.norm(far) <= self.radius)

    def linear_max(self, q: np.ndarray, z: np.ndarray) -> np.ndarray:
        """``argmax_{s in ball} <q, s>`` (``z`` itself where ``q = 0``): the Frank-Wolfe vertex."""
        nq = np.linalg.norm(q)
        return z.copy() if nq == 0 else self.center + self.radius * q / nq

    def __eq__(self, other):
        return (isinstance(other, Ball) and self.radius == other.radius
                and np.array_equal(self.center, other.center))

    def __hash__(self):
        return hash(("ball", self.center.tobytes(), self.radius))


@dataclass(frozen=True, eq=False)
class Box:
    """The box ``{z : lower <= z <= upper}`` (coordinatewise) of flat parameter vectors.

    Parameters
    ----------
    lower, upper : arrays of shape (n_params,)
        Finite, ``lower <= upper`` coordinatewise (equal bounds fix a coordinate).
    """

    lower: np.ndarray
    upper: np.ndarray

    def __post_init__(self):
        lo, hi = _vector("lower", self.lower), _vector("upper", self.upper)
        if lo.shape != hi.shape:
            raise ValueError(f"lower and upper must have the same length; got {lo.size} and "
                             f"{hi.size}")
        bad = np.flatnonzero(lo > hi)
        if bad.size:
            i = int(bad[0])
            raise ValueError(f"lower must be <= upper coordinatewise; lower[{i}] = {lo[i]!r} > "
                             f"upper[{i}] = {hi[i]!r}")
        object.__setattr__(self, "lower", lo)
        object.__setattr__(self, "upper", hi)

    @classmethod
    def around(cls, center: ArrayLike, half_width: float | ArrayLike) -> "Box":
        """``[center - half_width, center + half_width]`` (``half_width`` >= 0, scalar or
        per coordinate)."""
        c = _vector("center", center)
        hw = np.asarray(half_width, dtype=np.float64)
        if hw.ndim == 0:
            hw = np.full(c.shape, check("half_width", float(hw), NON_NEGATIVE))
        else:
            hw = as_float_array("half_width", hw, ndim=1, dtype=np.dtype(np.float64),
                                shape=c.shape)
            if (hw < 0).any():
                raise ValueError(f"half_width must be >= 0; found {hw.min()!r}")
        return cls(c - hw, c + hw)

    @property
    def dim(self) -> int:
        return int(self.lower.size)

    @property
    def center(self) -> np.ndarray:
        return 0.5 * (self.lower + self.upper)

    @property
    def scale(self) -> float:
        """The largest half-width."""
        return float(0.5 * np.max(self.upper - self.lower))

    @property
    def free(self) -> np.ndarray:
        """Coordinates of positive width (the others are fixed)."""
        return np.flatnonzero(self.upper > self.lower)

    def describe(self) -> str:
        """E.g. ``"box [-200, 200]^2"``."""
        lo, hi = self.lower, self.upper
        if np.all(lo == lo[0]) and np.all(hi == hi[0]):
            return f"box [{lo[0]:.4g}, {hi[0]:.4g}]^{self.dim}"
        if self.dim <= 4:
            return f"box {_fmt_vec(lo)} <= z <= {_fmt_vec(hi)}"
        hw = 0.5 * (hi - lo)
        return (f"box lower <= z <= upper in R^{self.dim} (half-widths {hw.min():.4g} to "
                f"{hw.max():.4g}, ||center|| = {np.linalg.norm(self.center):.4g})")

    def to_dict(self) -> dict:
        """JSON-serialisable: ``{"kind": "box", "dim", "lower", "upper"}``."""
        return {"kind": "box", "dim": self.dim, "lower": self.lower.tolist(),
                "upper": self.upper.tolist()}

    def contains(self, z: ArrayLike, atol: float = 0.0) -> bool:
        z = np.asarray(z, dtype=np.float64)
        return bool(np.all(z >= self.lower - atol) and np.all(z <= self.upper + atol))

    def project(self, z: np.ndarray) -> np.ndarray:
        return np.clip(z, self.lower, self.upper)

    def includes(self, other: "Region") -> bool:
        """Whether ``other`` (a Ball or Box of the same dimension) lies inside this box."""
        if other.dim != self.dim:
            return False
        if isinstance(other, Ball):
            lo, hi = other.center - other.radius, other.center + other.radius
        else:
            lo, hi = other.lower, other.upper
        return bool(np.all(self.lower <= lo) and np.all(hi <= self.upper))

    def linear_max(self, q: np.ndarray, z: np.ndarray) -> np.ndarray:
        """``argmax_{s in box} <q, s>`` (a corner; ``z``'s coordinate where ``q`` is 0): the
        Frank-Wolfe vertex."""
        return np.where(q > 0, self.upper, np.where(q < 0, self.lower, z))

    def __eq__(self, other):
        return (isinstance(other, Box) and np.array_equal(self.lower, other.lower)
                and np.array_equal(self.upper, other.upper))

    def __hash__(self):
        return hash(("box", self.lower.tobytes(), self.upper.tobytes()))


Region = Union[Ball, Box]


def region_from_dict(d: dict) -> Region:
    """The region of a :meth:`Ball.to_dict` / :meth:`Box.to_dict` dict."""
    if not isinstance(d, dict) or d.get("kind") not in ("ball", "box"):
        raise ValueError(f"region dict must have kind 'ball' or 'box'; got {d!r:.200}")
    if d["kind"] == "ball":
        return Ball(d["center"], d["radius"])
    return Box(d["lower"], d["upper"])
