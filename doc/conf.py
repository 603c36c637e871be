"""Sphinx configuration for the sklearn_mf documentation.

The build needs no network: cross-links into the scikit-learn, NumPy, SciPy,
pandas and joblib docs (intersphinx) are enabled only for the projects whose
``objects.inv`` is found locally, in the folder named by the environment
variable ``SKLEARN_MF_INTERSPHINX`` (files ``sklearn.inv``, ``numpy.inv``,
``scipy.inv``, ``pandas.inv``, ``joblib.inv``, ``python.inv``).  ``SKLEARN_MF_INTERSPHINX=online``
fetches the inventories from the web instead.
"""

import os
import re
import warnings
from datetime import date

import sklearn_mf

# Examples and docs never need a display.
os.environ.setdefault("MPLBACKEND", "Agg")

project = "sklearn_mf"
author = "sklearn_mf developers"
copyright = f"{date.today().year}, {author}"
version = release = sklearn_mf.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.intersphinx",
    "sphinx.ext.mathjax",
    # MathJax from the installed package, copied into _build/html/_static/mathjax,
    # instead of a CDN: formulas render offline (see user_guide/dependencies.rst).
    "sphinx-mathjax-offline",
    "sphinx.ext.viewcode",
    "numpydoc",
    "sphinx_gallery.gen_gallery",
]

templates_path = ["_templates"]
exclude_patterns = [
    "_build",
    "**.ipynb_checkpoints",
    "auto_examples/*.ipynb",
    "auto_examples/*.py",
    "auto_examples/*.zip",
]
root_doc = "index"
default_role = "literal"
nitpicky = False

# -- intersphinx: local inventories only ------------------------------------
_INVENTORIES = {
    "python": "https://docs.python.org/3/",
    "sklearn": "https://scikit-learn.org/stable/",
    "numpy": "https://numpy.org/doc/stable/",
    "scipy": "https://docs.scipy.org/doc/scipy/",
    "pandas": "https://pandas.pydata.org/docs/",
    "joblib": "https://joblib.readthedocs.io/en/stable/",
}


def _intersphinx_mapping(setting):
    if not setting:
        return {}
    if setting == "online":
        return {name: (url, None) for name, url in _INVENTORIES.items()}
    mapping = {}
    for name, url in _INVENTORIES.items():
        inv = os.path.join(setting, f"{name}.inv")
        if os.path.isfile(inv):
            mapping[name] = (url, inv)
    return mapping


intersphinx_mapping = _intersphinx_mapping(os.environ.get("SKLEARN_MF_INTERSPHINX", ""))

# -- autodoc / autosummary / numpydoc ----------------------------------------
autosummary_generate = True
autodoc_default_options = {"members": True, "inherited-members": True}
autodoc_typehints = "none"
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_attributes_as_param_list = True
# Types in Parameters/Returns/Attributes become cross-references (resolved
# when the intersphinx inventories are available, plain text otherwise).  It
# also keeps names such as ``(n_features_in_,)`` in a type from being read as
# reST hyperlink references.
numpydoc_xref_param_type = True
_PLAIN_TARGETS = {
    "array-like": "numpy.typing.ArrayLike",
    "array_like": "numpy.typing.ArrayLike",
    "scalar": "numpy.generic",
    "boolean": "bool",
    "string": "str",
    "iterable": "collections.abc.Iterable",
    "sequence": "collections.abc.Sequence",
    "generator": "collections.abc.Generator",
    "contextmanager": "contextlib.contextmanager",
    "namedtuple": "collections.namedtuple",
}
numpydoc_xref_aliases = {
    "ndarray": "numpy.ndarray",
    "dtype": "numpy.dtype",
    "RandomState": "numpy.random.RandomState",
    "Generator": "numpy.random.Generator",
    "DataFrame": "pandas.DataFrame",
    "Series": "pandas.Series",
    "Index": "pandas.Index",
    "Bunch": "sklearn.utils.Bunch",
    "csr_matrix": "scipy.sparse.csr_matrix",
    "sparse matrix": "scipy.sparse.spmatrix",
    "Recommendations": "sklearn_mf.Recommendations",
}
# numpydoc's default aliases point at the Python and NumPy docs with roles such
# as :class:`python:int` or :term:`numpy:array_like`.  Without those
# inventories they would print as "python:int" or warn, so each is replaced by
# a plain object reference (rendered as code, linked when resolvable).
from numpydoc.xref import DEFAULT_LINKS as _NUMPYDOC_LINKS  # noqa: E402

for _key, _target in _NUMPYDOC_LINKS.items():
    for _project in ("python", "numpy"):
        if f"{_project}:" in _target and _project not in intersphinx_mapping:
            numpydoc_xref_aliases.setdefault(_key, _PLAIN_TARGETS.get(_key, _key))
numpydoc_xref_ignore = {
    "of",
    "or",
    "and",
    "to",
    "in",
    "the",
    "a",
    "an",
    "with",
    "for",
    "from",
    "shape",
    "default",
    "optional",
    "instance",
    "object",
    "like",
    "any",
    "one",
    "length",
    "same",
    "as",
    "None",
    "True",
    "False",
    "int",
    "float",
    "bool",
    "str",
    "list",
    "tuple",
    "dict",
    "callable",
}


def _skip_scikit_learn_members(app, what, name, obj, skip, options):
    """Document only what sklearn_mf defines.

    Methods that every scikit-learn estimator inherits (``get_params``,
    ``set_params``, ``score`` of the mixins, the metadata-routing
    ``set_*_request`` methods) are documented by scikit-learn; their
    docstrings point at scikit-learn's own glossary and labels, which do not
    exist in this site.
    """
    module = getattr(obj, "__module__", None) or ""
    if what == "class" and (module == "sklearn" or module.startswith("sklearn.")):
        return True
    return None


_SHAPE = re.compile(r"of shape \(([^)]*)\)")


def _escape_shape_names(app, what, name, obj, options, lines):
    """Escape trailing underscores in ``of shape (n_features_in_,)``.

    A name such as ``n_features_in_`` in a shape is a fitted attribute, not a
    reST hyperlink reference; unescaped, docutils reports an unknown target.
    """
    for n, line in enumerate(lines):
        lines[n] = _SHAPE.sub(
            lambda m: "of shape (" + re.sub(r"(\w)_(?=[,)\s]|$)", r"\1\\_", m.group(1)) + ")",
            line,
        )


def setup(app):
    app.connect("autodoc-skip-member", _skip_scikit_learn_members)
    app.connect("autodoc-process-docstring", _escape_shape_names, priority=400)


# -- sphinx-gallery ----------------------------------------------------------
# Every examples/plot_*.py is run during the build (sphinx-gallery runs each in
# the examples folder, so they can share examples/_data.py, which picks
# MovieLens 100K when a local copy is found and synthetic data otherwise).
_repo = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))

sphinx_gallery_conf = {
    "examples_dirs": os.path.join(_repo, "examples"),
    "gallery_dirs": "auto_examples",
    "filename_pattern": r"/plot_",
    "ignore_pattern": r"(__init__|_data)\.py",
    "doc_module": ("sklearn_mf",),
    "backreferences_dir": os.path.join("generated", "backreferences"),
    "reference_url": {"sklearn_mf": None},
    "within_subsection_order": "FileNameSortKey",
    "download_all_examples": False,
    "remove_config_comments": True,
    "min_reported_time": 1,
    "abort_on_example_error": True,
}

# Matplotlib and numpy chatter must not turn into doc-build failures.
warnings.filterwarnings("ignore", category=UserWarning, message="Matplotlib is currently using agg")

# -- HTML --------------------------------------------------------------------
html_theme = "pydata_sphinx_theme"
html_title = f"sklearn_mf {version}"
html_static_path = []
html_theme_options = {
    "navigation_with_keys": False,
    "show_toc_level": 2,
    "footer_start": ["copyright"],
    "footer_end": ["sphinx-version"],
}
html_show_sourcelink = False
