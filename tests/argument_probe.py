"""A probe of every public entry point, generated from the signatures (issue 18).

For each public function or class and each of its scalar arguments (found by
``inspect.signature``: the annotation or the default says bool, int, float or str), the probe
feeds values no valid call has: NaN, +-inf, wrong types (a string, a bool, a float for an
int, a list), None where the signature does not default to None, and values outside the
range the package's schema (:data:`resnet_core._schema.SCHEMA`) declares for that name.
Each call must raise a ValueError or TypeError whose message names the argument.

Outcomes: ``ok`` (such an error), ``silent`` (no error: a wrong answer or a run on
nonsense), ``unhelpful`` (another exception, or a message without the argument's name),
``hang`` (over ``HANG_SECONDS``).  ``python tests/argument_probe.py`` prints the counts;
``tests/test_argument_probe.py`` asserts them all ``ok``.
"""

from __future__ import annotations

import inspect
import math
import re
import signal
import sys

import numpy as np

HANG_SECONDS = 20


def _problem():
    import resnet_core as rc
    from resnet_core import lipschitz, studies
    from resnet_core.optim import pgd_constants, theorem4_bound

    rng = np.random.default_rng(0)
    X = rng.standard_normal((40, 2))
    y = np.where(X[:, 0] + 0.5 * rng.standard_normal(40) > 0, 1.0, -1.0)
    Phi = np.tanh(X)
    fo = rc.FeatureObjective(X, Phi, y)
    z0 = 0.1 * np.ones(fo.n_params)
    skip = rc.Objective(X, y, widths=(3,), head="skip")
    xs = skip.init(0)
    ball = lipschitz.Ball(z0, 0.5)
    est = {}
    try:
        from resnet_core.estimators import ResNetClassifier, ResNetRegressor
        est = {"ResNetClassifier": ResNetClassifier, "ResNetRegressor": ResNetRegressor}
    except ImportError:  # scikit-learn not installed
        pass

    # name -> (the callable whose signature is probed, a call with the probed keyword)
    calls = {
        "Objective": (rc.Objective, lambda **kw: rc.Objective(X, y, **{"widths": (3,), **kw})),
        "FeatureObjective": (rc.FeatureObjective,
                             lambda **kw: rc.FeatureObjective(X, Phi, y, **kw)),
        "perturbed_gd": (rc.perturbed_gd, lambda **kw: rc.perturbed_gd(
            fo, z0, **{"eps": 0.1, "ell": 1.0, "rho": 1.0, "max_iter": 5, **kw})),
        "find_sopsp": (rc.find_sopsp, lambda **kw: rc.find_sopsp(
            fo, z0, **{"eps": 0.1, "mu2": 1.0, "max_iter": 3, **kw})),
        "theorem2_stationary_point": (rc.theorem2_stationary_point,
                                      lambda **kw: rc.theorem2_stationary_point(fo, **kw)),
        "gradient_descent": (rc.gradient_descent, lambda **kw: rc.gradient_descent(
            fo, z0, **{"eta": 0.1, "max_iter": 5, **kw})),
        "projected_sgd": (rc.projected_sgd, lambda **kw: rc.projected_sgd(
            skip, xs, **{"T": 5, "radius": 1.0, **kw})),
        "estimate_ell_rho": (rc.estimate_ell_rho, lambda **kw: rc.estimate_ell_rho(fo, z0,
                                                                                  **kw)),
        "escape": (studies.escape, lambda **kw: studies.escape(
            fo, z0, **{"max_iter": 5, **kw})),
        "check_sopsp": (rc.check_sopsp, lambda **kw: rc.check_sopsp(fo, z0,
                                                                     **{"eps": 0.1, **kw})),
        "hessian_spectrum": (rc.hessian_spectrum, lambda **kw: rc.hessian_spectrum(
            fo, z0, **{"n_eigs": 2, **kw})),
        "hessian_trace": (rc.hessian_trace, lambda **kw: rc.hessian_trace(
            fo, z0, **{"n_products": 3, **kw})),
        "spectral_density": (rc.spectral_density, lambda **kw: rc.spectral_density(
            fo, z0, **{"n_probes": 1, "lanczos_steps": 3, "n_grid": 10, **kw})),
        "estimate_hessian_lipschitz": (lipschitz.estimate_hessian_lipschitz,
                                       lambda **kw: lipschitz.estimate_hessian_lipschitz(
                                           fo, ball, **{"n_points": 1, "max_iter": 1,
                                                        "n_refine": 0, **kw})),
        "linear_baseline": (rc.linear_baseline, lambda **kw: rc.linear_baseline(X, y, **kw)),
        "linear_separability": (rc.linear_separability,
                                lambda **kw: rc.linear_separability(X, y, **kw)),
        "pgd_constants": (pgd_constants, lambda **kw: pgd_constants(**{
            "eps": 0.1, "ell": 1.0, "rho": 1.0, "c": 1.0, "delta": 0.1, "delta_f": 1.0,
            "dim": 4, **kw})),
        "theorem4_bound": (theorem4_bound, lambda **kw: theorem4_bound(**{
            "radius": 1.0, "lipschitz": 1.0, "loss_bound": 1.0, "T": 10, "eta": 0.1, "delta": 0.1,
            **kw})),
    }
    for name, cls in est.items():
        target = y if name == "ResNetClassifier" else X[:, 0]
        calls[name] = (cls, lambda cls=cls, target=target, **kw: cls(
            **{"widths": (2,), "max_iter": 3, "certify": False, **kw}).fit(X, target))
    return calls


# Arguments left out: seeds (any of NumPy's seed types), callbacks, the estimators' certify
# (True, False or a dict), verbose (scikit-learn's convention: a flag or an integer), and names that are not scalar settings.
SKIP = {"seed", "seeds", "random_state", "callback", "certify", "dim", "_loop", "loss",
        "sample_weight", "grid", "verbose", "mu2_region", "w_star", "starts", "region", "objective"}
# Differences from the schema's entry by name, where a function declares one: read from the
# decorator (``__schema__``) when there is one; this table serves the estimators (checked
# at fit) and trees without the decorator (the "before" counts).
OVERRIDES = {"check_sopsp": {"eps": "NON_NEGATIVE"}, "linear_baseline": {"tol": "POSITIVE"},
             "ResNetClassifier": {"tol": "POSITIVE"}, "ResNetRegressor": {"tol": "POSITIVE"},
             "theorem4_bound": {"loss_bound": "NON_NEGATIVE_REAL"}}


def _kind(par: inspect.Parameter) -> str | None:
    if par.name in SKIP or par.kind in (par.VAR_KEYWORD, par.VAR_POSITIONAL):
        return None
    if par.name == "widths":
        return "widths"
    ann, default = str(par.annotation), par.default
    if "bool" in ann or isinstance(default, bool):
        return "flag"
    if "float" in ann or isinstance(default, float):
        return "real"
    if re.search(r"\bint\b", ann) or isinstance(default, int):
        return "int"
    if "str" in ann or isinstance(default, str):
        return "text"
    return None


def _declared(target) -> dict:
    """The specs ``@validated`` attached to ``target`` (a function, or a class's
    ``__init__``); empty for a tree without the decorator."""
    func = target.__init__ if inspect.isclass(target) else target
    return getattr(func, "__schema__", {})


def _spec(schema, func_name: str, name: str, target=None):
    declared = _declared(target) if target is not None else {}
    if name in declared:
        return declared[name]
    names = OVERRIDES.get(func_name, {})
    if name in names:
        if names[name] == "NON_NEGATIVE_REAL":
            return schema.NON_NEGATIVE
        return getattr(schema, names[name])
    return schema.SCHEMA.get(name)


def _rejects(spec, value) -> bool:
    try:
        spec("probe", value)
    except (TypeError, ValueError):
        return True
    return False


def bad_values(kind: str, spec, none_ok: bool) -> list:
    """Values of ``kind`` that a valid call never has (ranges from ``spec``)."""
    vals = [] if none_ok else [None]
    if kind == "flag":
        vals += [0.5, "no", 2, np.float64(1.0), [True]]
    elif kind == "widths":
        vals += [1.5, True, (), (0,), (-1,), "64", (2.5,), (np.float64(3.0),), (3, None)]
    elif kind == "text":
        vals += [3, b"residual", "no-such-choice"] if spec is None else [3, b"x"]
    elif kind == "int":
        vals += [1.5, True, "3", math.nan, math.inf, np.float64(2.0), [3]]
        if spec is not None:
            vals += [v for v in (-(2**70), -1, 0, 1, 2, 2**70) if _rejects(spec, v)]
    elif kind == "real":
        vals += [math.nan, "0.1", True, [0.1], complex(1.0, 0.0), np.nan]
        if spec is not None:
            vals += [v for v in (-math.inf, math.inf, 10**400, -1.0, 0.0, 1.0, 1.5, 2.0)
                     if _rejects(spec, v)]
        else:
            vals += [math.inf, -math.inf]
    return vals


def cases():
    """``[(function name, argument, value)]``: every probe case."""
    import resnet_core._schema as schema

    out = []
    for fname, (target, _) in _problem().items():
        sig = inspect.signature(target)
        for name, par in sig.parameters.items():
            kind = _kind(par)
            if kind is None:
                continue
            spec = _spec(schema, fname, name, target)
            for value in bad_values(kind, spec, par.default is None):
                out.append((fname, name, value))
    return out


class _Hang(Exception):
    pass


def _alarm(signum, frame):
    raise _Hang()


def run_case(calls, fname: str, name: str, value) -> tuple[str, str]:
    """``(outcome, detail)`` of one case (see the module notes)."""
    old = signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(HANG_SECONDS)
    try:
        calls[fname][1](**{name: value})
    except _Hang:
        return "hang", f"over {HANG_SECONDS} s"
    except (ValueError, TypeError) as err:
        msg = str(err)
        if re.search(rf"(?<![A-Za-z_]){re.escape(name)}(?![A-Za-z_])", msg):
            return "ok", msg
        return "unhelpful", f"{type(err).__name__}: {msg}"
    except Exception as err:  # noqa: BLE001 - every other exception is an unhelpful error
        return "unhelpful", f"{type(err).__name__}: {err}"
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
    return "silent", "no error"


def main() -> int:
    import warnings

    warnings.simplefilter("ignore")
    calls = _problem()
    counts, examples = {}, {}
    all_cases = cases()
    for fname, name, value in all_cases:
        outcome, detail = run_case(calls, fname, name, value)
        counts[outcome] = counts.get(outcome, 0) + 1
        if outcome != "ok":
            examples.setdefault(outcome, []).append(f"{fname}({name}={value!r}): {detail}"[:200])
    print(f"{len(all_cases)} cases: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
    for outcome, lines in examples.items():
        print(f"-- {outcome} ({len(lines)}), first 15:")
        print("\n".join(lines[:15]))
    return 0 if set(counts) <= {"ok"} else 1


if __name__ == "__main__":
    sys.exit(main())
