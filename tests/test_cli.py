"""The command line runs and its numbers hold together."""

import io

import numpy as np

from resnet_core import cli


def test_demo_table_is_consistent():
    buf = io.StringIO()
    rows = cli.demo(n=2000, d=4, widths=(5, 3), out=buf)
    text = buf.getvalue()
    assert "F_lin(w*)" in text and "lambda_min" in text
    assert rows["HVP vs central differences (rel.)"] < 1e-6
    assert np.isclose(rows["gap F - F_lin(w*)"], rows["F(w, V, theta) at init"]
                      - rows["F_lin(w*) best linear predictor"])


def test_main_entry_point(capsys):
    assert cli.main(["demo", "--quick"]) == 0
    assert "resnet-core demo" in capsys.readouterr().out
