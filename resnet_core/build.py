"""How the compiled kernels were built and which code path runs on this CPU."""

from __future__ import annotations

import platform

from . import _kernels

#: Names of the x86-64 levels reported by the kernels (0: another architecture).
LEVEL_NAMES = {1: "x86-64", 2: "x86-64-v2", 3: "x86-64-v3", 4: "x86-64-v4"}


def _level_name(level: int) -> str:
    return LEVEL_NAMES.get(level, platform.machine() or "unknown")


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``, else what ``platform`` knows)."""
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def build_info() -> dict:
    """The kernels' build and the instruction set their hot loops run.

    Returns
    -------
    dict
        ``compile_args`` (the C compiler's flags), ``march`` (the ``-march`` value, or
        ``None`` for a portable build), ``build_level`` (the x86-64 level the code was
        compiled for: ``"x86-64"``, ``"x86-64-v2"`` (SSE4.2), ``"x86-64-v3"`` (AVX2 + FMA)
        or ``"x86-64-v4"`` (AVX-512)), ``dispatch`` (``True`` when the elementwise loops
        exist for several levels and the loader picks one at run time: the portable build),
        ``runtime_level`` (the level whose elementwise loops run here), ``cpu`` (the CPU's
        model name) and ``summary`` (one line of all that, for benchmark tables).
    """
    raw = _kernels.build_info()
    march = next((a.split("=", 1)[1] for a in raw["compile_args"] if a.startswith("-march=")),
                 None)
    build, run = _level_name(raw["build_level"]), _level_name(raw["runtime_level"])
    how = (f"portable, loops dispatched at run time to {run}" if raw["dispatch"]
           else f"-march={march}" if march else "portable, no run-time dispatch")
    return {"compile_args": raw["compile_args"], "march": march, "build_level": build,
            "dispatch": raw["dispatch"], "runtime_level": run, "cpu": cpu_model(),
            "summary": f"kernels built for {build} ({how}), running {run}"}
