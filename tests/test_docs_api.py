"""The documentation stays in step with the code.

* Every name in the ``__all__`` of ``sklearn_mf`` and of each public
  subpackage is listed in ``doc/api.rst`` (and nothing listed there is missing
  from the code).
* Every module of the package is described on the code-map page
  ``doc/user_guide/layout.rst``.
* The ``.. code-block:: python`` snippets of the narrative pages run.
"""

import importlib
import pkgutil
import re
from pathlib import Path

import pytest

import sklearn_mf

DOC = Path(__file__).resolve().parents[1] / "doc"
PACKAGE = Path(sklearn_mf.__file__).resolve().parent

pytestmark = pytest.mark.skipif(not DOC.is_dir(), reason="doc/ is not part of this install")


def public_modules():
    """``sklearn_mf`` and every subpackage/module whose dotted name has no ``_`` part."""
    names = ["sklearn_mf"]
    for info in pkgutil.walk_packages(sklearn_mf.__path__, "sklearn_mf."):
        if not any(part.startswith("_") for part in info.name.split(".")):
            names.append(info.name)
    return names


def documented_names(text):
    """Fully qualified names listed in the autosummary blocks of ``text``."""
    names, module, in_block = set(), None, False
    for line in text.splitlines():
        m = re.match(r"\.\. currentmodule:: (\S+)", line)
        if m:
            module, in_block = m.group(1), False
            continue
        if line.startswith(".. autosummary::"):
            in_block = True
            continue
        if in_block:
            stripped = line.strip()
            if not stripped or stripped.startswith(":"):
                continue
            if not line.startswith(" "):
                in_block = False
                continue
            names.add(stripped if "." in stripped else f"{module}.{stripped}")
    return names


def test_parser_reads_autosummary_blocks():
    text = (
        ".. currentmodule:: pkg.sub\n\n.. autosummary::\n   :toctree: generated/\n\n"
        "   A\n   b\n\nText\n   C\n"
    )
    assert documented_names(text) == {"pkg.sub.A", "pkg.sub.b"}


def test_every_public_name_is_in_the_api_reference():
    documented = documented_names((DOC / "api.rst").read_text())
    missing = []
    for name in public_modules():
        module = importlib.import_module(name)
        for attr in getattr(module, "__all__", []):
            if f"{name}.{attr}" not in documented:
                missing.append(f"{name}.{attr}")
    assert not missing, f"public names missing from doc/api.rst: {missing}"


def test_every_documented_name_exists():
    for qualname in sorted(documented_names((DOC / "api.rst").read_text())):
        module, _, attr = qualname.rpartition(".")
        assert hasattr(importlib.import_module(module), attr), qualname


def test_code_map_mentions_every_module():
    text = (DOC / "user_guide" / "layout.rst").read_text()
    missing = []
    for path in sorted(PACKAGE.rglob("*")):
        if path.suffix in (".py", ".pyx", ".pxd") and "tests" not in path.parts:
            rel = path.relative_to(PACKAGE.parent).as_posix()
            if path.name != "__init__.py" and path.name not in text:
                missing.append(rel)
    assert not missing, f"modules not described in doc/user_guide/layout.rst: {missing}"


def _python_blocks(text):
    """Bodies of the ``.. code-block:: python`` directives of an RST page.

    A block with the option ``:class: not-run`` (code that needs the internet
    or an optional package) is shown in the docs but not run here.
    """
    blocks, lines, i = [], text.splitlines(), 0
    while i < len(lines):
        if lines[i].strip() == ".. code-block:: python":
            i += 1
            body, options = [], []
            while i < len(lines) and (not lines[i].strip() or lines[i].startswith(" ")):
                if lines[i].strip().startswith(":") and not any(b.strip() for b in body):
                    options.append(lines[i].strip())
                else:
                    body.append(lines[i])
                i += 1
            if ":class: not-run" in options:
                continue
            indent = min(len(s) - len(s.lstrip()) for s in body if s.strip())
            blocks.append("\n".join(s[indent:] for s in body))
        else:
            i += 1
    return blocks


PAGES = sorted(
    p.relative_to(DOC).as_posix()
    for p in DOC.rglob("*.rst")
    if not {"_build", "generated", "auto_examples"} & set(p.parts) and _python_blocks(p.read_text())
)


# pages whose snippets fit models on MovieLens (seconds each)
SLOW_PAGES = {"user_guide/fm.rst", "user_guide/production.rst"}


@pytest.mark.parametrize(
    "page",
    [pytest.param(p, marks=pytest.mark.slow) if p in SLOW_PAGES else p for p in PAGES],
)
def test_narrative_code_runs(page, tmp_path, monkeypatch):
    blocks = _python_blocks((DOC / page).read_text())
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MPLBACKEND", "Agg")
    namespace = {"__name__": "__doc__"}
    for n, code in enumerate(blocks):
        exec(compile(code, f"{page}[block {n}]", "exec"), namespace)


EXAMPLES = sorted((DOC.parent / "examples").glob("plot_*.py"))


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_gallery_example_has_a_valid_title(path):
    """sphinx-gallery needs a docstring whose first lines are an RST title."""
    import ast

    doc = ast.get_docstring(ast.parse(path.read_text()), clean=False)
    assert doc, f"{path.name} has no module docstring"
    lines = [line.rstrip() for line in doc.strip("\n").splitlines()]
    over, title, under = lines[0], lines[1], lines[2]
    assert set(over) == {"="} and over == under, f"{path.name}: over/underline differ"
    assert len(over) >= len(title.strip()), (
        f"{path.name}: title {title.strip()!r} ({len(title.strip())} chars) is longer "
        f"than its over/underline ({len(over)} chars)"
    )


NARRATIVE = sorted(
    p
    for p in DOC.rglob("*.rst")
    if not {"_build", "generated", "auto_examples", "_templates"} & set(p.relative_to(DOC).parts)
)
_ADORNMENT = re.compile(r"^([=\-~^\"'`#*+])\1{2,}\s*$")


@pytest.mark.parametrize("path", NARRATIVE, ids=lambda p: p.relative_to(DOC).as_posix())
def test_section_titles_are_underlined_fully(path):
    """An over/underline shorter than its title fails the ``-W`` docs build."""
    lines = path.read_text().splitlines()
    bad = []
    for n, line in enumerate(lines[1:], start=1):
        prev = lines[n - 1]
        if _ADORNMENT.match(line) and prev.strip() and not _ADORNMENT.match(prev):
            if not prev.startswith(" ") and len(line.rstrip()) < len(prev.rstrip()):
                bad.append(f"line {n + 1}: {prev.strip()!r}")
            if n >= 2 and _ADORNMENT.match(lines[n - 2]) and lines[n - 2].rstrip() != line.rstrip():
                bad.append(f"line {n - 1}: overline and underline of {prev.strip()!r} differ")
    assert not bad, f"{path.name}: {bad}"


def test_every_ref_target_exists():
    """``:ref:`label``` and ``:ref:`text <label>``` point at a defined label."""
    sources = [
        *NARRATIVE,
        *(DOC.parent / "examples").glob("*.rst"),
        *(DOC.parent / "examples").glob("*.py"),
    ]
    defined, used = set(), {}
    for path in sources:
        text = path.read_text()
        defined.update(re.findall(r"^\.\. _([\w\-]+):\s*$", text, flags=re.M))
        for target in re.findall(r":ref:`(?:[^`<]*<)?([\w\-]+)>?`", text):
            used.setdefault(target, path.name)
    # labels that sphinx-gallery generates for the gallery and each example
    defined.update(
        f"sphx_glr_auto_examples_{p.stem}.py" for p in (DOC.parent / "examples").glob("plot_*.py")
    )
    missing = {
        t: where for t, where in used.items() if t not in defined and not t.startswith("sphx_glr_")
    }
    assert not missing, f"undefined :ref: targets (label: first page using it): {missing}"
