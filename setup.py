"""Build script: compiles every ``sklearn_mf/**/*.pyx`` into an extension module.

OpenMP is used when the compiler supports it; otherwise the kernels are built
serially and a warning says so.  Set ``SKLEARN_MF_DEBUG=1`` to compile with
bounds checking and without optimisation (useful with ``gdb``/``valgrind``), and
``SKLEARN_MF_NATIVE=1`` to add ``-march=native`` for a local build.
``SKLEARN_MF_BUILD_ONLY=_als_fast,_topk`` compiles only the named modules (a
developer convenience for ``python setup.py build_ext --inplace``).
"""

import glob
import os
import subprocess
import sys
import tempfile
import textwrap
import warnings

import numpy as np
from Cython.Build import cythonize
from setuptools import Extension, setup

DEBUG = os.environ.get("SKLEARN_MF_DEBUG", "0") == "1"
NATIVE = os.environ.get("SKLEARN_MF_NATIVE", "0") == "1"
ONLY = [m for m in os.environ.get("SKLEARN_MF_BUILD_ONLY", "").split(",") if m]


def _openmp_flags():
    """Return (compile_args, link_args) enabling OpenMP, or empty lists."""
    if sys.platform == "win32":
        return ["/openmp"], []
    candidates = [(["-fopenmp"], ["-fopenmp"])]
    if sys.platform == "darwin":
        candidates.insert(0, (["-Xpreprocessor", "-fopenmp"], ["-lomp"]))
    cc = os.environ.get("CC", "cc")
    code = textwrap.dedent(
        """
        #include <omp.h>
        int main(void) { return omp_get_max_threads() > 0 ? 0 : 1; }
        """
    )
    for cflags, lflags in candidates:
        with tempfile.TemporaryDirectory() as tmp:
            src = os.path.join(tmp, "check.c")
            with open(src, "w") as f:
                f.write(code)
            try:
                subprocess.run(
                    [cc, *cflags, src, "-o", os.path.join(tmp, "a.out"), *lflags],
                    check=True,
                    capture_output=True,
                )
            except (OSError, subprocess.CalledProcessError):
                continue
            return cflags, lflags
    warnings.warn(
        "OpenMP is not supported by this compiler: sklearn_mf is built without "
        "parallelism (n_jobs has no effect). Install a compiler with OpenMP "
        "support (gcc, or clang with libomp) for multithreaded kernels.",
        stacklevel=2,
    )
    return [], []


def _compiles():
    """False when setup.py only packs sources or writes metadata.

    ``sdist`` ships the ``.pyx`` files as they are and ``egg_info`` /
    ``dist_info`` (the metadata steps of a PEP 517 build) compile nothing, so
    they skip Cython; anything else, or anything unrecognised, cythonizes.
    """
    args = sys.argv[1:]
    first = next((arg for arg in args if not arg.startswith("-")), None)
    builds = {"build", "build_ext", "bdist_wheel", "editable_wheel", "develop", "install"}
    return first not in {"sdist", "egg_info", "dist_info"} or bool(builds & set(args))


def extensions():
    omp_c, omp_l = _openmp_flags()
    if DEBUG:
        opt = ["-O0", "-g"]
    else:
        opt = ["-O3", "-fno-math-errno"]
        if sys.platform != "win32":
            opt.append("-fopenmp-simd")  # honour `omp simd` even in serial builds
        if NATIVE:
            opt.append("-march=native")
    exts = []
    for pyx in sorted(glob.glob("sklearn_mf/**/*.pyx", recursive=True)):
        name = pyx[:-4].replace(os.sep, ".")
        if ONLY and name.rsplit(".", 1)[-1] not in ONLY:
            continue
        exts.append(
            Extension(
                name,
                [pyx],
                include_dirs=[np.get_include()],
                define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
                extra_compile_args=opt + omp_c,
                extra_link_args=omp_l,
            )
        )
    if not _compiles():
        return exts
    directives = {
        "language_level": 3,
        "boundscheck": DEBUG,
        "wraparound": False,
        "cdivision": True,
        "initializedcheck": DEBUG,
        "nonecheck": False,
        "embedsignature": True,
    }
    return cythonize(exts, compiler_directives=directives, nthreads=os.cpu_count() or 1)


setup(ext_modules=extensions())
