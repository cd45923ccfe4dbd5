"""Child process of ``test_checkpoint.py::test_kill_during_save``: saves checkpoints forever.

    python ckpt_kill_child.py DIR HANG_AT

Checkpoint ``i`` holds a train state whose every float leaf equals ``i``. Before each save it
prints ``saving i``, after it ``saved i`` (flushed). The save of checkpoint ``HANG_AT`` stops
*inside* orbax's commit -- every array already written to the temporary directory, the rename
into place not yet done -- prints ``inside save HANG_AT`` and waits there to be killed, so the
parent's SIGKILL lands in the middle of a save every time.
"""

import sys
import time

import jax
import jax.numpy as jnp
import optax

from jaxrec.models import MF
from jaxrec.train.checkpoint import Checkpointer
from jaxrec.train.state import create_state

N_USERS, N_ITEMS, DIM = 40_000, 1_000, 64


def template():
    return create_state(MF(N_USERS, N_ITEMS, DIM), jax.random.key(0), optax.adam(1e-3))


def filled(state, i: int):
    """``state`` with every float leaf of params and opt_state set to ``i``, step ``i``."""
    fill = lambda x: jnp.full_like(x, i) if jnp.issubdtype(x.dtype, jnp.floating) else x  # noqa: E731
    return state.replace(params=jax.tree.map(fill, state.params), opt_state=jax.tree.map(fill, state.opt_state), step=i)


def hang_inside_the_commit(epoch: int) -> None:
    """Make orbax's finalisation (the atomic rename) of checkpoint ``epoch`` wait forever."""
    from orbax.checkpoint._src.path import atomicity

    for cls in (atomicity.AtomicRenameTemporaryPath, atomicity.CommitFileTemporaryPath):
        real = cls.finalize

        async def finalize(self, *args, _real=real, **kwargs):
            if self.get().name.startswith(f"{epoch}.") or self.get().name == str(epoch):
                print(f"inside save {epoch}", flush=True)
                while True:
                    time.sleep(1)
            return await _real(self, *args, **kwargs)

        cls.finalize = finalize


def main(directory: str, hang_at: int) -> None:
    hang_inside_the_commit(hang_at)
    state = template()
    ck = Checkpointer(directory, every=1, keep=2, async_save=False)
    for i in range(1, 10_000):
        s = filled(state, i)
        jax.block_until_ready(s)
        print(f"saving {i}", flush=True)
        ck.save(i, s)
        print(f"saved {i}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
