"""What a timing depends on, printed with every table: the date, the machine, the versions
and the thread settings of every framework; and the README's generated speed block.

The README's speed table is the block that ``python benchmarks/compare.py --readme`` prints,
pasted whole: :func:`readme_block` ends it with a checksum of its own lines, and
:func:`check_readme_block` (run by the tests on README.md) fails on a block that lacks a
field or whose lines were edited after the run.
"""

from __future__ import annotations

import hashlib
import os
import platform
import subprocess
import time
from pathlib import Path

import numpy as np

from ..build import build_info, cpu_model

BEGIN = ("<!-- speed table: printed whole by `python benchmarks/compare.py --readme`; "
         "do not edit -->")
END = "<!-- end of speed table -->"
#: Field names each generated header carries (one ``- name: value`` line each).
FIELDS = ("date", "machine", "versions", "BLAS", "threads", "problem")
#: Items the ``versions`` and ``threads`` lines must name.
VERSION_ITEMS = ("numpy", "scipy", "torch", "jax", "jaxlib", "resnet_core")
THREAD_ITEMS = ("n_threads", "OMP_WAIT_POLICY", "OMP_NUM_THREADS", "MKL_NUM_THREADS",
                "OPENBLAS_NUM_THREADS", "torch.get_num_threads", "XLA_FLAGS")


def _memory_gib() -> str:
    try:
        with open("/proc/meminfo") as fh:
            kib = int(next(line for line in fh if line.startswith("MemTotal:")).split()[1])
        return f"{kib / 2**20:.0f} GiB"
    except (OSError, StopIteration, ValueError):
        return "memory unknown"


def _git_commit() -> str:
    """The checkout's commit of resnet_core (``+modified`` with uncommitted changes), or
    ``not a git checkout`` for an installed package."""
    import resnet_core

    home = Path(resnet_core.__file__).resolve().parents[1]
    try:
        head = subprocess.run(["git", "-C", str(home), "rev-parse", "--short", "HEAD"],
                              capture_output=True, text=True, timeout=10)
        if head.returncode != 0:
            return "not a git checkout"
        dirty = subprocess.run(["git", "-C", str(home), "status", "--porcelain",
                                "--untracked-files=no"], capture_output=True, text=True,
                               timeout=10).stdout.strip()
        return head.stdout.strip() + ("+modified" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "git unavailable"


def _version(name: str) -> str:
    from importlib import metadata

    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


def _blas() -> str:
    """Each BLAS loaded in the process (numpy's and scipy's), with its version, kernels and
    thread count, from threadpoolctl."""
    import scipy.linalg  # noqa: F401  (loads scipy's BLAS)
    from threadpoolctl import threadpool_info

    libs = [f"{Path(i['filepath']).name}: {i.get('internal_api')} {i.get('version')} "
            f"({i.get('architecture')}, {i.get('threading_layer')} threads, "
            f"{i.get('num_threads')} threads)"
            for i in threadpool_info() if i.get("user_api") == "blas"]
    return "; ".join(libs) or "none found"


def describe(*, problem: str) -> dict[str, str]:
    """The header fields (:data:`FIELDS`) of a timing run in this process, ``problem`` its
    last field.  Call after the frameworks are imported (their thread settings are read)."""
    import scipy

    import resnet_core
    from . import frameworks as fw

    torch, jax = fw.torch_available(), fw.jax_available()
    env = {k: os.environ.get(k, "unset") for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS",
                                                   "OPENBLAS_NUM_THREADS", "XLA_FLAGS")}
    n_threads = resnet_core.Objective(np.zeros((2, 1)), np.array([1.0, -1.0]),
                                      widths=(1,)).n_threads
    threads = (f"resnet_core n_threads {n_threads} (BLAS at 1 thread inside the kernels), "
               f"OMP_WAIT_POLICY {os.environ.get('OMP_WAIT_POLICY', 'unset')}, "
               + ", ".join(f"{k} {v}" for k, v in env.items()) + ", "
               + (f"torch.get_num_threads {torch.get_num_threads()} "
                  f"(interop {torch.get_num_interop_threads()})" if torch is not None
                  else "torch.get_num_threads n/a (not installed)") + ", "
               + (f"jax devices {[str(dv) for dv in jax.devices()]}" if jax is not None
                  else "jax devices n/a (not installed)"))
    versions = (f"python {platform.python_version()}, numpy {np.__version__}, scipy "
                f"{scipy.__version__}, torch {_version('torch')}, jax {_version('jax')}, "
                f"jaxlib {_version('jaxlib')}, resnet_core {resnet_core.__version__} "
                f"(commit {_git_commit()})")
    return {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "machine": (f"{cpu_model()}, {os.cpu_count()} cores, {_memory_gib()}; "
                        f"{build_info()['summary']}"),
            "versions": versions, "BLAS": _blas(), "threads": threads, "problem": problem}


def header_lines(fields: dict[str, str]) -> list[str]:
    return [f"- {name}: {fields[name]}" for name in FIELDS]


def _checksum(lines: list[str]) -> str:
    return hashlib.sha256("\n".join(line.rstrip() for line in lines).encode()).hexdigest()[:16]


def readme_block(fields: dict[str, str], table: str, *, command: str, minutes: float) -> str:
    """The README's speed block: the header fields, the table, the command that printed
    them (one process, ``minutes`` long), and a checksum of those lines."""
    body = header_lines(fields) + ["", *table.splitlines(), "",
                                   f"Printed by `{command}` in one process, {minutes:.1f} min."]
    return "\n".join([BEGIN, *body, f"checksum {_checksum(body)}", END])


def check_readme_block(text: str) -> list[str]:
    """Problems with the generated speed blocks inside ``text`` (a README; one block per
    build shown, e.g. native and x86-64-v3): missing block, missing fields or items, an
    edited line (checksum), no table.  Empty when sound."""
    if BEGIN not in text or END not in text:
        return ["no generated speed block (markers missing)"]
    problems = []
    for i, chunk in enumerate(text.split(BEGIN)[1:]):
        if END not in chunk:
            problems.append(f"block {i + 1}: no end marker")
            continue
        block = chunk.split(END, 1)[0].strip("\n").splitlines()
        problems += [p if i == 0 else f"block {i + 1}: {p}" for p in _block_problems(block)]
    return problems


def _block_problems(block: list[str]) -> list[str]:
    """Problems with one generated block's lines."""
    if not block or not block[-1].startswith("checksum "):
        return ["the block does not end with its checksum"]
    body, problems = block[:-1], []
    if block[-1].split()[1] != _checksum(body):
        problems.append("checksum mismatch: the block was edited after it was printed")
    found = {line[2:].split(":", 1)[0]: line.split(":", 1)[1] for line in body
             if line.startswith("- ") and ":" in line}
    problems += [f"field {name!r} missing" for name in FIELDS if name not in found]
    problems += [f"versions lack {item}" for item in VERSION_ITEMS
                 if item not in found.get("versions", "")]
    problems += [f"threads lack {item}" for item in THREAD_ITEMS
                 if item not in found.get("threads", "")]
    if "commit" not in found.get("versions", ""):
        problems.append("versions lack the resnet_core commit")
    if "kernels built for" not in found.get("machine", ""):
        problems.append("machine lacks the ISA level the kernels were built for")
    if not any(line.startswith("| fun_and_grad") and "resnet-core" in line for line in body):
        problems.append("no table with a resnet-core fun_and_grad row")
    return problems
