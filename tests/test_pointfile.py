"""The point file (save_point / load_point) and `resnet-core certify` on it: nothing is
guessed, damaged files give one line and exit status 3, and the exit status is the verdict."""

import json
import subprocess
import sys

import numpy as np
import pytest

import resnet_core as rc
from resnet_core import cli
from resnet_core.theory import example1

from conftest import make_data, random_point


def _mlp(loss="squared", activation="relu", bias=False, head="skip", weighted=True, seed=0,
         feature_bias=False):
    rng = np.random.default_rng(seed)
    X, y, sw = make_data(rng, 60, 4, loss, weighted=weighted)
    obj = rc.Objective(X, y, loss=loss, widths=(5, 3), activation=activation, bias=bias,
                       head=head, sample_weight=sw, feature_bias=feature_bias)
    return obj, random_point(obj, rng)


def _certify(capsys, path, *args):
    """``(exit status, stdout, stderr)`` of ``resnet-core certify path args`` in-process."""
    status = cli.main(["certify", str(path), *args])
    out, err = capsys.readouterr()
    return status, out, err


@pytest.mark.parametrize("loss", ["squared", "logistic"])
@pytest.mark.parametrize("bias, head, feature_bias", [(False, "skip", True),
                                                      (True, "residual", False)])
def test_objective_round_trip(tmp_path, loss, bias, head, feature_bias):
    obj, x = _mlp(loss=loss, bias=bias, head=head, feature_bias=feature_bias)
    path = rc.save_point(tmp_path / "p.npz", obj, x)
    back, x2, meta = rc.load_point(path)
    assert isinstance(back, rc.Objective)
    assert (back.widths, back.activation, back.bias, back.head, back.loss.name,
            back.feature_bias) == ((5, 3), "relu", bias, head, loss, feature_bias)
    assert np.array_equal(x2, x)
    np.testing.assert_allclose(back.fun(x2), obj.fun(x), rtol=1e-13)
    np.testing.assert_allclose(back.grad(x2), obj.grad(x), rtol=1e-12, atol=1e-15)
    assert meta == dict(kind="Objective", loss=loss, head=head, format_version=1,
                        weighted=True, activation="relu", widths=[5, 3], bias=bias,
                        feature_bias=feature_bias, n=60, d=4, k=3 + feature_bias,
                        n_outputs=1)


@pytest.mark.parametrize("head", ["residual", "skip"])
@pytest.mark.parametrize("feature_bias", [False, True])
def test_feature_objective_round_trip(tmp_path, head, feature_bias):
    obj, x = _mlp(head=head, feature_bias=feature_bias)
    fo = obj.partial(x)  # features streamed from the MLP: saved as Phi
    z = x[:fo.n_params]
    back, z2, meta = rc.load_point(rc.save_point(tmp_path / "f.npz", fo, z))
    assert isinstance(back, rc.FeatureObjective) and back.head == head
    assert back.feature_bias == feature_bias and np.load(tmp_path / "f.npz")["Phi"].shape[1] == 3
    assert np.array_equal(z2, z)
    np.testing.assert_allclose(back.fun(z2), fo.fun(z), rtol=1e-13)
    np.testing.assert_allclose(back.hessian(z2), fo.hessian(z), rtol=1e-10, atol=1e-13)
    assert meta["features"] == "given" and meta["weighted"] and meta["k"] == 3 + feature_bias
    assert set(np.load(tmp_path / "f.npz").files) >= {"Phi", "w", "V" if head == "residual"
                                                       else "v", "sample_weight"}


def test_uniform_weights_and_float32_are_kept(tmp_path):
    obj, x = _mlp(weighted=False)
    X32 = np.asarray(obj.X, dtype=np.float32)
    obj32 = rc.Objective(X32, obj.y, loss="squared", widths=(5, 3),
                         activation="relu", bias=False, head="skip")
    rc.save_point(tmp_path / "p.npz", obj32, x)
    assert "sample_weight" not in np.load(tmp_path / "p.npz").files
    back, x2, meta = rc.load_point(tmp_path / "p.npz")
    assert back.dtype == np.float32 and x2.dtype == np.float32 and not meta["weighted"]
    assert back.fun(x2) == obj32.fun(x)


def test_custom_loss_is_refused(tmp_path):
    rng = np.random.default_rng(0)
    X, y, _ = make_data(rng, 20, 2, "squared")
    fo = rc.FeatureObjective(X, X[:, :1], y, loss=lambda p, t: ((p - t) ** 2 / 2, p - t,
                                                                   np.ones_like(p)))
    with pytest.raises(ValueError, match="custom loss"):
        rc.save_point(tmp_path / "c.npz", fo, np.zeros(fo.n_params))
    with pytest.raises(ValueError, match="shape"):
        rc.save_point(tmp_path / "c.npz", _mlp()[0], np.zeros(3))
    assert not (tmp_path / "c.npz").exists()


def test_certify_relu_point_is_not_certified_as_tanh(tmp_path, capsys):
    """Regression: a ReLU-trained point used to be certified as tanh (another F)."""
    obj, x = _mlp(activation="relu", bias=True, head="residual", weighted=False)
    rc.save_point(tmp_path / "relu.npz", obj, x)
    status, out, _ = _certify(capsys, tmp_path / "relu.npz", "--json")
    report = json.loads(out)
    assert status in (0, 1, 2)
    assert report["F"] == pytest.approx(obj.fun(x), rel=1e-12)
    tanh = rc.Objective(obj.X, obj.y, loss="squared", widths=(5, 3),
                        activation="tanh")
    assert abs(tanh.fun(x) - obj.fun(x)) > 1e-3 * abs(obj.fun(x))  # the guess was visible
    assert report["problem"] == dict(file=str(tmp_path / "relu.npz"), kind="Objective",
                                     loss="squared", head="residual", format_version=1,
                                     weighted=False, activation="relu", widths=[5, 3],
                                     bias=True, feature_bias=False, n=60, d=4, k=3,
                                     n_outputs=1)
    status, out, _ = _certify(capsys, tmp_path / "relu.npz")
    for line in ("loss            squared", "activation      relu", "widths          5, 3",
                 "bias            yes", "head            residual", "n / d / k       60 / 4 / 3",
                 "sample weights  uniform"):
        assert line in out
    assert out.index("activation") < out.index("eps-SOPSP")


@pytest.mark.parametrize("drop", ["activation", "loss", "bias", "widths", "head",
                                  "feature_bias"])
def test_missing_key_is_refused_naming_it(tmp_path, capsys, drop):
    obj, x = _mlp()
    rc.save_point(tmp_path / "p.npz", obj, x)
    keys = dict(np.load(tmp_path / "p.npz"))
    del keys[drop]
    np.savez(tmp_path / "old.npz", **keys)
    with pytest.raises(rc.PointFileError, match=f"missing key '{drop}'"):
        rc.load_point(tmp_path / "old.npz")
    status, out, err = _certify(capsys, tmp_path / "old.npz")
    assert status == 3 and out == ""
    assert err.count("\n") == 1 and f"missing key '{drop}'" in err
    assert err.startswith(f"resnet-core certify: {tmp_path / 'old.npz'}: ")


@pytest.mark.parametrize("change, message", [
    (dict(activation=np.array("swish")), "'activation' must be one of"),
    (dict(loss=np.array(3)), "'loss' must be a string"),
    (dict(widths=np.array([5.0, 3.0])), "'widths' must be one or more integers"),
    (dict(bias=np.array(2)), "'bias' must be True or False"),
    (dict(params=np.zeros(7)), "params must have shape"),
    (dict(sample_weights=np.ones(60)), "unexpected key\\(s\\) \\['sample_weights'\\]"),
    (dict(Phi=np.ones((60, 1))), "both 'params'"),
    (dict(format_version=np.array(2)), "format_version 2 is not supported"),
    (dict(X=np.array(["a"] * 60)), "'X' must hold real numbers"),
])
def test_bad_content_is_refused(tmp_path, change, message):
    obj, x = _mlp()
    rc.save_point(tmp_path / "p.npz", obj, x)
    np.savez(tmp_path / "bad.npz", **{**dict(np.load(tmp_path / "p.npz")), **change})
    with pytest.raises(rc.PointFileError, match=message):
        rc.load_point(tmp_path / "bad.npz")


def test_feature_file_needs_the_heads_matrix(tmp_path):
    X = np.ones((3, 2))
    np.savez(tmp_path / "f.npz", X=X, y=np.ones(3), loss="squared", head="residual",
             feature_bias=0,
             Phi=np.ones((3, 1)), w=np.ones(2), v=np.ones(1))
    with pytest.raises(rc.PointFileError, match="missing key 'V'"):
        rc.load_point(tmp_path / "f.npz")
    np.savez(tmp_path / "f.npz", X=X, y=np.ones(3), loss="squared", head="residual",
             feature_bias=0,
             Phi=np.ones((3, 1)), w=np.ones(5), V=np.ones((2, 1)))
    with pytest.raises(rc.PointFileError, match="w must have shape"):
        rc.load_point(tmp_path / "f.npz")


def _damaged(tmp_path) -> dict:
    good = tmp_path / "good.npz"
    obj, x = _mlp()
    rc.save_point(good, obj, x)
    files = {"empty": (tmp_path / "empty.npz", "is empty"),
             "truncated": (tmp_path / "truncated.npz", "damaged .npz archive"),
             "npy": (tmp_path / "array.npy", "is a .npy file"),
             "object": (tmp_path / "object.npz", "object array"),
             "text": (tmp_path / "text.npz", "not a .npz archive"),
             "directory": (tmp_path, "is a directory"),
             "absent": (tmp_path / "absent.npz", "no such file")}
    files["empty"][0].write_bytes(b"")
    data = good.read_bytes()
    files["truncated"][0].write_bytes(data[: len(data) // 2])
    np.save(files["npy"][0], np.ones(3))
    np.savez(files["object"][0], X=np.array([1, "a"], dtype=object), y=np.ones(2))
    files["text"][0].write_text("X,y\n1,2\n")
    return files


@pytest.mark.parametrize("kind", ["empty", "truncated", "npy", "object", "text", "directory",
                                  "absent"])
def test_damaged_files_give_one_line_and_status_3(tmp_path, capsys, kind):
    path, message = _damaged(tmp_path)[kind]
    with pytest.raises(rc.PointFileError, match=message):
        rc.load_point(path)
    status, out, err = _certify(capsys, path)
    assert status == 3 and out == ""
    assert err == f"resnet-core certify: {path}: " + err.split(": ", 2)[2]
    assert err.count("\n") == 1 and message in err and "Traceback" not in err


def test_damaged_file_in_a_subprocess_has_no_traceback(tmp_path):
    for kind in ("truncated", "object"):
        path, message = _damaged(tmp_path)[kind]
        run = subprocess.run([sys.executable, "-m", "resnet_core", "certify", str(path)],
                             capture_output=True, text=True, timeout=120)
        assert run.returncode == 3, run.stderr
        assert run.stdout == "" and "Traceback" not in run.stderr
        assert run.stderr.count("\n") == 1 and message in run.stderr


def test_usage_errors_exit_3(capsys):
    for argv in (["certify"], ["certify", "p.npz", "--eps", "abc"]):
        with pytest.raises(SystemExit) as exc:
            cli.main(argv)
        assert exc.value.code == 3
    assert "usage" in capsys.readouterr().err


@pytest.mark.parametrize("eps, status, verdict", [
    (0.1, 0, "yes"),  # Example 1: lambda_min = -0.1 > -sqrt(0.1)
    (1.0, 2, "inconclusive"),  # lambda_min = -1 = -sqrt(mu2 eps): on the threshold
])
def test_exit_status_is_the_verdict_example1(tmp_path, capsys, eps, status, verdict):
    fo, z0 = example1(eps)
    rc.save_point(tmp_path / "ex1.npz", fo, z0)
    got, out, err = _certify(capsys, tmp_path / "ex1.npz", "--eps", str(eps), "--mu2", "1")
    assert (got, err) == (status, "")
    assert f"eps-SOPSP            {verdict}" in out and "features        given (k = 1)" in out


def test_exit_status_1_at_a_large_gradient(tmp_path, capsys):
    obj, x = _mlp()
    fo = obj.partial(x)
    assert np.linalg.norm(fo.grad(x[:fo.n_params])) > 0.1
    rc.save_point(tmp_path / "p.npz", obj, x)
    status, out, _ = _certify(capsys, tmp_path / "p.npz", "--json")
    assert status == 1 and json.loads(out)["is_sopsp"] is False


def test_certify_reports_bad_options_in_one_line(tmp_path, capsys):
    fo, z0 = example1(0.1)
    rc.save_point(tmp_path / "ex1.npz", fo, z0)
    status, out, err = _certify(capsys, tmp_path / "ex1.npz", "--mu2", "-1")
    assert status == 3 and out == "" and err.count("\n") == 1 and "mu2" in err


def test_certify_estimates_mu2_on_a_ball_and_compares_with_a_radius(tmp_path, capsys):
    fo, z0 = example1(0.1)
    rc.save_point(tmp_path / "ex1.npz", fo, z0)
    status, out, err = _certify(capsys, tmp_path / "ex1.npz", "--eps", "0.1", "--json")
    report = json.loads(out)
    assert status == 2 and report["mu2_source"] == "not given"  # lambda_min < 0, mu2 unknown
    status, out, err = _certify(capsys, tmp_path / "ex1.npz", "--eps", "0.1", "--json",
                                "--mu2-ball", "1.0", "--radius", "0.5")
    report = json.loads(out)
    assert err == "" and report["mu2_source"].startswith("estimated")
    assert report["mu2_region"]["kind"] == "ball" and report["mu2"] > 0
    assert report["radius"] == 0.5 and report["baseline_radius"] == 0.5  # the old key too
    assert report["F_lin_star"] == pytest.approx(0.5 * (1 - 0.5) ** 2, rel=1e-12)
    assert rc.SOPSPReport.from_dict(report_fields(report)).radius == 0.5


def report_fields(report: dict) -> dict:
    """The report's fields of ``certify --json`` (without the problem)."""
    return {k: v for k, v in report.items() if k != "problem"}


def test_certify_old_baseline_radius_flag_warns_and_works(tmp_path, capsys):
    fo, z0 = example1(0.1)
    rc.save_point(tmp_path / "ex1.npz", fo, z0)
    new = _certify(capsys, tmp_path / "ex1.npz", "--eps", "0.1", "--json", "--radius", "0.5")
    old = _certify(capsys, tmp_path / "ex1.npz", "--eps", "0.1", "--json",
                   "--baseline-radius", "0.5")
    assert new[0] == old[0] and new[2] == ""
    assert old[2].count("\n") == 1 and "--baseline-radius is deprecated" in old[2]
    assert "--radius" in old[2]
    a, b = json.loads(new[1]), json.loads(old[1])
    a.pop("timings"), b.pop("timings")
    assert a == b and b["radius"] == 0.5
    assert "--baseline-radius" not in cli_help(capsys)
    with pytest.raises(SystemExit) as exit_:
        _certify(capsys, tmp_path / "ex1.npz", "--radius", "0.5", "--baseline-radius", "0.5")
    assert exit_.value.code == 3 and "not both" in capsys.readouterr().err


def cli_help(capsys) -> str:
    with pytest.raises(SystemExit):
        cli.main(["certify", "--help"])
    return capsys.readouterr().out


def test_report_from_dict_reads_old_and_new_keys():
    fo, z0 = example1(0.1)
    r = rc.check_sopsp(fo, z0, eps=0.1, radius=0.5)
    d = r.to_dict()
    assert rc.SOPSPReport.from_dict(d).to_dict() == d
    d.pop("radius")
    assert rc.SOPSPReport.from_dict(d).radius == 0.5  # a file of the last release
    with pytest.warns(DeprecationWarning, match="'radius'"):
        assert r.baseline_radius == 0.5
    with pytest.warns(DeprecationWarning, match="baseline_radius.*'radius'"):
        old = {k: v for k, v in r.__dict__.items() if k != "radius"}
        assert rc.SOPSPReport(**old, baseline_radius=0.5).radius == 0.5
    with pytest.raises(ValueError, match="not fields"):
        rc.SOPSPReport.from_dict({**d, "radious": 1.0})


def _vector_problem(loss, head, seed=0, n=40, d=3, k=2, c=3):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    y = rng.integers(0, c - 1, n) if loss == "cross_entropy" else rng.standard_normal((n, c))
    sw = rng.uniform(0.5, 2.0, n)
    return rng, X, y, sw


@pytest.mark.parametrize("loss", ["cross_entropy", "squared"])
@pytest.mark.parametrize("head", ["residual", "skip"])
def test_c_output_round_trips(tmp_path, loss, head):
    """Objectives with c outputs (cross-entropy labels, the (n, c) squared loss) are saved
    and read back: the same c (n_classes kept even when the last class has no sample),
    values, gradients and certificate."""
    rng, X, y, sw = _vector_problem(loss, head)
    extra = {"n_classes": 3} if loss == "cross_entropy" else {}
    obj = rc.Objective(X, y, loss=loss, widths=(4,), head=head, sample_weight=sw, **extra)
    x = obj.init(seed=1)
    back, x2, meta = rc.load_point(rc.save_point(tmp_path / "o.npz", obj, x))
    assert meta["n_outputs"] == back.n_outputs == 3 and back.head == head
    assert np.array_equal(x2, x)
    np.testing.assert_allclose(back.fun(x2), obj.fun(x), rtol=1e-13)
    np.testing.assert_allclose(back.grad(x2), obj.grad(x), rtol=1e-12, atol=1e-15)
    fo = obj.partial(x)
    z = x[:fo.n_params]
    fback, z2, fmeta = rc.load_point(rc.save_point(tmp_path / "f.npz", fo, z))
    assert isinstance(fback, rc.FeatureObjective) and fmeta["n_outputs"] == 3
    assert set(np.load(tmp_path / "f.npz").files) >= {"W", "V" if head == "residual" else "B"}
    np.testing.assert_allclose(fback.fun(z2), fo.fun(z), rtol=1e-12)
    a = rc.check_sopsp(fo, z, eps=0.1).to_dict()
    b = rc.check_sopsp(fback, z2, eps=0.1).to_dict()
    for key in ("F", "grad_norm", "lambda_min", "gap", "n_outputs"):
        assert a[key] == pytest.approx(b[key], rel=1e-9, abs=1e-12), key


def test_certify_cli_with_c_outputs(tmp_path, capsys):
    rng, X, y, sw = _vector_problem("cross_entropy", "residual")
    obj = rc.Objective(X, y, loss="cross_entropy", widths=(4,), n_classes=3)
    x = obj.init(seed=2)
    rc.save_point(tmp_path / "ce.npz", obj, x)
    status, out, err = _certify(capsys, tmp_path / "ce.npz", "--eps", "10", "--json")
    report = json.loads(out)
    direct = rc.check_sopsp(obj, x, eps=10.0)
    assert err == "" and status == {True: 0, False: 1, None: 2}[direct.is_sopsp]
    assert report["n_outputs"] == 3 and report["problem"]["n_outputs"] == 3
    assert report["lambda_min"] == pytest.approx(direct.lambda_min, rel=1e-9, abs=1e-12)
    assert "no known analogue" in report["theorem2_note"]
    status, out, err = _certify(capsys, tmp_path / "ce.npz", "--eps", "10")
    assert "c = 3" in out and "Theorem 2" in out


def test_c_output_file_with_a_bad_head_matrix_is_refused(tmp_path):
    rng, X, y, sw = _vector_problem("squared", "residual")
    fo = rc.FeatureObjective(X, rng.standard_normal((40, 2)), y, loss="squared")
    z = rng.standard_normal(fo.n_params)
    rc.save_point(tmp_path / "v.npz", fo, z)
    arrays = dict(np.load(tmp_path / "v.npz"))
    np.savez(tmp_path / "bad.npz", **{**arrays, "W": arrays["W"][:2]})
    with pytest.raises(rc.PointFileError, match="W"):
        rc.load_point(tmp_path / "bad.npz")
    np.savez(tmp_path / "extra.npz", **{**arrays, "n_classes": np.array(3)})
    with pytest.raises(rc.PointFileError, match="unexpected key.*n_classes"):
        rc.load_point(tmp_path / "extra.npz")


def test_weights_changed_by_the_caller_after_construction_change_nothing(tmp_path):
    """The objective keeps its own copy of the given weights: the caller reusing its array
    after construction changes neither the objective nor the point file it writes."""
    rng = np.random.default_rng(7)
    X, y, sw = make_data(rng, 40, 3, "logistic")
    sw = np.ascontiguousarray(sw, dtype=np.float64)
    obj = rc.Objective(X, y, widths=(3,), sample_weight=sw)
    x = random_point(obj, rng)
    F = obj.fun(x)
    sw[:] = rng.random(40) + 0.1  # the caller's array, reused
    path = rc.save_point(tmp_path / "p.npz", obj, x)
    back, x2, _ = rc.load_point(path)
    assert obj.fun(x) == F and back.fun(x2) == F
