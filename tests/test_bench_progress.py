"""compare.py's rows are printed as they are measured (stderr), the table stays whole."""

from resnet_core.bench.compare import LiveRows, format_rows


def test_rows_printed_as_appended(capsys):
    rows = LiveRows()
    rows.append(("fun_and_grad", "resnet-core", 0.012))
    err = capsys.readouterr().err
    assert "[row  1," in err and "fun_and_grad | resnet-core | 12 ms" in err
    rows += [("fun_and_grad", "jax", 0.024), ("hessp (full)", "resnet-core", 0.03)]
    err = capsys.readouterr().err.splitlines()
    assert [line.split("]")[0].split(",")[0] for line in err] == ["[row  2", "[row  3"]
    assert isinstance(rows, list) and len(rows) == 3
    assert "2.00x" in format_rows(rows)
