"""The documents match the code: every name README.md and docs/ put in inline code exists,
and every timing they quote names the command that produced it."""

import functools
import importlib
import io
import pkgutil
import re
import tokenize
from pathlib import Path

import pytest

import resnet_core as rc

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
MODULES = {m.name for m in pkgutil.iter_modules(rc.__path__)}
#: Module names that the pages also use for an instance (``objective.progress = True``).
INSTANCE_NAMES = {"objective"}

SPAN = re.compile(r"(?<!`)`([^`\n]+)`(?!`)")
DOTTED = re.compile(r"\b([A-Za-z_]\w*)((?:\.[A-Za-z_]\w*\*?)+)")
SNAKE = re.compile(r"(?<![\w./-])([a-z][a-z0-9]*(?:_[a-z0-9]+)+_?\*?)(?![\w/(-])")
#: Subscripted maths (``x_0``, ``g_t``, ``lambda_0``, ``min_i``, ``grad_theta``), not names.
MATH = re.compile(r"^(?:\w+_[a-z0-9]|[a-z]_\w+|(?:min|max|sum|grad)_\w+)$")
#: Files of the repository (output files such as ``report.md`` are not checked).
PATH = re.compile(r"^(?:(?:resnet_core|src|docs|tests|benchmarks)/[\w./-]*|[\w/-]+\.(?:py|pyx|pxd|pxi))$")
TIMING = re.compile(r"(?<![\w.^/])\d+(?:\.\d+)?\s?(?:ms|µs|us|ns|s|min|seconds|minutes)(?![\w^])")
COMMAND = re.compile(r"(?:^|`|\n\s*(?:\$ )?)(?:make \w|python3? |\.venv/bin/python |resnet-core \w"
                     r"|pytest |nice |(?:benchmarks|tests)/\w+\.py)")
NO_MEASUREMENT = "<!-- no measurement -->"


def _prose(page: Path) -> str:
    """The page without its fenced code blocks (the README's are run by test_readme)."""
    return re.sub(r"```.*?```", "", page.read_text(), flags=re.S)


@functools.lru_cache(maxsize=1)
def _identifiers() -> frozenset:
    """Every identifier and every identifier-like word of a string literal in the package,
    the compiled sources, the tests and the benchmarks."""
    names = set()
    for folder in ("resnet_core", "tests", "benchmarks"):
        for path in (ROOT / folder).rglob("*.py"):
            if path.name == Path(__file__).name:  # its own examples of missing names
                continue
            for tok in tokenize.generate_tokens(io.StringIO(path.read_text()).readline):
                if tok.type == tokenize.NAME:
                    names.add(tok.string)
                elif tok.type == tokenize.STRING:
                    names.update(re.findall(r"[A-Za-z_]\w*", tok.string))
    for path in (ROOT / "src").iterdir():
        if path.suffix in (".pyx", ".pxd", ".pxi", ".h"):
            names.update(re.findall(r"[A-Za-z_]\w*", path.read_text()))
    return frozenset(names)


def _exists(name: str, names: set) -> bool:
    if name.endswith("*"):  # a family: theory.lemma1_*
        return any(n.startswith(name[:-1]) for n in names)
    return name in names


def _resolve(head: str, chain: list) -> bool:
    """Whether ``head.chain`` names an attribute of the package (modules imported on the way)."""
    obj = rc if head in ("rc", "resnet_core") else importlib.import_module(f"resnet_core.{head}")
    for attr in chain:
        if attr.endswith("*"):
            return any(a.startswith(attr[:-1]) for a in dir(obj))
        if not hasattr(obj, attr) and hasattr(obj, "__path__"):
            try:
                obj = importlib.import_module(f"{obj.__name__}.{attr}")
                continue
            except ImportError:
                return False
        if not hasattr(obj, attr):
            return False
        obj = getattr(obj, attr)
    return True


def _names_on(page: Path):
    """``(span, kind, name)`` for each name in the page's inline code."""
    for span in SPAN.findall(_prose(page)):
        if PATH.match(span.strip()):
            yield span, "path", span.strip()
            continue
        dotted_words = set()
        for m in DOTTED.finditer(span):
            head, chain = m.group(1), m.group(2)[1:].split(".")
            dotted_words.update(chain)
            if head in ("rc", "resnet_core") or (head in MODULES and head not in INSTANCE_NAMES):
                yield span, "module", (head, chain)
            elif head not in ("np", "numpy", "scipy", "sklearn", "da", "dask", "jax", "torch",
                              "plt", "os", "math", "self"):
                yield span, "attribute", chain[-1]
        for m in SNAKE.finditer(span):
            w = m.group(1)
            if w not in dotted_words and not MATH.match(w.rstrip("*")):
                yield span, "name", w


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_named_thing_exists(page):
    names = _identifiers()
    missing = []
    for span, kind, what in _names_on(page):
        if kind == "path":
            ok = any((ROOT / base / what).exists() for base in ("", "resnet_core", "src", "docs",
                                                               "tests", "benchmarks"))
        elif kind == "module":
            ok = _resolve(*what)
        else:
            ok = _exists(what, names)
        if not ok:
            missing.append(f"`{span}` ({kind} {what})")
    assert not missing, f"{page.name} names what does not exist: " + "; ".join(missing)


def _paragraphs(page: Path):
    """``(paragraph, command seen so far in its section)`` for each prose paragraph; a
    command counts from its paragraph (or its fenced block) to the end of the section."""
    for section in re.split(r"\n(?=#{1,6} )", page.read_text()):
        seen = False
        for block in re.split(r"(```.*?```)", section, flags=re.S):
            if block.startswith("```"):
                seen = seen or bool(COMMAND.search(block))
                continue
            for para in re.split(r"\n\s*\n", block):
                seen = seen or bool(COMMAND.search(para))
                yield para, seen


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_timing_names_its_command(page):
    """A paragraph (or table) quoting a time names the command that measured it, in itself
    or earlier in its section; a duration that is a setting, not a measurement, is marked
    ``<!-- no measurement -->``."""
    bad = [para.strip()[:120] for para, seen in _paragraphs(page)
           if TIMING.search(para) and not seen and NO_MEASUREMENT not in para]
    assert not bad, f"{page.name}: timings without the command that produced them: {bad}"


def test_the_checks_catch_what_they_should(tmp_path):
    """The two checks fail on a page with a missing name and an unsourced timing."""
    page = tmp_path / "page.md"
    page.write_text("# T\n\nCall `rc.check_sopsp` and `theory.theorem2_bounds`, read "
                    "`report.theorem3_bound` and `no_such_field`; see `docs/nowhere.md`.\n\n"
                    "It took 35 s.\n\nA pass that has run 2 seconds shows a bar. "
                    f"{NO_MEASUREMENT}\n\n## U\n\nMeasured with `make bench`: 4 ms.\n")
    found = {(k, w if isinstance(w, str) else ".".join([w[0], *w[1]]))
             for _, k, w in _names_on(page)}
    names = _identifiers()
    assert ("module", "rc.check_sopsp") in found and _resolve("rc", ["check_sopsp"])
    assert ("module", "theory.theorem2_bounds") in found
    assert not _resolve("theory", ["theorem2_bounds"])
    assert ("attribute", "theorem3_bound") in found and _exists("theorem3_bound", names)
    assert ("name", "no_such_field") in found and not _exists("no_such_field", names)
    assert ("path", "docs/nowhere.md") in found
    flagged = [p for p, seen in _paragraphs(page)
               if TIMING.search(p) and not seen and NO_MEASUREMENT not in p]
    assert flagged == ["It took 35 s."]
