"""The one run writer: ``<output_dir>/<name>/{config.yaml, metrics.json, history.jsonl[, samples.npz]}``
for a run, ``{config.yaml, results.csv, results.json}`` for a sweep or a study.

Results are never lost to the file system:

* :func:`check_writable` runs before any training: an ``output_dir`` that is a file, or a
  directory without write permission, is an error naming it, not a crash after the run; so is a
  run directory that already holds another run's results (``overwrite`` replaces it,
  ``resume`` continues it when it is the same command's);
* every run directory records the command, its arguments and the jaxrec version (``run.json``);
* every file is written to a temporary file beside it and renamed into place (atomic: a reader
  or a crash never sees half a file);
* :func:`saving` wraps the writing after a run: if it still fails (a full disk), a warning says
  where nothing could be written and the command goes on to print its results.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

from jaxrec import errors
from jaxrec.config import Config, to_dict
from jaxrec.errors import JaxrecError


def run_dir_of(cfg: Config) -> Path:
    """``<output_dir>/<name>``: where a run of ``cfg`` writes."""
    return Path(cfg.output_dir) / cfg.name


RUN_MARKERS = ("run.json", "config.yaml")  #: files that make a directory a jaxrec run's


def _recorded_command(run_dir: Path) -> str | None:
    try:
        return json.loads((run_dir / "run.json").read_text()).get("command")
    except (OSError, ValueError):
        return None


def check_writable(
    cfg: Config,
    command: str | None = None,
    overwrite: bool = False,
    resume: bool = False,
    resumable: bool | None = None,
) -> Path:
    """Prove, before any work, that ``<output_dir>/<name>`` can be created and written: a file
    is created (and removed) in it, or in its nearest existing parent; nothing is left behind.
    Returns the directory. An unusable place is one :class:`JaxrecError` naming ``output_dir``.

    ``command`` (``train``, ``sweep``, ...): a directory holding a run already is refused, unless
    ``resume`` (continue it: it must be a run of ``command``) or ``overwrite`` (remove it first).
    The refusal words its way out for the caller (``overwrite=True`` in Python, ``--overwrite``
    on the command line: :data:`jaxrec.errors.CALLER`) and offers resuming only when ``command``
    can resume (``resumable``; None: ``train`` and the studies marked ``RESUMABLE``)."""
    run_dir = run_dir_of(cfg)
    place = run_dir
    while not place.exists() and place != place.parent:
        place = place.parent
    try:
        if not place.is_dir():
            raise NotADirectoryError(20, f"{place} is not a directory")
        with tempfile.TemporaryFile(dir=place):
            pass
    except OSError as e:
        raise JaxrecError(
            f"output_dir: cannot write the results to {run_dir} ({e.strerror or e}); "
            "give a writable output_dir (or name)"
        ) from None
    if command is not None and run_dir.is_dir() and any((run_dir / m).exists() for m in RUN_MARKERS):
        held = _recorded_command(run_dir)
        runs = (lambda c: f"a `jaxrec {c}` run") if errors.CALLER == "cli" else (lambda c: f"a run of `{c}`")
        what = runs(held) if held else "a run"
        if resume:
            if held is not None and held != command:
                raise JaxrecError(
                    f"{errors.option('resume')}: {run_dir} holds {what}, not {runs(command)}; give this run's name"
                )
        elif overwrite:
            try:
                shutil.rmtree(run_dir)
            except OSError as e:
                raise JaxrecError(
                    f"{errors.option('overwrite')}: cannot remove {run_dir} ({e.strerror or e})"
                ) from None
        else:
            if resumable is None:  # the studies import this module: looked up when called
                from jaxrec.experiment.studies import STUDIES

                resumable = command == "train" or getattr(STUDIES.get(command), "RESUMABLE", False)
            again = f" ({errors.option('resume')} to continue it)" if resumable else ""
            raise JaxrecError(
                f"{run_dir} already holds the results of {what}; give this run another name "
                f"({errors.setting('name')}), or {errors.option('overwrite')} to replace them{again}"
            )
    return run_dir


def atomic_write(path: Path, data: str | bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same directory and a rename."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data.encode() if isinstance(data, str) else data)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def saving(run_dir: Path):
    """Writing a finished run's outputs: an ``OSError`` becomes a warning on stderr naming
    ``run_dir`` (the results are still returned and printed)."""
    try:
        yield
    except OSError as e:
        print(
            f"warning: could not write the results to {run_dir} ({e.strerror or e}); they are only printed below",
            file=sys.stderr,
        )


def _config_text(cfg: Config, extra_config: dict | None = None) -> str:
    text = yaml.safe_dump(to_dict(cfg), sort_keys=False)
    return text + (yaml.safe_dump(extra_config, sort_keys=False) if extra_config else "")


INVOCATION: list[str] | None = None  #: the command line, as the CLI received it (None: sys.argv)


def _stamp(run_dir: Path, command: str | None) -> None:
    """``run.json``: which command wrote the directory, with which arguments and jaxrec."""
    from jaxrec.version import __version__

    if command is not None:
        argv = INVOCATION if INVOCATION is not None else sys.argv
        info = {
            "command": command,
            "argv": list(argv),
            "jaxrec": __version__,
            "written": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        atomic_write(run_dir / "run.json", json.dumps(info, indent=2) + "\n")


def start(cfg: Config, command: str | None = None, extra_config: dict | None = None) -> Path:
    """Create ``<output_dir>/<name>/`` with ``config.yaml`` (plus ``extra_config``, e.g. a sweep's
    grid) and, when ``command`` is given, ``run.json``; returns the directory."""
    run_dir = run_dir_of(cfg)
    run_dir.mkdir(parents=True, exist_ok=True)
    _stamp(run_dir, command)
    atomic_write(run_dir / "config.yaml", _config_text(cfg, extra_config))
    return run_dir


def write_json(path: Path, payload) -> None:
    """``payload`` as indented JSON at ``path`` (atomically)."""
    atomic_write(path, json.dumps(payload, indent=2) + "\n")


def write_rows(path: Path, rows: list[dict]) -> None:
    """``rows`` as CSV at ``path``: the rows' keys in first-seen order, a key a row lacks left empty."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(dict.fromkeys(k for r in rows for k in r)))
    writer.writeheader()
    writer.writerows(rows)
    atomic_write(path, buf.getvalue())


def write_run(
    cfg: Config, metrics: dict, history: list[dict], samples: dict | None = None, command: str | None = None
) -> Path:
    """A run's files: :func:`start`, the final ``metrics.json``, the per-epoch ``history.jsonl``
    (one JSON line per epoch) and optional arrays (``samples.npz``); returns the directory."""
    run_dir = start(cfg, command)
    write_json(run_dir / "metrics.json", metrics)
    atomic_write(run_dir / "history.jsonl", "".join(json.dumps(rec) + "\n" for rec in history))
    if samples:
        buf = io.BytesIO()
        np.savez_compressed(buf, **samples)
        atomic_write(run_dir / "samples.npz", buf.getvalue())
    return run_dir


def write_results(
    cfg: Config, rows: list[dict], payload: dict, extra_config: dict | None = None, command: str | None = None
) -> Path:
    """A sweep's or a study's files: :func:`start`, every row as ``results.csv`` and ``payload``
    as ``results.json``; returns the directory."""
    run_dir = start(cfg, command, extra_config)
    write_rows(run_dir / "results.csv", rows)
    write_json(run_dir / "results.json", payload)
    return run_dir


def written(cfg: Config, write, *args) -> Path | None:
    """``write(*args)`` (a writer returning the run directory) under :func:`saving`: the
    directory, or None when nothing could be written."""
    with saving(run_dir_of(cfg)):
        return write(*args)
    return None


class HistoryLog:
    """``history.jsonl`` written as epochs finish (one flushed JSON line each), carried across
    resumes: when a resumed run's first epoch ``e`` arrives, the earlier run's lines for epochs
    ``< e`` are kept and the later ones (trained past the checkpoint) dropped. ``records`` is the
    whole story so far. A write that fails (a full disk) warns once and never stops the run."""

    def __init__(self, path: Path, resume: bool):
        self.path = Path(path)
        self.records: list[dict] = []
        if resume and self.path.is_file():
            self.records = [json.loads(ln) for ln in self.path.read_text().splitlines() if ln.strip()]
        self._file = None
        self._started = False

    def append(self, record: dict) -> None:
        if not self._started:  # the first new epoch: keep what came before it, start the file
            self._started = True
            self.records = [r for r in self.records if r["epoch"] < record["epoch"]]
            with saving(self.path.parent):
                self.path.parent.mkdir(parents=True, exist_ok=True)
                atomic_write(self.path, "".join(json.dumps(r) + "\n" for r in self.records))
                self._file = open(self.path, "a")
        self.records.append(record)
        if self._file is not None:
            ok = False
            with saving(self.path.parent):
                self._file.write(json.dumps(record) + "\n")
                self._file.flush()
                ok = True
            if not ok:
                self.close()

    def close(self) -> None:
        if self._file is not None:
            with contextlib.suppress(OSError):
                self._file.close()
            self._file = None
