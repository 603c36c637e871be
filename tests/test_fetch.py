"""fetch_movielens and the data-home helpers, tested without the internet.

A small archive in the official layout is built in each test and served from
a local HTTP server bound to 127.0.0.1 (or from a ``file://`` URL); the
registry of archives is monkeypatched to point at it.
"""

import hashlib
import io
import os
import socket
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sklearn_mf.datasets import _fetch, clear_data_home, fetch_movielens, get_data_home

RATINGS = [
    (1, 10, 4, 880000000),
    (1, 20, 2, 880000100),
    (2, 10, 5, 880000200),
    (3, 30, 1, 880000300),
    (2, 30, 3, 880000400),
]


def _zip_bytes(files):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, text in files.items():
            zf.writestr(name, text)
    return buf.getvalue()


def _ml100k_zip():
    """A miniature ml-100k.zip: same folder, file names and separators."""
    data = "".join(f"{u}\t{i}\t{r}\t{t}\n" for u, i, r, t in RATINGS)
    users = "1|24|M|technician|85711\n2|53|F|other|94043\n3|23|M|writer|32067\n"
    flags = "|".join(["0"] * 19)
    items = "".join(f"{i}|Movie {i} (1995)|01-Jan-1995||http://x|{flags}\n" for i in (10, 20, 30))
    return _zip_bytes(
        {
            "ml-100k/u.data": data,
            "ml-100k/u.user": users,
            "ml-100k/u.item": items,
            "ml-100k/README": "toy\n",
        }
    )


def _latest_small_zip():
    ratings = "userId,movieId,rating,timestamp\r\n" + "".join(
        f"{u},{i},{r}.5,{t}\r\n" for u, i, r, t in RATINGS
    )
    movies = "movieId,title,genres\r\n10,A (1999),Drama\r\n20,B (2001),Comedy\r\n30,C,Drama\r\n"
    return _zip_bytes(
        {"ml-latest-small/ratings.csv": ratings, "ml-latest-small/movies.csv": movies}
    )


class _Server:
    """Serves ``files`` (path -> bytes); the first ``fail_first`` requests get 503."""

    def __init__(self, files, fail_first=0):
        self.files, self.fail_first, self.hits = files, fail_first, 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                server.hits += 1
                body = server.files.get(self.path)
                if server.hits <= server.fail_first:
                    self.send_error(503)
                elif body is None:
                    self.send_error(404)
                else:
                    self.send_response(200)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.timeout = 5
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


@pytest.fixture
def serve():
    servers = []

    def start(files, fail_first=0):
        servers.append(_Server(files, fail_first))
        return servers[-1]

    yield start
    for s in servers:
        s.close()


def _register(monkeypatch, variant, url, payload, folder, sha256=None):
    digest = sha256 or hashlib.sha256(payload).hexdigest()
    monkeypatch.setitem(
        _fetch.MOVIELENS_ARCHIVES,
        variant,
        _fetch.RemoteArchive(url, digest, len(payload), folder),
    )


def _leftovers(home):
    return sorted(p.name for p in Path(home).iterdir())


def test_download_checks_caches_and_reads_official_layout(serve, monkeypatch, tmp_path):
    payload = _ml100k_zip()
    server = serve({"/ml-100k.zip": payload})
    _register(monkeypatch, "100k", server.url + "/ml-100k.zip", payload, "ml-100k")

    data = fetch_movielens("100k", data_home=tmp_path, n_retries=0)
    assert server.hits == 1
    expected = pd.DataFrame(RATINGS, columns=["user", "item", "rating", "timestamp"])
    pd.testing.assert_frame_equal(data.ratings, expected, check_dtype=False)
    np.testing.assert_array_equal(data.y, [4.0, 2.0, 5.0, 1.0, 3.0])
    assert data.layout == "100k"
    assert data.movies["title"].tolist() == [
        "Movie 10 (1995)",
        "Movie 20 (1995)",
        "Movie 30 (1995)",
    ]
    assert data.users["occupation"].tolist() == ["technician", "other", "writer"]
    assert data.path == str(tmp_path / "ml-100k")
    # The archive and the work folder are gone; only the unpacked folder stays.
    assert _leftovers(tmp_path) == ["ml-100k"]

    # Second call: served from the cache, no request, works even offline.
    server.files.clear()
    again = fetch_movielens("100k", data_home=tmp_path, download_if_missing=False)
    assert server.hits == 1
    pd.testing.assert_frame_equal(again.ratings, data.ratings)


def test_checksum_mismatch_raises_and_caches_nothing(serve, monkeypatch, tmp_path):
    payload = _ml100k_zip()
    server = serve({"/ml-100k.zip": payload})
    _register(monkeypatch, "100k", server.url + "/ml-100k.zip", payload, "ml-100k", sha256="0" * 64)
    with pytest.raises(OSError, match="SHA-256") as info:
        fetch_movielens("100k", data_home=tmp_path, n_retries=0)
    assert hashlib.sha256(payload).hexdigest() in str(info.value)
    assert _leftovers(tmp_path) == []


def test_offline_without_cache_is_a_clear_error(monkeypatch, tmp_path):
    with socket.socket() as s:  # a port on which nothing listens
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/ml-1m.zip"
    _register(monkeypatch, "1m", url, b"unused", "ml-1m")
    with pytest.raises(OSError, match="Could not download .*no cached copy") as info:
        fetch_movielens("1m", data_home=tmp_path, n_retries=0, timeout=5)
    assert url in str(info.value)
    assert _leftovers(tmp_path) == []


def test_download_if_missing_false_never_downloads(serve, monkeypatch, tmp_path):
    payload = _ml100k_zip()
    server = serve({"/ml-100k.zip": payload})
    _register(monkeypatch, "100k", server.url + "/ml-100k.zip", payload, "ml-100k")
    with pytest.raises(OSError, match="download_if_missing=False"):
        fetch_movielens("100k", data_home=tmp_path, download_if_missing=False)
    assert server.hits == 0


def test_retries_after_a_server_error(serve, monkeypatch, tmp_path):
    payload = _ml100k_zip()
    server = serve({"/ml-100k.zip": payload}, fail_first=1)
    _register(monkeypatch, "100k", server.url + "/ml-100k.zip", payload, "ml-100k")
    with pytest.raises(OSError, match="503"):
        fetch_movielens("100k", data_home=tmp_path / "a", n_retries=0)
    server.hits, server.fail_first = 0, 1
    data = fetch_movielens("100k", data_home=tmp_path / "b", n_retries=1, delay=0)
    assert server.hits == 2
    assert len(data.ratings) == len(RATINGS)


def test_file_url_and_csv_layout(monkeypatch, tmp_path):
    payload = _latest_small_zip()
    src = tmp_path / "mirror" / "ml-latest-small.zip"
    src.parent.mkdir()
    src.write_bytes(payload)
    _register(monkeypatch, "latest-small", src.as_uri(), payload, "ml-latest-small")
    data = fetch_movielens("latest-small", data_home=tmp_path / "home")
    assert data.layout == "csv"
    np.testing.assert_array_equal(data.y, [r + 0.5 for _, _, r, _ in RATINGS])
    assert data.movies["year"].tolist()[:2] == [1999, 2001]


def test_member_outside_the_folder_is_refused(monkeypatch, tmp_path):
    payload = _zip_bytes({"ml-100k/u.data": "1\t1\t1\t1\n", "../evil.txt": "x"})
    src = tmp_path / "evil.zip"
    src.write_bytes(payload)
    _register(monkeypatch, "100k", src.as_uri(), payload, "ml-100k")
    home = tmp_path / "home"
    with pytest.raises(OSError, match="outside"):
        fetch_movielens("100k", data_home=home)
    assert not (tmp_path / "evil.txt").exists()
    assert _leftovers(home) == []


def test_existing_unpacked_folder_is_used_as_is(tmp_path):
    folder = tmp_path / "ml-100k"
    folder.mkdir()
    (folder / "u.data").write_text("7\t8\t5\t100\n")
    data = fetch_movielens("100k", data_home=tmp_path, download_if_missing=False)
    assert data.ratings.values.tolist() == [[7, 8, 5, 100]]


def test_unknown_variant_and_bad_retries(tmp_path):
    with pytest.raises(ValueError, match="variant"):
        fetch_movielens("10k", data_home=tmp_path)
    with pytest.raises(ValueError, match="n_retries"):
        fetch_movielens("100k", data_home=tmp_path, n_retries=-1)


def test_registry_pins_official_urls_and_sha256():
    for archive in _fetch.MOVIELENS_ARCHIVES.values():
        assert archive.url == (
            f"https://files.grouplens.org/datasets/movielens/{archive.folder}.zip"
        )
        assert len(archive.sha256) == 64 and int(archive.sha256, 16) >= 0
        assert archive.size > 0
    assert set(_fetch.MOVIELENS_ARCHIVES) == {"100k", "1m", "latest-small", "20m", "25m"}


def test_get_and_clear_data_home(monkeypatch, tmp_path):
    monkeypatch.setenv("SKLEARN_MF_DATA_HOME", str(tmp_path / "env_home"))
    home = get_data_home()
    assert home == str(tmp_path / "env_home") and os.path.isdir(home)
    explicit = get_data_home(tmp_path / "explicit")
    assert explicit == str(tmp_path / "explicit") and os.path.isdir(explicit)
    (tmp_path / "env_home" / "ml-100k").mkdir()
    clear_data_home()
    assert not os.path.exists(home)
    monkeypatch.delenv("SKLEARN_MF_DATA_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "user"))
    assert get_data_home() == str(tmp_path / "user" / "sklearn_mf_data")
