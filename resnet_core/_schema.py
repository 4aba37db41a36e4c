"""The declared schema of the public arguments: one entry per argument name, one check.

Every public function and class of the package checks its scalar arguments here, through
:func:`validated` (a decorator that reads the function's signature) or :func:`check`.  An
argument name means the same thing wherever it appears (``eta`` is always a step, positive
and finite); a function whose argument differs declares the difference where it is
decorated (``@validated(delta=PROBABILITY)``).  A default of ``None`` in the signature
means None is accepted; any other ``None`` is refused.

The type rules, the same for every argument:

- a *flag* is ``bool`` or ``np.bool_`` only (``bias=0.5`` or ``feature_bias="no"`` is a
  TypeError, never read as "true");
- an *integer* is any ``numbers.Integral`` (Python ``int`` and every NumPy integer dtype:
  ``widths=(np.int32(4),)``), never a ``bool`` nor a float (``widths=1.5``, ``max_iter=10.0``
  are TypeErrors), at most ``2**63 - 1`` (what the compiled loops count in);
- a *real* is any ``numbers.Real`` but a ``bool`` (NumPy floats and integers included),
  finite unless declared otherwise; ``"0.1"`` is a TypeError, NaN a ValueError;
- ranges are closed or open at each end, as declared; the message names the argument,
  what was expected (with the interval) and what was given.

The values come back converted (``int``, ``float``, ``bool``), so that nothing downstream
sees a NumPy scalar of a narrow dtype (an ``int32`` width once overflowed a product).
"""

from __future__ import annotations

import functools
import inspect
import math
import numbers
import os
import warnings
from dataclasses import dataclass

import numpy as np

# The largest integer the compiled loops and kernels count in (int64).
INT_MAX = (1 << 63) - 1


def wrong_type(name: str, spec, value) -> TypeError:
    """The TypeError of a value of the wrong type: the argument, what was expected, what
    was given and its type."""
    return TypeError(f"{name} {spec.expected()}; got {value!r} ({type(value).__name__})")


def _interval(lo, hi, lo_open, hi_open) -> str:
    if hi is None:
        return f"> {lo:g}" if lo_open else f">= {lo:g}"
    if lo is None:
        return f"< {hi:g}" if hi_open else f"<= {hi:g}"
    return f"in {'(' if lo_open else '['}{lo:g}, {hi:g}{')' if hi_open else ']'}"


@dataclass(frozen=True)
class Real:
    """A real number in ``[lo, hi]``, either end open or absent (None), finite unless
    ``finite`` is False."""

    lo: float | None = None
    hi: float | None = None
    lo_open: bool = False
    hi_open: bool = False
    finite: bool = True

    def expected(self) -> str:
        """``"must ..."``: what the message says is expected."""
        kind = "finite number" if self.finite else "number (not NaN)"
        if self.lo == 0 and self.hi is None:
            return f"must be a {'positive' if self.lo_open else 'non-negative'} {kind} " \
                   f"({'>' if self.lo_open else '>='} 0)"
        if self.lo is None and self.hi is None:
            return f"must be a {kind}"
        if self.lo is not None and self.hi is not None:
            return f"must lie in {_interval(self.lo, self.hi, self.lo_open, self.hi_open)[3:]}"
        return f"must be {_interval(self.lo, self.hi, self.lo_open, self.hi_open)} (a {kind})"

    def __call__(self, name: str, value) -> float:
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
            raise wrong_type(name, self, value)
        try:
            v = float(value)
        except OverflowError:  # an int beyond float64
            v = math.inf if value > 0 else -math.inf
        bad = (math.isnan(v) or (self.finite and math.isinf(v))
               or (self.lo is not None and (v < self.lo or (self.lo_open and v == self.lo)))
               or (self.hi is not None and (v > self.hi or (self.hi_open and v == self.hi))))
        if bad:
            raise ValueError(f"{name} {self.expected()}; got {value!r}")
        return v


@dataclass(frozen=True)
class Int:
    """An integer in ``[lo, hi]`` (``hi`` None: no upper bound)."""

    lo: int = 1
    hi: int | None = INT_MAX

    def expected(self) -> str:
        if self.hi is None or self.hi >= INT_MAX:
            return f"must be an integer >= {self.lo}"
        return f"must be an integer in [{self.lo}, {self.hi}]"

    def __call__(self, name: str, value) -> int:
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
            raise wrong_type(name, self, value)
        v = int(value)
        if v < self.lo or (self.hi is not None and v > self.hi):
            raise ValueError(f"{name} {self.expected()}; got {v}")
        return v


@dataclass(frozen=True)
class Kind:
    """A value of one of ``types`` (no range), converted by ``convert``: a flag, a name,
    a path."""

    types: tuple
    text: str
    convert: object = None

    def expected(self) -> str:
        return f"must be {self.text}"

    def __call__(self, name: str, value):
        if not isinstance(value, self.types):
            raise wrong_type(name, self, value)
        return value if self.convert is None else self.convert(value)


@dataclass(frozen=True)
class Widths:
    """The MLP's widths: a positive integer, or a non-empty sequence of them (a tuple comes
    back)."""

    def expected(self) -> str:
        return "must be a positive integer or a non-empty tuple of positive integers, " \
               "e.g. (64, 64)"

    def __call__(self, name: str, value) -> tuple:
        if isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_)):
            value = (value,)
        if isinstance(value, np.ndarray):
            value = value.tolist() if value.ndim == 1 else value
        if isinstance(value, (str, bytes)) or not isinstance(value, (tuple, list)):
            raise wrong_type(name, self, value)
        if len(value) == 0:
            raise ValueError(f"{name} must name at least one layer, e.g. {name}=(64,)")
        return tuple(Int(1, None)(f"each entry of {name}", h) for h in value)  # sized later


FLAG = Kind((bool, np.bool_), "True or False", bool)  # never 0.5, "no", 1
POSITIVE = Real(0.0, lo_open=True)           # (0, inf)
NON_NEGATIVE = Real(0.0)                     # [0, inf)
PROBABILITY = Real(0.0, 1.0, True, True)     # (0, 1)
TEXT = Kind((str,), "a string")               # a name: its choices are the function's
FINITE = Real()                              # (-inf, inf)
COUNT = Int(1)
COUNT0 = Int(0)

# Every public scalar argument, by name (one meaning per name; see the module notes).
SCHEMA: dict[str, object] = {
    # the objective
    "widths": Widths(),
    "bias": FLAG,
    "feature_bias": FLAG,
    "progress": FLAG,
    "copy": FLAG,
    "materialize": FLAG,
    "chunk_size": Int(1, None),  # any size: the chunks never hold more than n samples
    "n_classes": Int(2),
    "n_threads": COUNT,
    "activation": TEXT,
    "head": TEXT,
    "wrt": TEXT,
    "method": TEXT,
    "which": TEXT,
    "solver": TEXT,
    # optimisers and studies (Jin et al.'s constants; docs/pgd.md)
    "eps": POSITIVE,
    "ell": POSITIVE,
    "rho": POSITIVE,
    "c": POSITIVE,
    "delta": PROBABILITY,
    "delta_f": POSITIVE,
    "eta": POSITIVE,
    "r": NON_NEGATIVE,
    # a negative gradient threshold never stops the run on the gradient (runs max_iter)
    "g_thres": FINITE,
    "f_thres": NON_NEGATIVE,
    "f_escape": FINITE,
    "t_thres": COUNT,
    "max_iter": COUNT,
    "record_every": COUNT0,
    "T": COUNT,
    "b": POSITIVE,
    "theta_radius": POSITIVE,
    "lipschitz": POSITIVE,
    "batch_size": COUNT,
    "eval_every": COUNT,
    "n_runs": COUNT,
    "runs_per_task": COUNT,
    "lambda_min": FLAG,
    "stop_at_escape": FLAG,
    "distribute": FLAG,
    "check_start": TEXT,
    # certificates
    "mu2": NON_NEGATIVE,
    "curvature_tol": NON_NEGATIVE,
    "baseline_radius": POSITIVE,
    "radius": POSITIVE,
    # find_sopsp: budgets and its Newton models
    "max_passes": COUNT,
    "max_rounds": COUNT,
    "max_cg": COUNT,
    "theta_iter": COUNT0,
    "theta_ftol": NON_NEGATIVE,
    "adaptive": FLAG,
    "rtol": POSITIVE,
    # point files
    "path": Kind((str, os.PathLike), "a file path (a str or an os.PathLike)"),
    # linear baselines: the size of the separability linear program
    "max_entries": COUNT,
    "max_lp_entries": COUNT,
    # spectra
    "k": COUNT,
    "tol": NON_NEGATIVE,
    "n_products": Int(3),
    "n_probes": COUNT,
    "lanczos_steps": COUNT,
    "n_grid": COUNT,
    "sigma": POSITIVE,
    "max_products": COUNT,
    "ncv": Int(2),
    # Hessian Lipschitz estimates
    "n_points": COUNT0,
    "n_starts": COUNT,
    "n_refine": COUNT0,
    "max_corners": COUNT,
    "safety": Real(1.0),
    "fd_step": POSITIVE,
    # estimators
    "fit_intercept": FLAG,
    "alpha": NON_NEGATIVE,
    "early_stopping": FLAG,
    "validation_fraction": PROBABILITY,
    "n_iter_no_change": COUNT,
    "warm_start": FLAG,
    # scikit-learn's convention: 0, 1, ... or a flag (a bar when true)
    "verbose": Kind((bool, np.bool_, numbers.Integral), "True, False or an integer", int),
}


def spec_of(name: str, overrides: dict | None = None):
    """The declared check of the argument ``name`` (``overrides`` first), or None."""
    if overrides and name in overrides:
        return overrides[name]
    return SCHEMA.get(name)


def check(name: str, value, spec=None, *, none: bool = False):
    """``value`` checked against ``spec`` (default: the schema's entry for ``name``) and
    converted; ``None`` passes through when ``none`` is True."""
    if value is None and none:
        return None
    spec = spec if spec is not None else SCHEMA[name]
    if value is None:
        raise TypeError(f"{name} {spec.expected()}; got None")
    return spec(name, value)


#: Every argument renamed by :func:`validated`: ``(function's qualified name, old, new)``;
#: docs/api.md lists each one (tests/test_vocabulary.py checks it).
RENAMED: list[tuple[str, str, str]] = []


def _rename(qualname: str, kwargs: dict, renamed: dict[str, str]) -> dict:
    """``kwargs`` with each deprecated name replaced by its new one, warning once per call."""
    for old in [k for k in kwargs if k in renamed]:
        new = renamed[old]
        if new in kwargs:
            raise TypeError(f"{qualname}() got both {old!r} (its deprecated name) and {new!r}")
        warnings.warn(f"{qualname}(): the argument {old!r} is deprecated and will be removed "
                      f"in the next release; call it {new!r}", DeprecationWarning, stacklevel=3)
        kwargs[new] = kwargs.pop(old)
    return kwargs


def validated(func=None, /, *, renamed: dict[str, str] | None = None, **overrides):
    """Decorate a public function (or a class's ``__init__``): each argument whose name is
    in :data:`SCHEMA` (or in ``overrides``) is checked and converted before the body runs;
    None is accepted where the signature's default is None.

    ``@validated`` or ``@validated(delta=PROBABILITY, k=None)`` (None: not checked here).
    ``renamed={"gtol": "eps"}`` keeps an old keyword working for one release: it is passed
    on under its new name with a :class:`DeprecationWarning` that names the new one."""
    def wrap(f):
        sig = inspect.signature(f)
        plan = []
        for name, par in sig.parameters.items():
            spec = spec_of(name, overrides)
            if spec is not None:
                plan.append((name, spec, par.default is None))
        old_names = dict(renamed or {})
        for old, new in old_names.items():
            if new not in sig.parameters or old in sig.parameters:
                raise TypeError(f"{f.__qualname__}: cannot rename {old!r} to {new!r}")
            RENAMED.append((f.__qualname__, old, new))

        @functools.wraps(f)
        def inner(*args, **kwargs):
            if old_names:
                kwargs = _rename(f.__qualname__, kwargs, old_names)
            bound = sig.bind(*args, **kwargs)
            given = bound.arguments
            for name, spec, none in plan:
                if name in given:
                    given[name] = check(name, given[name], spec, none=none)
            return f(*bound.args, **bound.kwargs)

        inner.__schema__ = {name: spec for name, spec, _ in plan}
        inner.__renamed__ = old_names
        return inner

    return wrap if func is None else wrap(func)
