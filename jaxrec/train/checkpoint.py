"""Durable runs: orbax checkpoints of the whole train state, exact resume, crash safety.

A checkpoint holds everything a run needs to continue bit-exactly: ``params``, ``opt_state``,
``step`` and the random key (as its raw ``key_data``; per-step randomness is
``fold_in(key, step)``, so nothing else is needed), plus JSON metadata: the epoch, the step and
the run's config. Checkpoints are numbered by epoch.

Crash safety comes from orbax's ``CheckpointManager``: a checkpoint is written into a temporary
directory and renamed into place only when complete, so a process killed during a save leaves
the previous checkpoints restorable (the partial directory is ignored and cleaned up later).
Training that hits a NaN/inf loss raises :class:`~jaxrec.train.loop.NonFiniteLossError` before
the bad state is adopted, so the last checkpoint written is the last good one.

Resuming restores onto the shardings of a template state (e.g. one made by
:func:`jaxrec.train.parallel.shard_state`), so a run resumes on the same device layout; the
restored arrays are bit-identical to the saved ones.
"""

from __future__ import annotations

from pathlib import Path

import jax
import numpy as np

from jaxrec.errors import JaxrecError
from jaxrec.train.parallel import wrap_key
from jaxrec.train.state import TrainState


def _to_tree(state: TrainState) -> dict:
    """The saved pytree of ``state``: params, opt_state, step and ``key_data(key)`` (uint32)."""
    return {
        "params": state.params,
        "opt_state": state.opt_state,
        "step": state.step,
        "key": jax.random.key_data(state.key),
    }


def _abstract(tree):
    """``ShapeDtypeStruct``s (with shardings) describing ``tree``, the restore target."""

    def one(x):
        x = x if isinstance(x, jax.Array) else np.asarray(x)
        sharding = getattr(x, "sharding", None)
        if sharding is None or not isinstance(x, jax.Array):
            sharding = jax.sharding.SingleDeviceSharding(jax.devices()[0])
        return jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding)

    return jax.tree.map(one, tree)


class Checkpointer:
    """Save every ``every`` epochs (and at the end) into ``directory``, keeping the last ``keep``.

    Args:
      directory: where checkpoints live (``<dir>/<epoch>/``); created when missing.
      every: save when ``epoch % every == 0`` (0: only explicit/final saves).
      keep: how many of the most recent checkpoints to keep (>= 1).
      config: a JSON-serialisable dict stored with every checkpoint (the run's config).
      async_save: write in a background thread (training continues during the write);
        :meth:`wait` / :meth:`close` block until it is on disk.
    """

    def __init__(
        self,
        directory: str | Path,
        every: int = 1,
        keep: int = 3,
        config: dict | None = None,
        async_save: bool = True,
    ):
        import orbax.checkpoint as ocp

        if every < 0:
            raise JaxrecError(f"checkpoint.every must be >= 0, got {every}")
        if keep < 1:
            raise JaxrecError(f"checkpoint.keep must be >= 1, got {keep}")
        self._ocp = ocp
        self.directory = Path(directory).absolute()
        self.every = every
        self.config = dict(config or {})
        options = ocp.CheckpointManagerOptions(
            max_to_keep=keep, create=True, enable_async_checkpointing=async_save
        )
        self.manager = ocp.CheckpointManager(self.directory, options=options)

    # -- saving ----------------------------------------------------------------------------------
    def save(self, epoch: int, state: TrainState, extra: dict | None = None) -> None:
        """Save ``state`` as the checkpoint of ``epoch`` (metadata: epoch, step, config, ``extra``)."""
        ocp = self._ocp
        meta = {"epoch": int(epoch), "step": int(jax.device_get(state.step)), "config": self.config}
        meta.update(extra or {})
        self.manager.save(
            int(epoch),
            args=ocp.args.Composite(state=ocp.args.StandardSave(_to_tree(state)), meta=ocp.args.JsonSave(meta)),
            force=True,
        )

    def save_final(self, epoch: int, state: TrainState) -> None:
        """Save the end of training (when checkpoints are on and ``epoch`` is not saved yet)."""
        if self.every and epoch not in self.manager.all_steps():
            self.save(epoch, state)

    def resume(self, template: TrainState) -> tuple[TrainState, int]:
        """``(state, epoch)`` of the latest checkpoint, restored onto ``template``'s layout."""
        state, meta = self.restore(template)
        return state, int(meta["epoch"])

    def on_epoch_end(self, epoch: int, state: TrainState, record: dict) -> None:
        """A :func:`jaxrec.train.loop.fit` hook: save when ``epoch`` is a multiple of ``every``."""
        if self.every and epoch % self.every == 0:
            self.save(epoch, state, {"loss": record.get("loss")})

    def wait(self) -> None:
        """Block until pending asynchronous saves are on disk."""
        self.manager.wait_until_finished()

    def close(self) -> None:
        self.manager.wait_until_finished()
        self.manager.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- restoring -------------------------------------------------------------------------------
    def epochs(self) -> list[int]:
        """Epochs with a complete checkpoint, oldest first."""
        return sorted(self.manager.all_steps())

    def latest_epoch(self) -> int | None:
        """The newest complete checkpoint's epoch (None: no checkpoint)."""
        return self.manager.latest_step()

    def restore(self, template: TrainState, epoch: int | None = None) -> tuple[TrainState, dict]:
        """``(state, meta)`` of checkpoint ``epoch`` (default: the latest).

        ``template`` supplies the structure, ``apply_fn``/``tx`` and the target shardings (a
        freshly created state of the same run, sharded as the run is); the restored leaves
        are bit-identical to the saved ones.
        """
        ocp = self._ocp
        epoch = self.latest_epoch() if epoch is None else epoch
        if epoch is None:
            raise JaxrecError(f"--resume: no complete checkpoint in {self.directory}")
        if epoch not in self.manager.all_steps():
            raise JaxrecError(f"checkpoint: no epoch {epoch} in {self.directory} (have {self.epochs()})")
        target = _abstract(_to_tree(template))
        try:
            out = self.manager.restore(
                epoch,
                args=ocp.args.Composite(state=ocp.args.StandardRestore(target), meta=ocp.args.JsonRestore()),
            )
        except (ValueError, KeyError, TypeError) as e:
            raise JaxrecError(
                f"checkpoint {self.directory / str(epoch)} does not match this run's state "
                f"(a different model, optimizer or data?): {e}"
            ) from None
        tree, meta = out["state"], out["meta"]
        impl = jax.random.key_impl(template.key)
        step = tree["step"]
        if getattr(template.step, "weak_type", True):  # a fresh state's step is the Python int 0
            step = int(jax.device_get(step))  # same (weak) type as in training: no retrace
            if isinstance(template.step, jax.Array):  # placed like the template (e.g. on a mesh)
                step = jax.device_put(step, template.step.sharding)
        state = template.replace(
            params=tree["params"],
            opt_state=tree["opt_state"],
            step=step,
            key=wrap_key(tree["key"], impl, getattr(template.key, "sharding", None)),
        )
        return state, dict(meta)


def checkpointer_for(cfg, resume: bool = False) -> Checkpointer | None:
    """The :class:`Checkpointer` a :class:`~jaxrec.config.Config` asks for (None: checkpoints off).

    ``cfg.checkpoint.dir`` defaults to ``<output_dir>/<name>/checkpoints``; ``resume`` needs a
    directory holding a checkpoint even when ``checkpoint.every`` is 0.
    """
    from jaxrec.config import to_dict

    c = cfg.checkpoint
    directory = Path(c.dir) if c.dir else Path(cfg.output_dir) / cfg.name / "checkpoints"
    if resume and not directory.is_dir():
        raise JaxrecError(f"--resume: no checkpoint directory {directory} (checkpoint.dir)")
    if c.every == 0 and not resume:
        return None
    return Checkpointer(directory, c.every, c.keep, config=to_dict(cfg))
