"""Named data sets: local resolution, download over real HTTP (127.0.0.1), checksums, safe
extraction, offline errors, describe()."""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import http.server
import io
import stat
import threading
import zipfile
from pathlib import Path

import pytest

from jaxrec.data import DATASETS, Split, describe, load_dataset, load_interactions, resolve
from jaxrec.data import download as dl
from jaxrec.errors import JaxrecError

UDATA = "1\t10\t5\t100\n2\t10\t3\t101\n1\t20\t4\t102\n3\t30\t1\t103\n"


def make_zip(members: dict[str, str], symlinks: dict[str, str] = ()) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, text in members.items():
            z.writestr(name, text)
        for name, target in dict(symlinks).items():
            info = zipfile.ZipInfo(name)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            z.writestr(info, target)
    return buf.getvalue()


@pytest.fixture
def env(tmp_path, monkeypatch):
    """Isolated data dir / cache / offline settings."""
    for var in ("JAXREC_DATA_DIR", "JAXREC_OFFLINE", "JAXREC_DOWNLOAD_URL"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("JAXREC_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    return tmp_path


@pytest.fixture
def server(tmp_path):
    """An HTTP server on 127.0.0.1 (port 0) serving ``tmp_path / 'www'``; yields (dir, base url)."""
    root = tmp_path / "www"
    root.mkdir()

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(root)))
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    try:
        yield root, f"http://127.0.0.1:{httpd.server_address[1]}/movielens"
    finally:
        httpd.shutdown()
        httpd.server_close()


def publish(server, monkeypatch, data: bytes, sha256=None, md5=None):
    """Serve ``data`` as ml-100k.zip and pin its checksums (the real ones unless given)."""
    root, url = server
    (root / "movielens").mkdir(exist_ok=True)
    (root / "movielens" / "ml-100k.zip").write_bytes(data)
    spec = dataclasses.replace(
        DATASETS["ml-100k"],
        sha256=sha256 or hashlib.sha256(data).hexdigest(),
        md5=md5 or hashlib.md5(data).hexdigest(),
    )
    monkeypatch.setitem(DATASETS, "ml-100k", spec)
    return url


def all_files(path: Path) -> list[str]:
    return sorted(str(p.relative_to(path)) for p in path.rglob("*")) if path.exists() else []


# --------------------------------------------------------------------------------------------
def test_download_verify_extract(env, server, monkeypatch):
    data = make_zip({"ml-100k/": "", "ml-100k/u.data": UDATA, "ml-100k/README": "fake"})
    url = publish(server, monkeypatch, data)
    inter = load_dataset("ml-100k", base_url=url)
    assert (inter.n_users, inter.n_items, len(inter)) == (3, 3, 4)
    cache = env / "cache"
    assert all_files(cache) == ["ml-100k", "ml-100k/README", "ml-100k/u.data"]  # no .part left
    # now it is in the cache: offline works, and nothing is fetched again
    monkeypatch.setenv("JAXREC_OFFLINE", "1")
    (server[0] / "movielens" / "ml-100k.zip").unlink()
    assert len(load_dataset("ml-100k")) == 4
    assert resolve("ml-100k") == cache / "ml-100k"


def test_download_url_from_env(env, server, monkeypatch):
    url = publish(server, monkeypatch, make_zip({"ml-100k/u.data": UDATA}))
    monkeypatch.setenv("JAXREC_DOWNLOAD_URL", url + "/")
    assert len(load_interactions("ml-100k")) == 4


def test_wrong_checksum_removes_download(env, server, monkeypatch):
    data = make_zip({"ml-100k/u.data": UDATA})
    url = publish(server, monkeypatch, data, sha256="0" * 64)
    with pytest.raises(JaxrecError) as e:
        load_dataset("ml-100k", base_url=url)
    msg = str(e.value)
    assert "ml-100k.zip" in msg and "0" * 64 in msg and hashlib.sha256(data).hexdigest() in msg
    assert all_files(env / "cache") == []  # nothing left behind


def test_wrong_md5_also_checked(env, server, monkeypatch):
    url = publish(server, monkeypatch, make_zip({"ml-100k/u.data": UDATA}), md5="f" * 32)
    with pytest.raises(JaxrecError, match="md5"):
        load_dataset("ml-100k", base_url=url)
    assert all_files(env / "cache") == []


@pytest.mark.parametrize(
    "members, links",
    [
        ({"ml-100k/u.data": UDATA, "ml-100k/../../evil": "pwned"}, {}),
        ({"ml-100k/u.data": UDATA, "../evil": "pwned"}, {}),
        ({"ml-100k/u.data": UDATA, "/tmp/evil-abs": "pwned"}, {}),
        ({"ml-100k/u.data": UDATA}, {"ml-100k/evil": "/etc/passwd"}),
    ],
    ids=["dotdot-nested", "dotdot", "absolute", "symlink"],
)
def test_unsafe_zip_is_rejected(env, server, monkeypatch, members, links):
    url = publish(server, monkeypatch, make_zip(members, links))
    with pytest.raises(JaxrecError, match="refusing"):
        load_dataset("ml-100k", base_url=url)
    assert all_files(env / "cache") == []
    assert not (env / "evil").exists() and not Path("/tmp/evil-abs").exists()
    assert not any(p.name == "evil" for p in env.rglob("*"))


def test_archive_without_the_file(env, server, monkeypatch):
    url = publish(server, monkeypatch, make_zip({"ml-100k/README": "no data"}))
    with pytest.raises(JaxrecError, match="does not contain u.data"):
        load_dataset("ml-100k", base_url=url)
    assert all_files(env / "cache") == []


def test_not_a_zip(env, server, monkeypatch):
    url = publish(server, monkeypatch, b"<html>not found</html>")
    with pytest.raises(JaxrecError, match="not a zip"):
        load_dataset("ml-100k", base_url=url)
    assert all_files(env / "cache") == []


def test_offline_and_absent(env, monkeypatch):
    monkeypatch.setenv("JAXREC_OFFLINE", "1")
    with pytest.raises(JaxrecError) as e:
        load_dataset("ml-1m")
    msg = str(e.value)
    assert str(env / "cache" / "ml-1m") in msg and "ratings.dat" in msg and "offline" in msg
    assert "JAXREC_DATA_DIR" in msg


def test_download_failure_is_one_clear_error(env, server, monkeypatch):
    # the server is up but has no archive: HTTP 404
    with pytest.raises(JaxrecError) as e:
        load_dataset("ml-100k", base_url=server[1])
    msg = str(e.value)
    assert "download of" in msg and str(env / "cache" / "ml-100k") in msg and "u.data" in msg
    assert all_files(env / "cache") == []


def test_data_dir_comes_first(env, monkeypatch):
    data = env / "data"
    (data / "ml-100k").mkdir(parents=True)
    (data / "ml-100k" / "u.data").write_text(UDATA)
    monkeypatch.setenv("JAXREC_DATA_DIR", str(data))
    monkeypatch.setenv("JAXREC_OFFLINE", "1")
    assert resolve("ml-100k") == data / "ml-100k"
    assert len(load_dataset("ml-100k")) == 4
    # a data dir without the data set falls through to the cache, then to the error
    with pytest.raises(JaxrecError) as e:
        load_dataset("ml-1m")
    assert str(data / "ml-1m") in str(e.value)


def test_gowalla_is_local_only(env, monkeypatch):
    with pytest.raises(JaxrecError) as e:
        load_dataset("gowalla")
    msg = str(e.value)
    assert "train.txt" in msg and "test.txt" in msg and str(env / "cache" / "gowalla") in msg
    d = env / "cache" / "gowalla"
    d.mkdir(parents=True)
    (d / "train.txt").write_text("0 0 1\n1 1\n")
    (d / "test.txt").write_text("0 2\n1 0\n")
    s = load_dataset("gowalla")
    assert isinstance(s, Split) and (s.n_users, s.n_items) == (2, 3)
    both = load_interactions("gowalla")
    assert len(both) == 5 and both.n_items == 3
    info = describe(s)
    assert info["interactions"] == 5 and info["parts"] == {"train": 3, "test": 2}


def test_unknown_name(env):
    with pytest.raises(JaxrecError, match="neither a known data set"):
        load_dataset("ml-3m")
    with pytest.raises(JaxrecError, match="unknown data set"):
        resolve("ml-3m")


def test_load_by_path(env, tmp_path):
    p = tmp_path / "x.csv"
    p.write_text("u,i,r\na,b,1\n")
    assert load_dataset(p, user_col="u", item_col="i", rating_col="r").ratings[0] == 1
    (tmp_path / "ml").mkdir()
    (tmp_path / "ml" / "u.data").write_text(UDATA)
    assert len(load_dataset(tmp_path / "ml")) == 4
    assert len(load_dataset(str(tmp_path / "ml" / "u.data"))) == 4


def test_describe(env, tmp_path):
    (tmp_path / "u.data").write_text(UDATA)
    info = describe(load_dataset(tmp_path / "u.data"))
    assert info["users"] == 3 and info["items"] == 3 and info["interactions"] == 4
    assert info["density"] == pytest.approx(4 / 9)
    assert info["ratings"]["histogram"] == {"1": 1, "3": 1, "4": 1, "5": 1}
    assert info["ratings"]["mean"] == pytest.approx(3.25)
    assert info["timestamps"] == {"min": 100, "max": 103}


def test_registry_pins_checksums():
    for name in ("ml-100k", "ml-1m", "ml-10m", "ml-20m", "ml-25m", "ml-latest-small"):
        spec = DATASETS[name]
        assert spec.archive == f"{name}.zip" and (spec.sha256 or spec.md5)
        for digest, n in ((spec.sha256, 64), (spec.md5, 32)):
            assert digest is None or (len(digest) == n and int(digest, 16) >= 0)
    assert DATASETS["gowalla"].archive is None
    assert dl.DEFAULT_BASE_URL == "https://files.grouplens.org/datasets/movielens"
