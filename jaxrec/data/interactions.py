"""The `Interactions` contract: validated user-item pairs as immutable numpy arrays.

Every loader returns one, every split is made of them, and everything downstream trusts them:
ids are 0-based and contiguous, arrays are int32 and read-only, ratings are finite.
"""

from __future__ import annotations

import dataclasses
from functools import cached_property

import numpy as np

from jaxrec.errors import JaxrecError


def _frozen(a: np.ndarray) -> np.ndarray:
    a = np.ascontiguousarray(a)
    a.setflags(write=False)
    return a


@dataclasses.dataclass(frozen=True, eq=False)
class Interactions:
    """User-item interactions (one row per event).

    Attributes:
      users: ``[N]`` int32 user index in ``[0, n_users)``.
      items: ``[N]`` int32 item index in ``[0, n_items)``.
      n_users, n_items: sizes of the id spaces (may exceed the ids present, e.g. a test split
        shares the id space of the whole data set).
      ratings: optional ``[N]`` float32 explicit ratings (finite).
      timestamps: optional ``[N]`` int64 event times.
      user_ids, item_ids: ``[n_users]`` / ``[n_items]`` raw ids; ``user_ids[u]`` is the raw id of
        user index ``u``. Defaults to ``arange``.
      source: where the data came from (a path or a data-set name), used in error messages.
    """

    users: np.ndarray
    items: np.ndarray
    n_users: int
    n_items: int
    ratings: np.ndarray | None = None
    timestamps: np.ndarray | None = None
    user_ids: np.ndarray | None = None
    item_ids: np.ndarray | None = None
    source: str = "<memory>"

    def __post_init__(self):
        set_ = lambda k, v: object.__setattr__(self, k, v)  # noqa: E731 (frozen dataclass)
        src = self.source
        users = np.asarray(self.users)
        items = np.asarray(self.items)
        if users.ndim != 1 or items.ndim != 1 or users.shape != items.shape:
            raise JaxrecError(
                f"{src}: users and items must be 1-D arrays of equal length, got shapes {users.shape} and {items.shape}"
            )
        for name, a in (("users", users), ("items", items)):
            if a.size and not np.issubdtype(a.dtype, np.integer):
                raise JaxrecError(f"{src}: {name} must be integer indices, got dtype {a.dtype}")
        n_users, n_items = int(self.n_users), int(self.n_items)
        if n_users <= 0 or n_items <= 0:
            raise JaxrecError(f"{src}: n_users and n_items must be positive, got {n_users}, {n_items}")
        if n_users >= 2**31 or n_items >= 2**31:
            raise JaxrecError(f"{src}: more than 2^31 users or items is not supported")
        if users.size:
            for name, a, n in (("user", users, n_users), ("item", items, n_items)):
                lo, hi = int(a.min()), int(a.max())
                if lo < 0 or hi >= n:
                    bad = int(np.flatnonzero((a < 0) | (a >= n))[0])
                    raise JaxrecError(f"{src}: {name} index {int(a[bad])} at row {bad} is outside [0, {n})")
        set_("users", _frozen(users.astype(np.int32, copy=False)))
        set_("items", _frozen(items.astype(np.int32, copy=False)))
        set_("n_users", n_users)
        set_("n_items", n_items)
        if self.ratings is not None:
            r = np.asarray(self.ratings, dtype=np.float32)
            if r.shape != users.shape:
                raise JaxrecError(f"{src}: ratings has shape {r.shape}, expected {users.shape}")
            if not np.all(np.isfinite(r)):
                bad = int(np.flatnonzero(~np.isfinite(r))[0])
                raise JaxrecError(f"{src}: rating {r[bad]} at row {bad} is not finite")
            set_("ratings", _frozen(r))
        if self.timestamps is not None:
            t = np.asarray(self.timestamps)
            if t.shape != users.shape:
                raise JaxrecError(f"{src}: timestamps has shape {t.shape}, expected {users.shape}")
            if not np.issubdtype(t.dtype, np.number):
                raise JaxrecError(f"{src}: timestamps must be numeric, got dtype {t.dtype}")
            if np.issubdtype(t.dtype, np.floating) and not np.all(np.isfinite(t)):
                bad = int(np.flatnonzero(~np.isfinite(t))[0])
                raise JaxrecError(f"{src}: timestamp {t[bad]} at row {bad} is not finite")
            set_("timestamps", _frozen(t.astype(np.int64, copy=False)))
        for name, n in (("user_ids", n_users), ("item_ids", n_items)):
            ids = getattr(self, name)
            ids = np.arange(n) if ids is None else np.asarray(ids)
            if ids.shape != (n,):
                raise JaxrecError(f"{src}: {name} has shape {ids.shape}, expected ({n},)")
            set_(name, _frozen(ids))

    # ----------------------------------------------------------------------------------------
    def __len__(self) -> int:
        return int(self.users.shape[0])

    def __repr__(self) -> str:
        return (
            f"Interactions({self.source!r}, n_users={self.n_users}, n_items={self.n_items}, "
            f"n={len(self)}, ratings={self.ratings is not None}, "
            f"timestamps={self.timestamps is not None})"
        )

    @property
    def density(self) -> float:
        return len(self) / (self.n_users * self.n_items)

    @cached_property
    def user_index(self) -> dict:
        """Raw user id -> 0-based index."""
        return {k.item() if hasattr(k, "item") else k: i for i, k in enumerate(self.user_ids)}

    @cached_property
    def item_index(self) -> dict:
        """Raw item id -> 0-based index."""
        return {k.item() if hasattr(k, "item") else k: i for i, k in enumerate(self.item_ids)}

    def select(self, mask_or_index: np.ndarray) -> Interactions:
        """Rows selected by a boolean mask or an index array; the id spaces are kept."""
        sel = lambda a: None if a is None else a[mask_or_index]  # noqa: E731
        return dataclasses.replace(
            self,
            users=self.users[mask_or_index],
            items=self.items[mask_or_index],
            ratings=sel(self.ratings),
            timestamps=sel(self.timestamps),
        )

    def user_counts(self) -> np.ndarray:
        """``[n_users]`` number of rows per user."""
        return np.bincount(self.users, minlength=self.n_users)

    def item_counts(self) -> np.ndarray:
        """``[n_items]`` number of rows per item."""
        return np.bincount(self.items, minlength=self.n_items)

    def dense(self, rated: bool = False, users: np.ndarray | None = None) -> np.ndarray:
        """The user x item matrix ``[n_users, n_items]`` float32: 1 where a user has a row, 0
        elsewhere; with ``rated``, the ratings (1 for data without ratings; 0 = no row). A
        duplicated (user, item) row keeps its last rating. ``users`` selects and orders rows.

        The one dense form of the data: the GAN's user vectors, the detectors' rating matrix.
        """
        out = np.zeros((self.n_users, self.n_items), np.float32)
        out[self.users, self.items] = self.ratings if rated and self.ratings is not None else 1.0
        return out if users is None else out[np.asarray(users)]

    def csr(self) -> tuple[np.ndarray, np.ndarray]:
        """Per-user sorted item lists as CSR: ``indptr [n_users + 1]``, ``indices [N]`` (int32).

        Duplicated (user, item) rows are kept once.
        """
        key = self.users.astype(np.int64) * self.n_items + self.items
        key = np.unique(key)
        users = (key // self.n_items).astype(np.int32)
        indices = (key % self.n_items).astype(np.int32)
        indptr = np.zeros(self.n_users + 1, dtype=np.int32)
        np.cumsum(np.bincount(users, minlength=self.n_users), out=indptr[1:])
        return indptr, indices


@dataclasses.dataclass(frozen=True, eq=False)
class Split:
    """A train / (validation) / test split over one id space.

    ``valid`` is None for splits without validation (e.g. the LightGCN files). ``info`` records
    what the split did, e.g. ``{"users": 943, "users_with_test": 943, "users_train_only": 0}``,
    so reports never hide users that were kept in training only.
    """

    train: Interactions
    test: Interactions
    valid: Interactions | None = None
    info: dict = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        parts = [p for p in (self.train, self.valid, self.test) if p is not None]
        if len({(p.n_users, p.n_items) for p in parts}) != 1:
            raise JaxrecError(
                "train/valid/test must share one id space, got "
                + ", ".join(f"({p.n_users}, {p.n_items})" for p in parts)
            )
        if not np.any(self.test.user_counts() > 0):
            raise JaxrecError(f"{self.test.source}: the split leaves no user with a test item")

    @property
    def n_users(self) -> int:
        return self.train.n_users

    @property
    def n_items(self) -> int:
        return self.train.n_items
