"""Durable runs: orbax checkpoints of any training pytree, exact resume, crash safety.

A checkpoint holds everything a run needs to continue bit-exactly: whatever pytree the trainer
hands in -- the stacked members' train states (params, ``opt_state`` with the learning rate,
``step``, the random key as its raw ``key_data``, the hyperparameters) and the per-member
tracker (best params, early-stopping counters), or the GAN's pair of states -- plus JSON
metadata: the epoch and the run's config. Per-step randomness is ``fold_in(key, step)``, so
nothing else is needed. Checkpoints are numbered by epoch.

Crash safety comes from orbax's ``CheckpointManager``: a checkpoint is written into a temporary
directory and renamed into place only when complete, so a process killed during a save leaves
the previous checkpoints restorable (the partial directory is ignored and cleaned up later).
Training that hits a NaN/inf loss raises :class:`~jaxrec.train.loop.NonFiniteLossError` before
the bad state is adopted, so the last checkpoint written is the last good one.

Resuming checks the saved shapes against the run's state first (a checkpoint of another model is
one error naming the first differing array, not orbax's tracebacks), and a damaged latest
checkpoint (unreadable or missing files) falls back to the previous one with a warning. (Files
that are present but corrupt are found only by reading them; orbax's threads then print
tracebacks of their own before the fallback.)

Resuming restores onto the shardings of a template (e.g. a state placed on a mesh by
:func:`jaxrec.train.parallel.place_members`), so a run resumes on the same device layout; the
restored arrays are bit-identical to the saved ones.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from pathlib import Path

import jax
import numpy as np
from flax import serialization

from jaxrec.errors import JaxrecError
from jaxrec.train.parallel import wrap_key


def _is_key(x) -> bool:
    return isinstance(x, jax.Array) and jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key)


def _to_tree(tree) -> dict:
    """The saved form of ``tree``: a nested dict (flax state dict), typed keys as ``key_data``."""
    raw = jax.tree.map(lambda x: jax.random.key_data(x) if _is_key(x) else x, tree)
    return serialization.to_state_dict(raw)


def _from_tree(template, saved: dict):
    """``template``'s structure filled with the ``saved`` leaves (keys re-wrapped, placed as the
    template's)."""
    leaves, treedef = jax.tree.flatten(template)
    raw_template = jax.tree.map(lambda x: jax.random.key_data(x) if _is_key(x) else x, template)
    restored = serialization.from_state_dict(raw_template, saved)
    out = [
        wrap_key(r, jax.random.key_impl(t), getattr(t, "sharding", None)) if _is_key(t) else r
        for t, r in zip(leaves, jax.tree.leaves(restored))
    ]
    return jax.tree.unflatten(treedef, out)


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
      processes: the processes that take part (default: all of them, as multi-host training
        saves); ``{jax.process_index()}`` lets one process save host arrays alone (a run's final
        model, written by process 0 only).
    """

    def __init__(
        self,
        directory: str | Path,
        every: int = 1,
        keep: int = 3,
        config: dict | None = None,
        async_save: bool = True,
        processes: set[int] | None = None,
    ):
        import orbax.checkpoint as ocp

        if every < 0:
            raise JaxrecError(f"checkpoint every must be >= 0, got {every}")
        if keep < 1:
            raise JaxrecError(f"checkpoint keep must be >= 1, got {keep}")
        self._ocp = ocp
        self.directory = Path(directory).absolute()
        self.every = every
        self.config = dict(config or {})
        multi = ocp.options.MultiprocessingOptions(
            primary_host=min(processes) if processes else 0,
            active_processes=set(processes) if processes else None,
            barrier_sync_key_prefix=f"jaxrec-{min(processes)}" if processes else None,
        )
        if processes:  # orbax creates the directory only when every process takes part
            self.directory.mkdir(parents=True, exist_ok=True)
        options = ocp.CheckpointManagerOptions(
            max_to_keep=keep,
            create=not processes,
            enable_async_checkpointing=async_save,
            multiprocessing_options=multi,
        )
        self.manager = ocp.CheckpointManager(self.directory, options=options)

    # -- saving ----------------------------------------------------------------------------------
    def save(self, epoch: int, tree, extra: dict | None = None) -> None:
        """Save ``tree`` (any pytree of arrays and typed keys) as the checkpoint of ``epoch``
        (metadata: epoch, config, ``extra``)."""
        ocp = self._ocp
        meta = {"epoch": int(epoch), "config": self.config}
        meta.update(extra or {})
        self.manager.save(
            int(epoch),
            args=ocp.args.Composite(state=ocp.args.StandardSave(_to_tree(tree)), meta=ocp.args.JsonSave(meta)),
            force=True,
        )

    def save_final(self, epoch: int, tree) -> None:
        """Save the end of training (when checkpoints are on and ``epoch`` is not saved yet)."""
        if self.every and epoch not in self.manager.all_steps():
            self.save(epoch, tree)

    def restore_raw(self, epoch: int | None = None) -> tuple[dict, dict]:
        """``(tree, meta)`` of checkpoint ``epoch`` (default: the latest) as saved: nested dicts
        of host arrays, typed keys as ``key_data`` (for reading parts of another run's state)."""
        ocp = self._ocp
        epoch = self.latest_epoch() if epoch is None else epoch
        if epoch is None:
            raise JaxrecError(f"no complete checkpoint in {self.directory}")
        out = self.manager.restore(
            epoch, args=ocp.args.Composite(state=ocp.args.StandardRestore(), meta=ocp.args.JsonRestore())
        )
        return out["state"], dict(out["meta"])

    def resume(self, template):
        """``(tree, epoch)`` of the latest checkpoint, restored onto ``template``'s layout."""
        tree, meta = self.restore(template)
        return tree, int(meta["epoch"])

    def maybe_save(self, epoch: int, tree, extra: dict | None = None) -> None:
        """Save when ``epoch`` is a multiple of ``every`` (the fit loop's epoch hook calls it)."""
        if self.every and epoch % self.every == 0:
            self.save(epoch, tree, extra)

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

    def restore(self, template, epoch: int | None = None) -> tuple:
        """``(tree, meta)`` of checkpoint ``epoch`` (default: the latest).

        ``template`` supplies the structure, ``apply_fn``/``tx`` and the target shardings (a
        freshly created tree of the same run, placed as the run is); the restored leaves are
        bit-identical to the saved ones.
        """
        ocp = self._ocp
        if epoch is not None and epoch not in self.manager.all_steps():
            raise JaxrecError(f"checkpoint: no epoch {epoch} in {self.directory} (have {self.epochs()})")
        candidates = [epoch] if epoch is not None else self.epochs()[::-1]
        if not candidates:
            raise JaxrecError(f"--resume: no complete checkpoint in {self.directory}")
        target_tree = _to_tree(template)
        target = _abstract(target_tree)
        damaged = []
        for e in candidates:
            where = self.directory / str(e)
            saved = self._saved_shapes(e) if _looks_complete(where / "state") else None
            if saved is not None:
                diff = _first_difference(saved, target_tree)
                if diff:
                    raise JaxrecError(
                        f"checkpoint {where} does not match this run's state: {diff} (another model, model.dim, "
                        "optimizer or number of members?)"
                    )
                try:
                    with _quiet_orbax():
                        out = self.manager.restore(
                            e,
                            args=ocp.args.Composite(
                                state=ocp.args.StandardRestore(target), meta=ocp.args.JsonRestore()
                            ),
                        )
                    if damaged:  # moved aside (kept for inspection), so the run can save those epochs again
                        for d in damaged:
                            (self.directory / str(d)).rename(self.directory / f"damaged-{d}")
                        self.manager.reload()
                        print(
                            f"warning: checkpoint(s) {damaged} in {self.directory} are damaged (moved to "
                            f"damaged-<epoch>); resumed from epoch {e}",
                            file=sys.stderr,
                        )
                    return _from_tree(template, out["state"]), dict(out["meta"])
                except Exception:  # noqa: BLE001 -- any failure to read a complete-looking step
                    pass
            damaged.append(e)
        raise JaxrecError(f"--resume: every checkpoint in {self.directory} is damaged (epochs {damaged})")

    def _saved_shapes(self, epoch: int):
        """The saved state's array metadata (nested dicts), or None when it cannot be read."""
        try:
            with _quiet_orbax():
                meta = self._ocp.StandardCheckpointer().metadata(self.directory / str(epoch) / "state")
            return meta.item_metadata.tree
        except Exception:  # noqa: BLE001 -- unreadable metadata = a damaged checkpoint
            return None


def _looks_complete(state_dir: Path) -> bool:
    """The files an orbax OCDBT array checkpoint cannot be read without: its metadata and
    manifest, and non-empty data directories (checked before a read, since a failed read leaves
    orbax's background threads printing tracebacks)."""
    if not all((state_dir / f).is_file() for f in ("_METADATA", "manifest.ocdbt")):
        return False
    data = [p for p in state_dir.iterdir() if p.is_dir() and (p.name == "d" or p.name.startswith("ocdbt.process_"))]
    return bool(data) and all(any(p.iterdir()) for p in data)


@contextlib.contextmanager
def _quiet_orbax():
    """orbax / absl log the errors of a failed read from their own threads: a failure here is
    handled (reported once, or a fallback), so they stay quiet meanwhile."""
    loggers = [logging.getLogger(n) for n in ("absl", "orbax", "jax")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        for lg, lv in zip(loggers, levels):
            lg.setLevel(lv)


def _first_difference(saved, target) -> str | None:
    """The first array whose presence or shape differs between the saved metadata and ``target``
    (both nested dicts), in words; None when they agree."""

    def flat(tree):
        leaves, _ = jax.tree_util.tree_flatten_with_path(tree, is_leaf=lambda x: hasattr(x, "shape"))
        return {"/".join(str(getattr(k, "key", k)) for k in path): tuple(np.shape(x)) for path, x in leaves}

    s, t = flat(saved), flat(target)
    # the parameters first: "params/.../user is saved as [.., 64]" says more than an optimizer moment
    for name in sorted(set(s) | set(t), key=lambda n: ("opt_state" in n, "tracker" in n, n)):
        if name not in s:
            return f"{name} is not in the checkpoint"
        if name not in t:
            return f"the checkpoint has {name}, this run does not"
        if s[name] != t[name]:
            return f"{name} is saved as {list(s[name])}, this run has {list(t[name])}"
    return None
