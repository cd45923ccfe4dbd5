"""A run keeps its model: ``<run>/model/`` holds what :func:`jaxrec.load_run` needs to rebuild it.

Layout (format :data:`FORMAT`)::

    <run>/model/model.json   format, jaxrec version, model name, the epoch the parameters are from
    <run>/model/config.yaml  the configuration it was trained with
    <run>/model/params/      the parameters (orbax, through the one checkpointer)
    <run>/model/split.npz    the split: every part's rows in order, raw-id maps, split.info

The parameters are the ones the run's test metrics were computed with: the best validated
epoch's under early stopping, else the last epoch's. Nothing else is stored: the model's
non-trainable inputs (a graph model's normalised graph) and a sequence model's history windows
are rebuilt from the stored split, the way training built them. The directory is written beside
the run's other files and renamed into place when complete: a reader never sees half a model.
A sweep keeps each member's model the same way, in ``<sweep>/members/<row>/model/``.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import jax
import yaml

from jaxrec.config import Config, load_config, to_dict
from jaxrec.data.interactions import Split
from jaxrec.data.stored import read_split, split_bytes
from jaxrec.errors import JaxrecError
from jaxrec.experiment.models import build_model
from jaxrec.experiment.output import atomic_write
from jaxrec.train.checkpoint import Checkpointer
from jaxrec.train.state import init_params
from jaxrec.version import __version__

FORMAT = 1  #: the layout above; a run saved in another format is refused with one line
MODEL_DIR = "model"


def save_model(run_dir: Path, cfg: Config, variables: dict, split: Split, epoch: int) -> Path:
    """Write ``<run_dir>/model/`` for the one-member ``variables`` (``{"params": ...}``, host
    arrays under multi-host training) trained on ``split``; ``epoch``: the epoch they are from.
    Returns the directory."""
    run_dir = Path(run_dir)
    final = run_dir / MODEL_DIR
    tmp = run_dir / f".{MODEL_DIR}.{os.getpid()}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        alone = {jax.process_index()} if jax.process_count() > 1 else None  # multi-host: process 0 writes alone
        with Checkpointer(tmp / "params", 0, 1, to_dict(cfg), async_save=False, processes=alone) as ck:
            ck.save(epoch, {"params": variables["params"]})
        atomic_write(tmp / "split.npz", split_bytes(split))
        atomic_write(tmp / "config.yaml", yaml.safe_dump(to_dict(cfg), sort_keys=False))
        meta = {"format": FORMAT, "jaxrec": __version__, "model": cfg.model.name, "epoch": int(epoch)}
        atomic_write(tmp / "model.json", json.dumps(meta, indent=2) + "\n")
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


def read_meta(run_dir: Path) -> dict:
    """``model.json`` of a saved run, checked: a missing model or another format is one line."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise JaxrecError(f"{run_dir}: no such run directory")
    path = run_dir / MODEL_DIR / "model.json"
    if not path.is_file():
        raise JaxrecError(
            f"{run_dir}: no saved model ({path} is missing); `jaxrec train` runs of jaxrec >= 0.2.0 keep "
            "their model: train it again"
        )
    try:
        meta = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise JaxrecError(f"{path}: unreadable ({e})") from None
    if meta.get("format") != FORMAT:
        raise JaxrecError(
            f"{path}: saved in model format {meta.get('format')!r} by jaxrec {meta.get('jaxrec')}; this jaxrec "
            f"({__version__}) reads format {FORMAT}: train the run again with this version"
        )
    return meta


def load_model(run_dir: Path) -> tuple[Config, object, dict, dict, Split, dict]:
    """``(config, module, params, inputs, split, meta)`` of the run saved in ``run_dir``: the
    module and its inputs rebuilt from the stored split, the parameters restored onto them
    (bit-identical to the saved ones; another shape is one error naming the array)."""
    run_dir = Path(run_dir)
    meta = read_meta(run_dir)
    cfg = load_config(run_dir / MODEL_DIR / "config.yaml")
    split = read_split(run_dir / MODEL_DIR / "split.npz")
    model, inputs = build_model(cfg.model, split.train)
    template = {"params": init_params(model, jax.random.key(0), inputs)["params"]}
    with Checkpointer(run_dir / MODEL_DIR / "params", every=0, keep=1) as ck:
        params, _ = ck.restore(template)
    return cfg, model, params, inputs, split, meta
