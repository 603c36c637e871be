"""build_tools/check_dist.py (``make distcheck``) accepts a complete sdist and
wheel and names each kind of packaging mistake."""

import importlib.util
import io
import tarfile
import zipfile
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "build_tools" / "check_dist.py"
pytestmark = pytest.mark.skipif(not SCRIPT.is_file(), reason="build_tools/ is not here")


@pytest.fixture(scope="module")
def check_dist():
    spec = importlib.util.spec_from_file_location("check_dist", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _sdist_names(cd):
    root = cd.ROOT
    return (
        cd.source_files("*.pyx")
        + cd.source_files("*.pxd")
        + cd.source_files("*.py")
        + [
            "setup.py",
            "pyproject.toml",
            "MANIFEST.in",
            "README.md",
            "LICENSE",
            "CHANGELOG.md",
            "CONTRIBUTING.md",
            "tests/conftest.py",
            "build_tools/check_dist.py",
            "doc/conf.py",
            "doc/api.rst",
            "doc/user_guide/layout.rst",
            "examples/_data.py",
        ]
        + [p.relative_to(root).as_posix() for p in (root / "tests").glob("test_*.py")]
    )


def _wheel_names(cd):
    return [
        pyx[:-4] + ".cpython-311-x86_64-linux-gnu.so" for pyx in cd.source_files("*.pyx")
    ] + cd.source_files("*.py")


def _write(dist, sdist_names, wheel_names, wheel_tag="cp311-cp311-linux_x86_64"):
    dist.mkdir()
    with tarfile.open(dist / "pkg-1.0.tar.gz", "w:gz") as tar:
        for name in sorted(set(sdist_names)):
            info = tarfile.TarInfo(f"pkg-1.0/{name}")
            tar.addfile(info, io.BytesIO(b""))
    with zipfile.ZipFile(dist / f"pkg-1.0-{wheel_tag}.whl", "w") as whl:
        for name in sorted(set(wheel_names)):
            whl.writestr(name, b"")
    return dist


def test_complete_distributions_pass(check_dist, tmp_path, capsys):
    dist = _write(tmp_path / "dist", _sdist_names(check_dist), _wheel_names(check_dist))
    assert check_dist.main(dist) == 0
    assert "distribution contents OK" in capsys.readouterr().out


def test_each_mistake_is_named(check_dist, tmp_path, capsys):
    pyx = check_dist.source_files("*.pyx")[0]
    sdist = [n for n in _sdist_names(check_dist) if n != pyx]
    sdist += [pyx[:-4] + ".c", "doc/_build/html/index.html", "data/ml-100k/u.data"]
    wheel = [n for n in _wheel_names(check_dist) if not n.startswith(pyx[:-4] + ".")]
    wheel += [pyx, "tests/test_mf.py"]
    dist = _write(tmp_path / "dist", sdist, wheel, wheel_tag="py3-none-any")
    assert check_dist.main(dist) == 1
    out = capsys.readouterr().out
    for problem in [
        f"sdist lacks {pyx}",
        f"sdist contains {pyx[:-4]}.c",
        "sdist contains doc/_build/html/index.html",
        "sdist contains data/ml-100k/u.data",
        f"wheel lacks the compiled module of {pyx}",
        f"wheel contains {pyx}",
        "wheel contains tests/test_mf.py",
        "wheel is tagged pure Python",
    ]:
        assert problem in out


def test_needs_exactly_one_sdist_and_one_wheel(check_dist, tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert check_dist.main(tmp_path / "empty") == 1
    assert "expected one sdist and one wheel" in capsys.readouterr().out
