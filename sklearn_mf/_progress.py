"""Progress reporting for the iterative estimators (the ``verbose`` parameter).

Every estimator with an epoch or iteration loop reports through
:class:`EpochProgress`, so that ``verbose`` means the same thing everywhere:

- ``verbose=0`` (default): silent;
- ``verbose=1``: one line per epoch on standard output, with the epoch's
  metrics and its duration in seconds;
- ``verbose>=2``: a progress bar (``tqdm.auto``, on standard error; a widget in
  a notebook) with the latest metrics as its postfix.  tqdm is optional
  (``pip install sklearn_mf[progress]``): without it the estimator prints the
  lines of ``verbose=1`` and says once, at the start of the fit, that tqdm is
  missing.

Reporting never touches the estimator's random state or data, so a fit gives
the same model whatever ``verbose`` is.
"""

import numbers
import time

TQDM_MISSING = (
    "verbose={verbose} asks for a progress bar, but tqdm is not installed "
    "(pip install tqdm, or sklearn_mf[progress]); printing one line per "
    "{unit} instead."
)


def _tqdm_class():
    """``tqdm.auto.tqdm``, or None when tqdm cannot be imported."""
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return None
    return tqdm


def _format_value(value):
    if isinstance(value, str):
        return value
    if isinstance(value, (bool, numbers.Integral)):
        return str(int(value))
    return f"{float(value):.6g}"


class EpochProgress:
    """Report the progress of a training loop according to ``verbose``.

    Use it as a context manager around the loop and call :meth:`update` once
    at the end of every epoch (or iteration, or sweep).  Leaving the ``with``
    block closes the progress bar, also when the loop stops early or raises.

    Parameters
    ----------
    verbose : int or bool
        0 or False: nothing is reported.  1 or True: one line per epoch on
        standard output.  2 or more: a ``tqdm.auto`` progress bar if tqdm is
        installed, otherwise the lines of ``verbose=1`` preceded by a note
        that tqdm is missing.
    total : int
        Maximum number of epochs (the length of the bar; a loop that stops
        early leaves the bar short of it).
    unit : str, default="epoch"
        What one step is called: the first word of each line and the bar's
        unit (``"epoch"``, ``"iteration"``, ``"sweep"``).
    desc : str, default=None
        Label in front of the bar, typically the estimator's class name.

    Attributes
    ----------
    mode : {"silent", "lines", "bar"}
        How progress is reported.

    Examples
    --------
    >>> from sklearn_mf._progress import EpochProgress
    >>> with EpochProgress(1, total=2, unit="epoch") as progress:
    ...     for epoch in (1, 2):
    ...         progress.update(epoch, {"train MSE": 1.0 / epoch})  # doctest: +SKIP
    epoch   1  train MSE 1  0.00s
    epoch   2  train MSE 0.5  0.00s
    """

    def __init__(self, verbose, total, *, unit="epoch", desc=None):
        self.verbose = int(verbose or 0)
        self.total = int(total)
        self.unit = unit
        self.desc = desc
        self._bar = None
        self._tic = None
        if self.verbose <= 0:
            self.mode = "silent"
        elif self.verbose == 1:
            self.mode = "lines"
        else:
            self.mode = "bar" if _tqdm_class() is not None else "lines"

    def __enter__(self):
        if self.mode == "bar":
            self._bar = _tqdm_class()(total=self.total, desc=self.desc, unit=self.unit)
        elif self.verbose >= 2:
            print(TQDM_MISSING.format(verbose=self.verbose, unit=self.unit), flush=True)
        self._tic = time.perf_counter()
        return self

    def update(self, step, metrics=None):
        """Report the end of step number ``step`` (counted from 1).

        Parameters
        ----------
        step : int
            The epoch (iteration, sweep) that has just finished.
        metrics : dict, default=None
            Ordered ``{label: value}`` of what to show, e.g.
            ``{"train MSE": 0.81, "validation RMSE": 0.93}``.  Floats are
            shown with 6 significant digits, integers as integers, strings
            as given.
        """
        now = time.perf_counter()
        seconds = now - (self._tic if self._tic is not None else now)
        self._tic = now
        if self.mode == "silent":
            return
        shown = {label: _format_value(v) for label, v in (metrics or {}).items()}
        if self.mode == "bar":
            self._bar.set_postfix(shown, refresh=False)
            self._bar.update(max(0, int(step) - self._bar.n))
            return
        parts = [f"{self.unit} {int(step):3d}"]
        parts += [f"{label} {value}" for label, value in shown.items()]
        parts.append(f"{seconds:.2f}s")
        print("  ".join(parts), flush=True)

    def close(self):
        """Close the progress bar (if any); called on leaving the ``with`` block."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def __exit__(self, exc_type, exc, tb):
        self.close()
        return False


class SetupTimer:
    """Time the set-up stages of ``fit``; with ``verbose >= 1`` print one line each.

    Set-up (validation, id encoding, the CSR build, the block schedule) takes
    a noticeable time at tens of millions of ratings; a user waiting on it sees
    each stage as it ends.  Call :meth:`lap` at the end of every stage: it
    reports the time since the previous call (or since the timer was made).

    Parameters
    ----------
    verbose : int or bool
        0: silent (the times are still recorded in ``stages``); 1 or more: one
        line per stage on standard output.

    Attributes
    ----------
    stages : list of (str, float)
        Each stage's name and duration in seconds.

    Examples
    --------
    >>> from sklearn_mf._progress import SetupTimer
    >>> timer = SetupTimer(1)
    >>> timer.lap("validate")  # doctest: +SKIP
    set-up  validate  0.00s
    >>> [name for name, _ in timer.stages]
    ['validate']
    """

    def __init__(self, verbose):
        self.verbose = int(verbose or 0)
        self.stages = []
        self._tic = time.perf_counter()

    def lap(self, name):
        """End the stage ``name``: record (and with verbose, print) its duration."""
        now = time.perf_counter()
        seconds = now - self._tic
        self._tic = now
        self.stages.append((name, seconds))
        if self.verbose > 0:
            print(f"set-up  {name}  {seconds:.2f}s", flush=True)
