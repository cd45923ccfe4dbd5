"""Fresh victims trained on poisoned data for ``bench/optimized.py``: the clean training set and
each fake set as members of one program, judged by target HR@K over the real users; and the
bandwagon-style profiles (popular items plus random filler) its baselines use."""

from __future__ import annotations

import dataclasses


def victims(
    split,
    n_real: int,
    fakes: dict,
    epochs: int = 50,
    seed: int = 7,
    dim=64,
    lr=1e-2,
    batch=2048,
    targets=None,
    k=10,
    cfg=None,
):
    """Train a fresh MF-BPR victim on the clean data and on each fake set (members of one program):
    ``{name: {"target_hr@K", "test_hr@K"}}``. ``fakes``: ``{name: [F, n_items] 0/1}``; ``targets``:
    item indices (default: item 0, the synthetic case's target). ``cfg``: the victim's own
    configuration (any model; its ``eval.ks`` replaced by ``(k,)``) instead of MF-BPR with
    ``epochs`` ... ``batch``."""
    import numpy as np

    from jaxrec.attacks.metrics import members_outcomes, target_metrics, target_ranking
    from jaxrec.config import Config, EvalConfig, ModelConfig, TrainConfig
    from jaxrec.data import concat
    from jaxrec.data.interactions import Interactions
    from jaxrec.experiment import train_members

    if cfg is None:
        cfg = Config(
            model=ModelConfig(dim=dim),
            eval=EvalConfig(ks=(k,)),
            train=TrainConfig(epochs=epochs, batch_size=batch, lr=lr, seed=seed),
        )
    else:
        cfg = dataclasses.replace(cfg, eval=dataclasses.replace(cfg.eval, ks=(k,)))
    trains = [split.train]
    for profiles in fakes.values():
        users, items = np.nonzero(profiles)
        extra = Interactions(users + n_real, items, split.n_users, split.n_items, source="fakes")
        trains.append(concat([split.train, extra], source="poisoned"))
    run = train_members([cfg] * len(trains), split, progress=False, trains=trains)
    targets = [0] if targets is None else list(targets)
    ranking = target_ranking(split.train, [split.train, split.test], targets, n_real)
    out = members_outcomes(run.training.model, run.fit.best, run.training.inputs, ranking, (k,), True)
    names = ["clean", *fakes]
    return {
        name: {
            f"target_hr@{k}": target_metrics({key: v[m] for key, v in out.items()}, ranking)[f"target_hr@{k}"],
            f"test_hr@{k}": run.metrics[m][f"hit@{k}"],
        }
        for m, name in enumerate(names)
    }


def popular_plus_random(rng, rows: int, cols: int, popular, size: int):
    """``[rows, cols]`` 0/1 bandwagon-style profiles of ``size`` items: the ``popular`` columns in
    every row, the rest drawn per row (without replacement) from the other columns."""
    import numpy as np

    out = np.zeros((rows, cols), np.float32)
    out[:, popular] = 1.0
    rest = np.setdiff1d(np.arange(cols), popular)
    for r in range(rows):
        out[r, rng.choice(rest, size - len(popular), replace=False)] = 1.0
    return out
