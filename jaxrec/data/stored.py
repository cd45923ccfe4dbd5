"""A split as one ``.npz`` file: what a saved run keeps of its data (:mod:`jaxrec.experiment.saved`).

Every part's rows are stored in their order (a sequence model's histories read the file order),
with their ratings and timestamps when present, the raw-id maps and ``split.info``. Raw ids are
stored as numbers or fixed-width strings, never as pickled objects: the file loads with
``allow_pickle=False``, so reading a run cannot run code.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np

from jaxrec.data.interactions import Interactions, Split
from jaxrec.errors import JaxrecError

PARTS = ("train", "valid", "test")


def plain_ids(ids: np.ndarray | None, n: int) -> np.ndarray:
    """``ids`` as a pickle-free array: integers stay integers, anything else becomes fixed-width
    unicode; None becomes ``arange(n)`` (the index is the id)."""
    if ids is None:
        return np.arange(n, dtype=np.int64)
    ids = np.asarray(ids)
    if ids.dtype.kind in "iu":
        return ids.astype(np.int64)
    if ids.dtype.kind == "U":
        return ids
    if ids.dtype.kind == "O" and all(isinstance(x, (int, np.integer)) for x in ids):
        return ids.astype(np.int64)
    return ids.astype(str)


def split_bytes(split: Split) -> bytes:
    """``split`` as the bytes of an ``.npz`` file."""
    arrays = {
        "user_ids": plain_ids(split.train.user_ids, split.n_users),
        "item_ids": plain_ids(split.train.item_ids, split.n_items),
        "sizes": np.asarray([split.n_users, split.n_items], np.int64),
        "info": np.asarray(json.dumps(dict(split.info), default=str)),
    }
    for name in PARTS:
        part = getattr(split, name)
        if part is None:
            continue
        arrays[f"{name}.users"] = part.users
        arrays[f"{name}.items"] = part.items
        if part.ratings is not None:
            arrays[f"{name}.ratings"] = part.ratings
        if part.timestamps is not None:
            arrays[f"{name}.timestamps"] = part.timestamps
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    return buf.getvalue()


def read_split(path: str | Path) -> Split:
    """The :class:`Split` stored by :func:`split_bytes` in ``path``."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {k: f[k] for k in f.files}
    except (OSError, ValueError) as e:
        raise JaxrecError(f"{path}: not a readable saved split ({e})") from None
    n_users, n_items = (int(x) for x in arrays["sizes"])
    parts = {}
    for name in PARTS:
        if f"{name}.users" not in arrays:
            continue
        parts[name] = Interactions(
            arrays[f"{name}.users"],
            arrays[f"{name}.items"],
            n_users,
            n_items,
            ratings=arrays.get(f"{name}.ratings"),
            timestamps=arrays.get(f"{name}.timestamps"),
            user_ids=arrays["user_ids"],
            item_ids=arrays["item_ids"],
            source=f"{path}[{name}]",
        )
    return Split(parts["train"], parts["test"], parts.get("valid"), json.loads(str(arrays["info"])))
