"""Ctrl-C in the middle of a long ``fit``: a real SIGINT sent to a subprocess.

The child fits a model, prints its joblib hash, starts a long refit and
reports when it is under way; the parent interrupts it with SIGINT.  The
child catches the ``KeyboardInterrupt`` and prints the hash again: the model
must be exactly the one fitted before (updates are atomic), and a model never
fitted must still be unfitted.
"""

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

CHILD = textwrap.dedent(
    """
    import signal, sys, threading, joblib
    # a child of a process that ignores SIGINT (a background job of a
    # non-interactive shell, as CI runners start it) inherits the ignored
    # disposition and Python then installs no handler: install it
    signal.signal(signal.SIGINT, signal.default_int_handler)
    from sklearn.utils.validation import check_is_fitted
    from sklearn.exceptions import NotFittedError
    from sklearn_mf import {cls}
    from sklearn_mf.datasets import make_ratings

    X, y = make_ratings(n_users=3000, n_items=1000, n_ratings=300_000, random_state=0)
    model = {cls}(n_factors=16, random_state=0, n_jobs=1, **{small}).fit(X[:5000], y[:5000])
    print("before", joblib.hash(model), flush=True)
    model.set_params(**{long})
    fresh = {cls}(n_factors=16, random_state=0, n_jobs=1, **{long})
    target = model if sys.argv[1] == "fitted" else fresh
    print("started yes", flush=True)
    try:
        target.fit(X, y)
        print("finished yes", flush=True)
    except KeyboardInterrupt:
        print("interrupted yes", flush=True)
    model.set_params(**{small})
    print("after", joblib.hash(model), flush=True)
    try:
        check_is_fitted(fresh)
        print("fresh fitted", flush=True)
    except NotFittedError:
        print("fresh unfitted", flush=True)
    """
)

CASES = {
    "MatrixFactorization": ({"n_epochs": 2}, {"n_epochs": 100_000}),
    "ImplicitALS": ({"max_iter": 2}, {"max_iter": 100_000}),
}


@pytest.mark.slow
@pytest.mark.skipif(os.name != "posix", reason="SIGINT delivery to a child process")
@pytest.mark.parametrize("which", ["fitted", "fresh"])
@pytest.mark.parametrize("cls", list(CASES))
def test_sigint_during_fit_leaves_the_model_as_it_was(cls, which):
    small, long = CASES[cls]
    code = CHILD.format(cls=cls, small=small, long=long)
    proc = subprocess.Popen(
        [sys.executable, "-c", code, which],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    seen = []
    try:
        for line in proc.stdout:
            seen.append(line)
            if line.startswith("started"):
                time.sleep(1.5)  # well into the long fit
                proc.send_signal(signal.SIGINT)
                break
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    report = dict(line.split(" ", 1) for line in "".join(seen + [out]).splitlines())
    assert "interrupted" in report, (report, err)
    assert report["before"] == report["after"], "the interrupted fit changed the model"
    assert report["fresh"] == "unfitted", (report, err)
