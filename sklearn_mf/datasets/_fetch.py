"""Download-once cache for the official MovieLens archives.

The archives come from GroupLens; each is checked against a pinned SHA-256
digest before it is unpacked, then unpacked into a folder of the data home and
read with :func:`~sklearn_mf.datasets.load_movielens`.  The archive itself is
deleted once unpacked: the folder is the cache.
"""

import hashlib
import numbers
import os
import shutil
import tempfile
import time
import urllib.error
import urllib.request
import zipfile
from collections import namedtuple

from sklearn.utils._param_validation import Interval, StrOptions, validate_params

from sklearn_mf.datasets._movielens import load_movielens

#: One downloadable archive: where it lives, what it must hash to, how large it
#: is, and the folder it unpacks into (the cache entry).
RemoteArchive = namedtuple("RemoteArchive", ["url", "sha256", "size", "folder"])

_GROUPLENS = "https://files.grouplens.org/datasets/movielens/"

# SHA-256 digests and sizes in bytes of the official archives.  They are the
# values published in TensorFlow Datasets' checksum registry for the same URLs
# (``url_checksums/movielens.txt``).  "latest-small" is the September 2018
# release; GroupLens refreshes the "latest" datasets from time to time, and a
# refreshed archive fails the check on purpose (see ``fetch_movielens``).
MOVIELENS_ARCHIVES = {
    "100k": RemoteArchive(
        _GROUPLENS + "ml-100k.zip",
        "50d2a982c66986937beb9ffb3aa76efe955bf3d5c6b761f4e3a7cd717c6a3229",
        4_924_029,
        "ml-100k",
    ),
    "1m": RemoteArchive(
        _GROUPLENS + "ml-1m.zip",
        "a6898adb50b9ca05aa231689da44c217cb524e7ebd39d264c56e2832f2c54e20",
        5_917_549,
        "ml-1m",
    ),
    "latest-small": RemoteArchive(
        _GROUPLENS + "ml-latest-small.zip",
        "696d65a3dfceac7c45750ad32df2c259311949efec81f0f144fdfb91ebc9e436",
        978_202,
        "ml-latest-small",
    ),
    "20m": RemoteArchive(
        _GROUPLENS + "ml-20m.zip",
        "96f243c338a8665f6bcc89c53edf6ee39162a846940de6b7c8c48aeada765ff3",
        198_702_078,
        "ml-20m",
    ),
    "25m": RemoteArchive(
        _GROUPLENS + "ml-25m.zip",
        "8b21cfb7eb1706b4ec0aac894368d90acf26ebdfb6aced3ebd4ad5bd1eb9c6aa",
        261_978_986,
        "ml-25m",
    ),
}

_CHUNK = 1 << 20


def get_data_home(data_home=None):
    """Return the folder where downloaded datasets are cached, creating it.

    The folder is, in order of precedence: ``data_home`` when given, the
    ``SKLEARN_MF_DATA_HOME`` environment variable when set, or
    ``~/sklearn_mf_data``.  A leading ``~`` is expanded.

    Parameters
    ----------
    data_home : str or path-like, default=None
        An explicit cache folder.

    Returns
    -------
    data_home : str
        The absolute path of the cache folder (it exists on return).

    See Also
    --------
    clear_data_home : Delete the cache folder.
    fetch_movielens : Download MovieLens into the cache.

    Examples
    --------
    >>> import tempfile
    >>> from sklearn_mf.datasets import get_data_home
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     get_data_home(tmp) == tmp
    True
    """
    if data_home is None:
        data_home = os.environ.get("SKLEARN_MF_DATA_HOME", os.path.join("~", "sklearn_mf_data"))
    data_home = os.path.abspath(os.path.expanduser(os.fspath(data_home)))
    os.makedirs(data_home, exist_ok=True)
    return data_home


def clear_data_home(data_home=None):
    """Delete the dataset cache folder and everything in it.

    Parameters
    ----------
    data_home : str or path-like, default=None
        The cache folder; None resolves it as :func:`get_data_home` does.

    Examples
    --------
    >>> import os, tempfile
    >>> from sklearn_mf.datasets import clear_data_home, get_data_home
    >>> home = os.path.join(tempfile.mkdtemp(), "cache")
    >>> _ = get_data_home(home)
    >>> clear_data_home(home)
    >>> os.path.exists(home)
    False
    """
    shutil.rmtree(get_data_home(data_home))


def _sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _download(archive, dest, *, n_retries, delay, timeout):
    """Stream ``archive.url`` into ``dest``; retry network errors."""
    for attempt in range(n_retries + 1):
        try:
            with (
                urllib.request.urlopen(archive.url, timeout=timeout) as response,
                open(dest, "wb") as out,
            ):
                shutil.copyfileobj(response, out, _CHUNK)
            return
        except (urllib.error.URLError, OSError) as exc:
            if attempt == n_retries:
                raise exc
            time.sleep(delay)


def _safe_extract(zip_path, target):
    """Unpack ``zip_path`` into ``target``, refusing members that escape it."""
    root = os.path.realpath(target)
    with zipfile.ZipFile(zip_path) as zf:
        for member in zf.namelist():
            dest = os.path.realpath(os.path.join(root, member))
            if os.path.commonpath([root, dest]) != root:
                raise OSError(f"Refusing to extract {member!r}: it points outside {root!r}.")
        zf.extractall(root)


def _fetch_archive(archive, data_home, *, download_if_missing, n_retries, delay, timeout):
    """Return the folder holding the unpacked archive, downloading it if needed."""
    folder = os.path.join(data_home, archive.folder)
    if os.path.isdir(folder):
        return folder
    if not download_if_missing:
        raise OSError(
            f"{archive.folder} is not in the cache {data_home!r} and download_if_missing=False."
        )
    # Everything goes into a private temporary folder first, and the finished
    # folder is renamed into place: an interrupted run never leaves a partial
    # cache entry, and concurrent runs do not read each other's half-files.
    work = tempfile.mkdtemp(prefix=f".{archive.folder}-", dir=data_home)
    try:
        zip_path = os.path.join(work, os.path.basename(archive.url))
        try:
            _download(archive, zip_path, n_retries=n_retries, delay=delay, timeout=timeout)
        except (urllib.error.URLError, OSError) as exc:
            raise OSError(
                f"Could not download {archive.url} ({exc}) and there is no cached copy "
                f"in {folder!r}. Connect to the internet and retry, or download the "
                f"archive yourself and unpack it so that {folder!r} exists."
            ) from exc
        size = os.path.getsize(zip_path)
        digest = _sha256(zip_path)
        if digest != archive.sha256:
            raise OSError(
                f"The file downloaded from {archive.url} ({size} bytes) has SHA-256 "
                f"{digest}, but {archive.sha256} ({archive.size} bytes) was expected. "
                "The download is corrupted or the archive was republished; nothing "
                "was cached. Retry, or check the file by hand and unpack it so that "
                f"{folder!r} exists."
            )
        unpacked = os.path.join(work, "unpacked")
        _safe_extract(zip_path, unpacked)
        source = os.path.join(unpacked, archive.folder)
        if not os.path.isdir(source):  # archive without a top-level folder
            source = unpacked
        try:
            os.rename(source, folder)
        except OSError:
            if not os.path.isdir(folder):  # lost a race only if the other run won
                raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return folder


@validate_params(
    {
        "variant": [StrOptions(set(MOVIELENS_ARCHIVES))],
        "data_home": [str, os.PathLike, None],
        "download_if_missing": ["boolean"],
        "n_retries": [Interval(numbers.Integral, 0, None, closed="left")],
        "delay": [Interval(numbers.Real, 0, None, closed="left")],
        "timeout": [Interval(numbers.Real, 0, None, closed="neither")],
    },
    prefer_skip_nested_validation=True,
)
def fetch_movielens(
    variant="100k",
    *,
    data_home=None,
    download_if_missing=True,
    n_retries=3,
    delay=1.0,
    timeout=60.0,
):
    """Load a MovieLens dataset, downloading the official archive once.

    The first call downloads the GroupLens archive of ``variant``, checks its
    SHA-256 digest against the value pinned in this package, unpacks it into
    ``data_home`` and deletes the archive; later calls read the unpacked folder
    and need no network.

    ====================  ===========  =======  ============  ========
    variant               ratings      users    rated items   download
    ====================  ===========  =======  ============  ========
    ``"100k"``            100,000      943      1,682         4.9 MB
    ``"1m"``              1,000,209    6,040    3,706         5.9 MB
    ``"latest-small"``    100,836      610      9,724         1.0 MB
    ``"20m"``             20,000,263   138,493  26,744        199 MB
    ``"25m"``             25,000,095   162,541  59,047        262 MB
    ====================  ===========  =======  ============  ========

    The MovieLens data are published by GroupLens for research use under
    their own license (no redistribution, no commercial use); read the
    ``README`` in the unpacked folder before use.

    Parameters
    ----------
    variant : {"100k", "1m", "latest-small", "20m", "25m"}, default="100k"
        Which MovieLens release.
    data_home : str or path-like, default=None
        Cache folder; None uses :func:`get_data_home` (the
        ``SKLEARN_MF_DATA_HOME`` environment variable or
        ``~/sklearn_mf_data``).  A folder that already holds the unpacked
        release (for example ``<data_home>/ml-100k``) is used as is.
    download_if_missing : bool, default=True
        If False, raise ``OSError`` instead of downloading when the data are
        not cached.
    n_retries : int, default=3
        Extra attempts after a network error.
    delay : float, default=1.0
        Seconds to wait between attempts.
    timeout : float, default=60.0
        Socket timeout in seconds for the download.

    Returns
    -------
    data : Bunch
        What :func:`load_movielens` returns (``ratings``, ``users``,
        ``movies``, ``layout``, ``X``, ``y``), plus ``path``, the cache folder
        that was read.

    Raises
    ------
    OSError
        When the data are not cached and cannot be downloaded (offline, or
        ``download_if_missing=False``), or when the downloaded file does not
        match the pinned checksum (nothing is cached then).

    See Also
    --------
    load_movielens : Read a copy you already have.
    get_data_home : Where the cache lives.

    Examples
    --------
    >>> from sklearn_mf.datasets import fetch_movielens
    >>> data = fetch_movielens("100k")  # doctest: +SKIP
    >>> data.ratings.shape  # doctest: +SKIP
    (100000, 4)
    """
    archive = MOVIELENS_ARCHIVES[variant]
    folder = _fetch_archive(
        archive,
        get_data_home(data_home),
        download_if_missing=download_if_missing,
        n_retries=n_retries,
        delay=delay,
        timeout=timeout,
    )
    data = load_movielens(folder)
    data.path = folder
    return data
