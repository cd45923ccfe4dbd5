"""An experiment's checkpoints: where they live, the :class:`Checkpointer` a config asks for,
and warm starts from another run's (``train.init_from``)."""

from __future__ import annotations

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from jaxrec.config import Config, to_dict
from jaxrec.errors import JaxrecError, config_key
from jaxrec.experiment.output import run_dir_of
from jaxrec.train.checkpoint import Checkpointer


def warm_start(directory: str, params, n: int):
    """The stacked params of ``n`` members from the latest checkpoint of an earlier run in
    ``directory`` (``train.init_from``): member m gets that run's member m, or its only member.
    The optimizer state stays fresh (APR starts from BPR's parameters)."""
    from flax import serialization

    path = Path(directory)
    if not path.is_dir():
        raise JaxrecError(f"train.init_from: no checkpoint directory {path}")
    with config_key("train.init_from"), Checkpointer(path, every=0, keep=1) as ck:
        tree, _ = ck.restore_raw()
    saved = tree.get("state", {}).get("params")
    if saved is None:
        raise JaxrecError(f"train.init_from: {path} holds no member params (a jaxrec train/sweep checkpoint?)")
    template = serialization.to_state_dict(params)
    if jax.tree.structure(saved) != jax.tree.structure(template):
        raise JaxrecError(f"train.init_from: the params in {path} are of another model")
    got = [np.shape(x) for x in jax.tree.leaves(saved)]
    want = [np.shape(x) for x in jax.tree.leaves(template)]
    m = got[0][0]
    if m not in (1, n) or any(g[1:] != w[1:] for g, w in zip(got, want)):
        raise JaxrecError(f"train.init_from: {path} holds {m} members of other shapes than this run's {n}")
    leaves = [jnp.broadcast_to(jnp.asarray(x), w) for x, w in zip(jax.tree.leaves(saved), want)]
    restored = jax.tree.unflatten(jax.tree.structure(template), leaves)
    return serialization.from_state_dict(params, jax.tree.map(jnp.copy, restored))


def checkpoint_dir(cfg: Config) -> Path:
    """``checkpoint.dir``, by default ``<output_dir>/<name>/checkpoints``."""
    return Path(cfg.checkpoint.dir) if cfg.checkpoint.dir else run_dir_of(cfg) / "checkpoints"


def checkpointer_for(cfg: Config, resume: bool = False, always: bool = False) -> Checkpointer | None:
    """The :class:`Checkpointer` ``cfg.checkpoint`` asks for (None: checkpoints off, unless
    ``always``, for runs that always save their end, as ``jaxrec gan``).

    ``resume`` needs a directory (:func:`checkpoint_dir`) holding a checkpoint even when
    ``checkpoint.every`` is 0.
    """
    c = cfg.checkpoint
    directory = checkpoint_dir(cfg)
    if resume and not directory.is_dir():
        raise JaxrecError(f"--resume: no checkpoint directory {directory} (checkpoint.dir)")
    if c.every == 0 and not (resume or always):
        return None
    return Checkpointer(directory, c.every, c.keep, config=to_dict(cfg))
