"""Every scalar argument of the public API, fed values no valid call has (generated from the
signatures by ``tests/argument_probe.py``): a ValueError or TypeError naming it, never a
silent run, another exception, or a hang."""

import warnings

import pytest

import argument_probe as probe

CASES = probe.cases()


@pytest.fixture(scope="module")
def calls():
    return probe._problem()


def test_the_probe_is_large_and_covers_every_entry_point():
    assert len(CASES) >= 1000
    probed = {f for f, _, _ in CASES}
    assert {"Objective", "FeatureObjective", "perturbed_gd", "gradient_descent",
            "projected_sgd", "escape", "check_sopsp", "spectral_density",
            "estimate_hessian_lipschitz"} <= probed


@pytest.mark.parametrize("fname, name, value", CASES,
                         ids=[f"{f}-{n}-{v!r}"[:80] for f, n, v in CASES])
def test_bad_argument_is_named(calls, fname, name, value):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        outcome, detail = probe.run_case(calls, fname, name, value)
    assert outcome == "ok", detail


def test_every_probed_argument_is_declared(calls):
    """Each scalar argument the probe finds has an entry in the schema (or an override of
    its function): nothing is checked ad hoc."""
    import inspect

    import resnet_core._schema as schema

    missing = []
    for fname, (target, _) in calls.items():
        for name, par in inspect.signature(target).parameters.items():
            if probe._kind(par) is not None and \
                    probe._spec(schema, fname, name, target) is None:
                missing.append(f"{fname}({name})")
    assert missing == []
