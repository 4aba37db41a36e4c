"""The README's API tour runs as written."""

import doctest
import json
import os
import subprocess
import sys
from pathlib import Path


def test_readme_doctests():
    readme = Path(__file__).resolve().parents[1] / "README.md"
    result = doctest.testfile(str(readme), module_relative=False, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 10 and result.failed == 0


def test_readme_speed_table_is_one_generated_block():
    from resnet_core.bench.environment import check_readme_block

    readme = Path(__file__).resolve().parents[1] / "README.md"
    assert check_readme_block(readme.read_text()) == []


def test_speed_block_check_catches_edits_and_missing_fields():
    from resnet_core.bench.environment import check_readme_block, readme_block

    # in a child: describe() imports torch and JAX, whose threads must not meet a later fork
    code = ("import json; from resnet_core.bench.environment import describe; "
            "print(json.dumps(describe(problem='n=10, d=2')))")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        filter(None, [str(Path(__file__).resolve().parents[1]), os.environ.get("PYTHONPATH")]))}
    fields = json.loads(subprocess.run([sys.executable, "-c", code], check=True, env=env,
                                       capture_output=True, text=True).stdout.splitlines()[-1])
    table = ("| work | implementation | median ms | time / resnet-core |\n"
             "| --- | --- | --- | --- |\n| fun_and_grad | resnet-core | 150 | - |\n"
             "| fun_and_grad | jax (jit) | 359 | 2.40x |")
    block = readme_block(fields, table, command="python benchmarks/compare.py --readme",
                         minutes=1.5)
    text = f"# Title\n\n{block}\n\nmore prose\n"
    assert check_readme_block(text) == []
    assert any("checksum" in p for p in check_readme_block(text.replace("2.40x", "2.90x")))
    no_threads = readme_block({**fields, "threads": "2"}, table, command="c", minutes=1.0)
    assert any("OMP_WAIT_POLICY" in p for p in check_readme_block(no_threads))
    assert check_readme_block("no block here") == ["no generated speed block (markers missing)"]
    # a second block (another build) is checked as the first is
    two = f"{block}\n\n{block.replace('2.40x', '2.90x')}"
    assert [p for p in check_readme_block(two) if p.startswith("block 2: checksum")]
