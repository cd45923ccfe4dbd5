"""Data sets by name: find them locally, or download, verify and extract them into a cache.

Resolution order for a name such as ``ml-100k``:

1. ``$JAXREC_DATA_DIR/<name>/`` when it holds the data set's files (e.g. ``ml-100k/u.data``);
2. the cache ``$JAXREC_CACHE_DIR/<name>/`` (default ``~/.cache/jaxrec/<name>/``);
3. otherwise the official archive is downloaded into the cache with ``urllib``, its checksum(s)
   verified, and extracted safely (members that would land outside the target directory --
   absolute paths, ``..``, symlinks -- are refused before anything is written). The archive's
   top-level folder is stripped, so the files land directly in ``<cache>/<name>/``.

``JAXREC_OFFLINE=1`` (or ``offline=True``) forbids step 3; a data set that is absent then raises
one :class:`JaxrecError` naming the directory and files to create. The download base URL is
``$JAXREC_DOWNLOAD_URL`` or the ``base_url`` argument (default the GroupLens server), so tests can
serve a local archive.

Checksums (of the zip archives as published at https://files.grouplens.org/datasets/movielens/):

* sha256 from tensorflow/datasets ``tensorflow_datasets/url_checksums/movielens.txt`` for
  ml-100k, ml-1m, ml-20m, ml-25m and ml-latest-small (with sizes).
* md5 as published by GroupLens (``<archive>.zip.md5``) and pinned in many public download
  scripts (e.g. torchtext-style ``MovieLens100K``, ``eli-osherovich/papers_with_code``
  ``datasets/movielens/dl_config.py``): ml-100k, ml-1m, ml-10m, ml-20m, ml-25m.
* ml-10m: no sha256 from a source we could verify was found, so only its md5 is checked.
* ml-latest-small: no md5 was found; only the tensorflow_datasets sha256 is checked. GroupLens
  regenerates the "latest" data sets from time to time, so a newer archive will fail the check.

Every pinned digest is checked. Gowalla (the LightGCN split) has no official archive: it is
local only (put ``train.txt`` and ``test.txt`` in ``<data dir>/gowalla/``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import shutil
import stat
import tempfile
import urllib.error
import urllib.request
import zipfile
from collections.abc import Callable
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from jaxrec.data import loaders, synthetic, tables
from jaxrec.data.interactions import Interactions, Split
from jaxrec.errors import JaxrecError

DEFAULT_BASE_URL = "https://files.grouplens.org/datasets/movielens"


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
    """A named data set: the files it needs, how to read them, and where the archive lives."""

    name: str
    files: tuple[str, ...]  # needed in <dir>/<name>/
    reader: Callable[[Path], Interactions | Split]
    archive: str | None = None  # file name under the base URL
    sha256: str | None = None
    md5: str | None = None
    size: int | None = None  # bytes, when known
    note: str = ""
    #: the rows are in time order per user and carry no timestamps (``data.order: auto`` reads
    #: them in file order); sequence splits use the SASRec rule (users with < 3 events train only)
    file_order: bool = False
    #: ``(file, sha256)`` of local files checked on every load (data sets without an archive)
    file_sha256: tuple[tuple[str, str], ...] = ()


def _ml(name, file, reader, sha256=None, md5=None, size=None):
    return DatasetSpec(name, (file,), reader, f"{name}.zip", sha256, md5, size)


DATASETS: dict[str, DatasetSpec] = {
    s.name: s
    for s in (
        _ml(
            "ml-100k",
            "u.data",
            loaders.read_ml100k,
            size=4924029,
            sha256="50d2a982c66986937beb9ffb3aa76efe955bf3d5c6b761f4e3a7cd717c6a3229",
            md5="0e33842e24a9c977be4e0107933c0723",
        ),
        _ml(
            "ml-1m",
            "ratings.dat",
            loaders.read_movielens_dat,
            size=5917549,
            sha256="a6898adb50b9ca05aa231689da44c217cb524e7ebd39d264c56e2832f2c54e20",
            md5="c4d9eecfca2ab87c1945afe126590906",
        ),
        _ml("ml-10m", "ratings.dat", loaders.read_movielens_dat, md5="ce571fd55effeba0271552578f2648bd"),
        _ml(
            "ml-20m",
            "ratings.csv",
            loaders.read_movielens_csv,
            size=198702078,
            sha256="96f243c338a8665f6bcc89c53edf6ee39162a846940de6b7c8c48aeada765ff3",
            md5="cd245b17a1ae2cc31bb14903e1204af3",
        ),
        _ml(
            "ml-25m",
            "ratings.csv",
            loaders.read_movielens_csv,
            size=261978986,
            sha256="8b21cfb7eb1706b4ec0aac894368d90acf26ebdfb6aced3ebd4ad5bd1eb9c6aa",
            md5="6b51fb2759a8657d3bfcbfc42b592ada",
        ),
        _ml(
            "ml-latest-small",
            "ratings.csv",
            loaders.read_movielens_csv,
            size=978202,
            sha256="696d65a3dfceac7c45750ad32df2c259311949efec81f0f144fdfb91ebc9e436",
        ),
        DatasetSpec(
            "gowalla",
            ("train.txt", "test.txt"),
            loaders.read_lightgcn,
            note="the LightGCN split: Data/gowalla/ of github.com/kuandeng/LightGCN "
            "(also data/gowalla/ of github.com/gusye1234/LightGCN-PyTorch)",
        ),
        DatasetSpec(
            "amazon-games",
            ("Video.txt",),
            lambda d: loaders.read_sasrec(d / "Video.txt"),
            file_sha256=(("Video.txt", "b7376fe24430743f411dc7f567285657b2adb3f74361cc7ba0aee94f3024b651"),),
            note="the SASRec authors' Amazon Video Games sequences: data/Video.txt of "
            "github.com/kang205/SASRec (user item per line, in time order per user)",
            file_order=True,
        ),
    )
}


# ------------------------------------------------------------------------------------------------
# where things are
# ------------------------------------------------------------------------------------------------
def cache_dir(cache: str | os.PathLike | None = None) -> Path:
    """The download cache: ``cache`` or ``$JAXREC_CACHE_DIR`` or ``~/.cache/jaxrec``."""
    if cache is not None:
        return Path(cache)
    env = os.environ.get("JAXREC_CACHE_DIR")
    return Path(env) if env else Path.home() / ".cache" / "jaxrec"


def _spec(name: str) -> DatasetSpec:
    try:
        return DATASETS[name]
    except KeyError:
        raise JaxrecError(f"unknown data set {name!r}; known: {', '.join(DATASETS)} (or give a path)") from None


def _has_files(d: Path, spec: DatasetSpec) -> bool:
    return all((d / f).is_file() for f in spec.files)


def _is_offline(offline: bool | None) -> bool:
    if offline is not None:
        return offline
    return os.environ.get("JAXREC_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def find_local(
    name: str, *, data_dir: str | os.PathLike | None = None, cache: str | os.PathLike | None = None
) -> Path | None:
    """The directory holding ``name``'s files (data dir first, then cache), or None."""
    spec = _spec(name)
    candidates = []
    data_root = data_dir if data_dir is not None else os.environ.get("JAXREC_DATA_DIR")
    if data_root:
        candidates.append(Path(data_root) / name)
    candidates.append(cache_dir(cache) / name)
    return next((d for d in candidates if _has_files(d, spec)), None)


def _absent_message(spec: DatasetSpec, cache: Path, why: str) -> str:
    files = ", ".join(spec.files)
    data_root = os.environ.get("JAXREC_DATA_DIR")
    msg = f"data set {spec.name!r} is not available ({why}). Create {cache / spec.name}/ with {files}"
    if data_root:
        msg += f", or {Path(data_root) / spec.name}/ with {files}"
    else:
        msg += f", or set JAXREC_DATA_DIR to a directory holding {spec.name}/{spec.files[0]}"
    if spec.archive:
        msg += f" (the files are in {DEFAULT_BASE_URL}/{spec.archive})"
    if spec.note:
        msg += f" ({spec.note})"
    return msg + "."


def resolve(
    name: str,
    *,
    data_dir: str | os.PathLike | None = None,
    cache: str | os.PathLike | None = None,
    base_url: str | None = None,
    offline: bool | None = None,
) -> Path:
    """The local directory of data set ``name``, downloading it into the cache if needed."""
    spec = _spec(name)
    found = find_local(name, data_dir=data_dir, cache=cache)
    if found is not None:
        return found
    root = cache_dir(cache)
    if spec.archive is None:
        raise JaxrecError(_absent_message(spec, root, "it has no download; it is local only"))
    if _is_offline(offline):
        raise JaxrecError(_absent_message(spec, root, "offline: JAXREC_OFFLINE is set"))
    return download_dataset(name, cache=root, base_url=base_url)


# ------------------------------------------------------------------------------------------------
# download, verify, extract
# ------------------------------------------------------------------------------------------------
def download_dataset(
    name: str,
    *,
    cache: str | os.PathLike | None = None,
    base_url: str | None = None,
    timeout: float = 60.0,
) -> Path:
    """Download ``name``'s archive into the cache, verify it, extract it; returns the directory.

    A checksum mismatch removes the download and raises a JaxrecError naming the file, the
    expected and the actual digest. Network failures raise one JaxrecError saying what to create
    by hand.
    """
    spec = _spec(name)
    if spec.archive is None:
        raise JaxrecError(_absent_message(spec, cache_dir(cache), "it has no download; it is local only"))
    root = cache_dir(cache)
    base = (base_url or os.environ.get("JAXREC_DOWNLOAD_URL") or DEFAULT_BASE_URL).rstrip("/")
    url = f"{base}/{spec.archive}"
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise JaxrecError(f"cannot create the cache directory {root}: {e.strerror}") from None
    fd, tmp = tempfile.mkstemp(prefix=f".{spec.archive}.", suffix=".part", dir=root)
    part = Path(tmp)
    try:
        with os.fdopen(fd, "wb") as out:
            digests = _fetch(url, out, timeout, spec, root)
        _verify(spec, url, part, digests)
        return _extract(spec, part, root)
    finally:
        part.unlink(missing_ok=True)


def _fetch(url: str, out, timeout: float, spec: DatasetSpec, root: Path) -> dict[str, str]:
    hashes = {"sha256": hashlib.sha256(), "md5": hashlib.md5()}
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            while chunk := resp.read(1 << 20):
                out.write(chunk)
                for h in hashes.values():
                    h.update(chunk)
    except (urllib.error.URLError, OSError, ValueError) as e:
        reason = getattr(e, "reason", None) or e
        raise JaxrecError(_absent_message(spec, root, f"download of {url} failed: {reason}")) from None
    return {k: h.hexdigest() for k, h in hashes.items()}


def _verify(spec: DatasetSpec, url: str, part: Path, digests: dict[str, str]) -> None:
    for algo in ("sha256", "md5"):
        expected = getattr(spec, algo)
        if expected and digests[algo] != expected.lower():
            raise JaxrecError(
                f"checksum mismatch for {spec.archive} (downloaded from {url}): expected {algo} "
                f"{expected}, got {digests[algo]}; the download was removed"
            )


def _member_target(info: zipfile.ZipInfo, archive: str) -> PurePosixPath | None:
    """The member's relative path, refusing anything that could escape ``dest``."""
    name = info.filename.replace("\\", "/")
    mode = info.external_attr >> 16
    if stat.S_ISLNK(mode):
        raise JaxrecError(f"{archive}: refusing to extract symlink member {info.filename!r}")
    p = PurePosixPath(name)
    if name.startswith("/") or p.is_absolute() or (p.parts and ":" in p.parts[0]):
        raise JaxrecError(f"{archive}: refusing to extract absolute member path {info.filename!r}")
    if ".." in p.parts:
        raise JaxrecError(f"{archive}: refusing to extract member {info.filename!r} (it contains '..')")
    return None if info.is_dir() else p


def _extract(spec: DatasetSpec, archive_path: Path, root: Path) -> Path:
    try:
        zf = zipfile.ZipFile(archive_path)
    except zipfile.BadZipFile:
        raise JaxrecError(f"{spec.archive}: the download is not a zip archive") from None
    with zf:
        members = [(info, _member_target(info, spec.archive)) for info in zf.infolist()]
        files = [(info, p) for info, p in members if p is not None]
        tops = {p.parts[0] for _, p in files}
        strip = len(tops) == 1 and all(len(p.parts) > 1 for _, p in files)
        tmp = Path(tempfile.mkdtemp(prefix=f".{spec.name}.", dir=root))
        try:
            base = tmp.resolve()
            for info, p in files:
                rel = PurePosixPath(*p.parts[1:]) if strip else p
                target = (tmp / rel).resolve()
                if os.path.commonpath([base, target]) != str(base):
                    raise JaxrecError(f"{spec.archive}: refusing member {info.filename!r}")
                target.parent.mkdir(parents=True, exist_ok=True)
                with zf.open(info) as src, open(target, "wb") as dst:
                    shutil.copyfileobj(src, dst)
            if not _has_files(tmp, spec):
                raise JaxrecError(f"{spec.archive}: the archive does not contain {', '.join(spec.files)}")
            final = root / spec.name
            if final.exists():  # e.g. a partial copy made by hand: add to it, delete nothing
                shutil.copytree(tmp, final, dirs_exist_ok=True)
            else:
                tmp.rename(final)
            return final
        finally:
            if tmp.exists():
                shutil.rmtree(tmp)


# ------------------------------------------------------------------------------------------------
# loading and describing
# ------------------------------------------------------------------------------------------------
def _check_files(spec: DatasetSpec, where: Path) -> None:
    """Every ``spec.file_sha256`` file in ``where`` has its pinned digest (else one error naming
    the file, the expected and the actual digest)."""
    for name, want in spec.file_sha256:
        h = hashlib.sha256()
        with open(where / name, "rb") as f:
            while chunk := f.read(1 << 20):
                h.update(chunk)
        if h.hexdigest() != want:
            raise JaxrecError(
                f"{where / name}: sha256 {h.hexdigest()} does not match the pinned {want} of data set {spec.name!r}"
            )


def load_dataset(name_or_path: str | os.PathLike, **kwargs: Any) -> Interactions | Split:
    """A data set by name (see ``DATASETS``) or by path.

    Names resolve as described in the module docstring (``kwargs``: ``data_dir``, ``cache``,
    ``base_url``, ``offline``). Paths: a directory with ``train.txt``/``test.txt`` is a LightGCN
    split (a :class:`Split`); a directory or file with ``u.data`` / ``ratings.dat`` /
    ``ratings.csv`` is MovieLens; any other file is read by :func:`jaxrec.data.tables.read_table`
    (``kwargs``: ``user_col``, ``item_col``, ``rating_col``, ``time_col``, ``delimiter``,
    ``id_dtype``). Returns a :class:`Split` for data with a predefined split, else
    :class:`Interactions`. ``synthetic:users=...,pairs=...`` generates power-law data
    (:func:`jaxrec.data.synthetic.from_spec`).
    """
    if isinstance(name_or_path, str) and name_or_path.startswith("synthetic:"):
        return synthetic.from_spec(name_or_path)
    if isinstance(name_or_path, str) and name_or_path in DATASETS:
        spec = DATASETS[name_or_path]
        where = resolve(name_or_path, **kwargs)
        _check_files(spec, where)
        return spec.reader(where)
    path = Path(name_or_path)
    if not path.exists():
        raise JaxrecError(f"{name_or_path}: neither a known data set ({', '.join(DATASETS)}) nor an existing path")
    if path.is_dir():
        if (path / "train.txt").is_file() and (path / "test.txt").is_file():
            return loaders.read_lightgcn(path)
        return loaders.read_movielens(path)
    if path.name in loaders.ML_FILES and not kwargs:
        return loaders.read_movielens(path)
    return tables.read_table(path, **kwargs)


def load_interactions(name_or_path: str | os.PathLike, **kwargs) -> Interactions:
    """Like :func:`load_dataset` but always all rows as one :class:`Interactions` (a predefined
    split's parts concatenated: train, then valid, then test)."""
    data = load_dataset(name_or_path, **kwargs)
    if isinstance(data, Split):
        return loaders.concat([data.train, data.valid, data.test], source=str(name_or_path))
    return data


def describe(inter: Interactions | Split) -> dict:
    """Summary used by ``jaxrec data info NAME``: users, items, interactions, density, and rating
    (min / max / mean / std / histogram for at most 20 distinct values) and timestamp ranges when
    present. A :class:`Split` is described as a whole plus ``parts`` with each part's row count."""
    parts = None
    if isinstance(inter, Split):
        parts = {"train": len(inter.train), "test": len(inter.test)}
        if inter.valid is not None:
            parts["valid"] = len(inter.valid)
        inter = loaders.concat([inter.train, inter.valid, inter.test])
    out: dict = {
        "source": inter.source,
        "users": inter.n_users,
        "items": inter.n_items,
        "interactions": len(inter),
        "density": inter.density,
        "users_with_interactions": int(np.sum(inter.user_counts() > 0)),
        "items_with_interactions": int(np.sum(inter.item_counts() > 0)),
    }
    if parts is not None:
        out["parts"] = parts
    if inter.ratings is not None and len(inter):
        r = inter.ratings.astype(np.float64)
        stats = {"min": float(r.min()), "max": float(r.max()), "mean": float(r.mean()), "std": float(r.std())}
        values, counts = np.unique(r, return_counts=True)
        if values.size <= 20:
            stats["histogram"] = {format(v, "g"): int(c) for v, c in zip(values, counts)}
        out["ratings"] = stats
    if inter.timestamps is not None and len(inter):
        out["timestamps"] = {"min": int(inter.timestamps.min()), "max": int(inter.timestamps.max())}
    return out
