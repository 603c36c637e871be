"""Check what the built sdist and wheel contain (``make distcheck``).

Usage: ``python build_tools/check_dist.py DIST_DIR``, where ``DIST_DIR`` holds
exactly one ``.tar.gz`` and one ``.whl`` built from this checkout.

The sdist must carry every Cython source of the package, the build files, the
test suite, the documentation sources and the gallery, and nothing generated
(C from Cython, compiled modules, byte code, built docs) and no data.  The
wheel must carry a compiled module for every ``.pyx`` and every Python module,
and no C, Cython sources, tests or data.  Prints what it checked; exits with
status 1 and a list of problems otherwise.
"""

import sys
import tarfile
import zipfile
from fnmatch import fnmatch
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# Generated files and data that neither distribution may contain.
NEVER = [
    "*.c",
    "*.cpp",
    "*.o",
    "*.html",
    "*.pyc",
    "*/__pycache__/*",
    "*.csv",
    "*.dat",
    "*.zip",
    "*.npz",
    "*.npy",
    "*.parquet",
    "*.pkl",
    "*.joblib",
    "*/u.data",
    "*/u.item",
    "*/u.user",
    "*/ml-100k/*",
    "*/ml-latest-small/*",
]
SDIST_NEVER = NEVER + [
    "*.so",
    "*.pyd",
    "doc/_build/*",
    "doc/auto_examples/*",
    "doc/generated/*",
    "build/*",
    "dist/*",
    "benchmarks/.cache/*",
]
WHEEL_NEVER = NEVER + ["*.pyx", "*.pxd", "tests/*", "doc/*", "examples/*", "benchmarks/*"]
SDIST_MAX_BYTES = 2_000_000


def source_files(pattern):
    """Paths (relative to the checkout) of the package files matching ``pattern``."""
    return sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "sklearn_mf").rglob(pattern))


def check_sdist(path):
    with tarfile.open(path) as tar:
        members = [m for m in tar.getmembers() if m.isfile()]
    prefix = members[0].name.split("/", 1)[0] + "/"
    names = {m.name[len(prefix) :] for m in members}
    problems = []
    required = (
        source_files("*.pyx")
        + source_files("*.pxd")
        + source_files("*.py")
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
        + sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "tests").glob("test_*.py"))
    )
    problems += [f"sdist lacks {name}" for name in required if name not in names]
    problems += [
        f"sdist contains {name}"
        for name in sorted(names)
        if any(fnmatch(name, pat) or fnmatch("/" + name, pat) for pat in SDIST_NEVER)
    ]
    size = Path(path).stat().st_size
    if size > SDIST_MAX_BYTES:
        problems.append(
            f"sdist is {size} bytes (more than {SDIST_MAX_BYTES}): data or build files?"
        )
    print(
        f"sdist {Path(path).name}: {len(names)} files, {size / 1e3:.0f} kB; "
        f"{len(required)} required files checked"
    )
    return problems


def check_wheel(path):
    with zipfile.ZipFile(path) as whl:
        names = set(whl.namelist())
    problems = []
    for pyx in source_files("*.pyx"):
        stem = pyx[:-4]
        if not any(n.startswith(stem + ".") and n.endswith((".so", ".pyd")) for n in names):
            problems.append(f"wheel lacks the compiled module of {pyx}")
    problems += [f"wheel lacks {py}" for py in source_files("*.py") if py not in names]
    problems += [
        f"wheel contains {name}"
        for name in sorted(names)
        if any(fnmatch(name, pat) or fnmatch("/" + name, pat) for pat in WHEEL_NEVER)
    ]
    if Path(path).name.endswith("-none-any.whl"):
        problems.append("wheel is tagged pure Python: the extensions were not built")
    n_ext = sum(n.endswith((".so", ".pyd")) for n in names)
    print(f"wheel {Path(path).name}: {len(names)} files, {n_ext} compiled modules")
    return problems


def main(dist_dir):
    dist = Path(dist_dir)
    sdists, wheels = sorted(dist.glob("*.tar.gz")), sorted(dist.glob("*.whl"))
    if len(sdists) != 1 or len(wheels) != 1:
        print(f"expected one sdist and one wheel in {dist}, found {sdists + wheels}")
        return 1
    problems = check_sdist(sdists[0]) + check_wheel(wheels[0])
    for problem in problems:
        print("  PROBLEM:", problem)
    print("distribution contents OK" if not problems else f"{len(problems)} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    sys.exit(main(sys.argv[1]))
