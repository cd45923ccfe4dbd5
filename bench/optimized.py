"""Optimized (bi-level) poisoning: the known case, throughput, and large data. One JSON object per line.

  python bench/optimized.py synthetic [--steps 50] [--closed LAM]   # RevAdv's synthetic experiment, on jaxrec
  python bench/optimized.py throughput [--members 4] [--closed LAM]  # N attacks as members vs N sequential
  python bench/optimized.py gowalla [--model lightgcn|closed] [--victim-epochs N]  # at Gowalla's size

``--closed LAM`` / ``--model closed``: the closed-form (EASE) surrogate instead of a trained one.

``synthetic`` follows RevAdv's notebook (``synthetic_exp.ipynb`` of ``graytowne/revisit_adv_rec``):
1,000 users x 300 items from a rank-20 Gaussian score thresholded at 5 (about 12 % dense); the first
900 users are real (one random interaction each held out as the test item), the last 100 are the
fake users' starting profiles (the generated users' rows); target item 0. The surrogate is MF-BPR
(dim 16) trained 50 epochs from scratch at every outer step, every epoch differentiated; 50 outer
steps. Reported: per step, the surrogate's target HR@10 (the target above the 10th best non-target
item) for the profiles that step started from, as RevAdv reports; at the end, **freshly trained
victims** (MF-BPR dim 64, another seed, 50 epochs) on the clean data, on the starting fakes
(targets added) and on the optimized fakes: target HR@10 over the real users who never interacted
with the target, and test HR@10 (the held-out item in the top 10).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from common import emit, first_and_median, machine, peak_mb  # bench/ is the script's directory, on sys.path
from poisoned_victims import popular_plus_random, victims

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


def synthetic_setup(seed: int = 0):
    """RevAdv's synthetic data: ``(split over 1000 users, starting fakes [100, 300], n_real)``."""
    from jaxrec.data.synthetic import hold_out_one, low_rank

    full = low_rank(1000, 300, rank=20, threshold=5.0, seed=seed)
    n_real = 900
    split = hold_out_one(full.select(full.users < n_real), seed=seed)
    return split, full.dense()[n_real:], n_real


TARGET = 0


def _synthetic_problem(args, loss: str = "logsigmoid", kappa: float = 1.0, resample: bool = False):
    """RevAdv's synthetic case set up for the optimized attack: ``(split, start, n_real, batch,
    problem, spec, outer optimizer)``; an MF-BPR surrogate (dim 16, ``--epochs`` from scratch at
    every outer step, all differentiated) or, with ``--closed``, EASE in closed form."""
    from jaxrec.attacks import optimized as opt
    from jaxrec.attacks import outer
    from jaxrec.models import MF

    split, start, n_real = synthetic_setup(args.seed)
    slots, batch = start.shape[0], 40000
    prob, n_real_pairs = opt.problem(split.train, n_real, slots, batch, gram=args.closed > 0)
    model = None if args.closed else MF(split.n_users, split.n_items, dim=16, initializer="normal", init_std=0.1)
    spec = opt.Spec(
        model,
        "bpr",
        0.0,
        batch,
        0.05,
        args.epochs,
        0,
        False,
        10,
        loss,
        kappa,
        slots,
        split.n_items,
        n_real_pairs,
        resample,
        closed=args.closed,
    )
    return split, start, n_real, batch, prob, spec, outer.outer_optimizer(1.0, 0.95)


def synthetic(args) -> list[dict]:
    import jax
    import jax.numpy as jnp
    import numpy as np

    from jaxrec.attacks import optimized as opt

    split, start, n_real, batch, prob, spec, tx = _synthetic_problem(args, args.loss, args.kappa, args.resample)
    profile0 = start.copy()
    profile0[:, TARGET] = 0
    lengths = profile0.sum(1).astype(np.int32)
    atts = opt.members_init(
        spec,
        tx,
        prob,
        jnp.asarray(profile0)[None],
        jnp.asarray([[TARGET]]),
        jnp.asarray(lengths)[None],
        0,
        jax.random.key(args.seed + 1)[None],
    )
    rows, t0 = [], time.perf_counter()

    def on_step(step, rec):
        row = {
            "bench": "optimized-synthetic",
            "step": step,
            "outer_loss": rec["outer_loss"][0],
            "surrogate_target_hr@10": rec["surrogate_hr"][0],
            "changed": rec["changed"][0],
            "seconds": time.perf_counter() - t0,
        }
        rows.append(row)
        emit(row, args.out)

    atts, _ = opt.optimize(spec, tx, prob, atts, args.steps, on_step)
    with_target = start.copy()
    with_target[:, TARGET] = 1
    final = np.asarray(atts.profile[0])
    sets = {"starting_fakes": with_target, "optimized": final}
    result = victims(split, n_real, sets, seed=args.seed + 7, targets=[TARGET])  # MF-BPR dim 64, mini-batches
    # the surrogate's family
    same = victims(split, n_real, sets, seed=args.seed + 7, dim=16, lr=0.05, batch=batch, targets=[TARGET])
    family = "(MF dim 16)" if args.closed else "(surrogate's family)"
    result.update({f"{name} {family}": figs for name, figs in same.items()})
    row = {
        "bench": "optimized-synthetic-victims",
        "steps": args.steps,
        "epochs": args.epochs,
        "resample": args.resample,
        "closed": args.closed,
        "loss": args.loss,
        "kappa": args.kappa,
        "wall_s": time.perf_counter() - t0,
        "peak_rss_mb": round(peak_mb()),
        **{f"{name}:{k}": round(v, 4) for name, figs in result.items() for k, v in figs.items()},
        **machine(),
    }
    emit(row, args.out)
    return rows + [row]


def _synthetic_attacks(args, members: int):
    """The synthetic case's spec, problem and ``members`` stacked attacks (seeds ``0..members-1``,
    each from its own random starting filler of the same sizes)."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    from jaxrec.attacks import optimized as opt

    _, start, _, _, prob, spec, tx = _synthetic_problem(args)
    lengths = np.maximum(start.sum(1), 1).astype(np.int32)
    rng = np.random.default_rng(args.seed)
    profile0 = np.stack([np.stack([rng.permutation(row) for row in start]) for _ in range(members)])
    profile0[:, :, TARGET] = 0
    atts = opt.members_init(
        spec,
        tx,
        prob,
        jnp.asarray(profile0),
        jnp.full((members, 1), TARGET),
        jnp.tile(jnp.asarray(lengths), (members, 1)),
        0,
        jax.vmap(jax.random.key)(jnp.arange(members)),
    )
    return spec, tx, prob, atts


def throughput(args) -> dict:
    """N attacks as members of one program against the same N one after another (the synthetic
    case, compiled first; ``--steps`` timed outer steps each): wall times, their ratio, seconds
    per outer step, and the members' results against the sequential ones."""
    import jax
    import numpy as np

    from jaxrec.attacks import optimized as opt

    spec, tx, prob, atts = _synthetic_attacks(args, args.members)
    singles = [jax.tree.map(lambda x, m=m: x[m : m + 1], atts) for m in range(args.members)]
    jax.block_until_ready(opt.members_step(spec, tx, prob, atts))  # compile both programs
    jax.block_until_ready(opt.members_step(spec, tx, prob, singles[0]))
    t0 = time.perf_counter()
    together, _ = opt.optimize(spec, tx, prob, atts, args.steps)
    members_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    alone = [opt.optimize(spec, tx, prob, one, args.steps)[0] for one in singles]
    sequential_s = time.perf_counter() - t0
    same = all(np.array_equal(np.asarray(together.profile[m]), np.asarray(a.profile[0])) for m, a in enumerate(alone))
    row = {
        "bench": "optimized-throughput",
        "members": args.members,
        "steps": args.steps,
        "epochs": args.epochs,
        "closed": args.closed,
        "members_s": round(members_s, 2),
        "sequential_s": round(sequential_s, 2),
        "sequential_over_members": round(sequential_s / members_s, 3),
        "s_per_outer_step_one_attack": round(sequential_s / args.members / args.steps, 3),
        "s_per_outer_step_members": round(members_s / args.steps, 3),
        "same_profiles": same,
        "peak_rss_mb": round(peak_mb()),
        **machine(),
    }
    emit(row, args.out)
    return row


def gowalla(args) -> dict:
    """The truncated attack at Gowalla's size (RevAdv's setting: 1 % fake users, 5 unpopular
    targets, HR@50): an MF-BPR or LightGCN (segment_sum) surrogate warm-started for ``--warm``
    epochs, ``--unroll`` differentiated epochs per outer step over the ``--candidates`` most popular
    items; times the set-up, the first outer step (with compilation) and the next ones, and the
    process's peak memory."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    from jaxrec.attacks import optimized as opt
    from jaxrec.attacks import outer
    from jaxrec.attacks.poison import widen_split
    from jaxrec.config import DataConfig
    from jaxrec.data.graph import bipartite_graph
    from jaxrec.experiment import load_split
    from jaxrec.models import MF, LightGCN
    from jaxrec.models.lightgcn import lightgcn_inputs

    t0 = time.perf_counter()
    real = load_split(DataConfig(dataset="gowalla", split="predefined"))
    n_real = real.n_users
    slots = -(-n_real // 100)
    split = widen_split(real, slots)
    train = split.train
    counts = train.item_counts()
    pool = np.flatnonzero(counts > 0)
    unpopular = pool[np.argsort(counts[pool], kind="stable")][: pool.size // 2]
    targets = np.sort(np.random.default_rng(0).choice(unpopular, 5, replace=False))
    candidates = np.union1d(np.argsort(-counts, kind="stable")[: args.candidates], targets)
    inputs_of = None
    model = None  # closed: EASE's closed form, no model
    if args.model == "lightgcn":
        model = LightGCN(train.n_users, train.n_items, dim=64, layers=3, propagation="segment_sum")
        inputs_of = lambda t: lightgcn_inputs(bipartite_graph(t, "segment_sum", capacity=len(t)))  # noqa: E731
    elif args.model == "mf":
        model = MF(train.n_users, train.n_items, dim=64)
    closed = args.lam if args.model == "closed" else 0.0
    users = np.sort(np.random.default_rng(1).choice(n_real, min(args.users, n_real), replace=False))
    prob, n_real_pairs = opt.problem(train, n_real, slots, args.batch, candidates, inputs_of, users, closed > 0)
    col = np.full(train.n_items, -1)
    col[candidates] = np.arange(candidates.size)
    spec = opt.Spec(
        model,
        "bpr",
        0.0,
        args.batch,
        1e-3,
        args.warm,
        args.unroll,
        not closed,
        50,
        args.loss,
        args.kappa,
        slots,
        candidates.size,
        n_real_pairs,
        closed=closed,
    )
    tx = outer.outer_optimizer(1.0, 0.95)
    rng = np.random.default_rng(2)
    filler = int(round(len(real.train) / n_real))
    profile0 = np.zeros((1, slots, candidates.size), np.float32)
    if args.init == "bandwagon":  # among the candidates
        top10 = np.argsort(-counts[candidates], kind="stable")[:10]
        profile0[0] = popular_plus_random(rng, slots, candidates.size, top10, filler)
    else:
        for r in range(slots):
            profile0[0, r, rng.choice(candidates.size, filler, replace=False)] = 1.0
    setup_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    atts = opt.members_init(
        spec,
        tx,
        prob,
        jnp.asarray(profile0),
        jnp.asarray(col[targets])[None],
        jnp.full((1, slots), filler, jnp.int32),
        0 if closed else args.warm,
        jax.random.key(0)[None],
    )
    jax.block_until_ready(atts.profile)
    warm_s = time.perf_counter() - t0
    box, history = [atts], []

    def outer_step():
        box[0], rec = opt.optimize(spec, tx, prob, box[0], 1)
        history.extend(rec)

    first_s, later_s = first_and_median(outer_step, args.steps - 1)  # the first step compiles
    atts = box[0]
    row = {
        "bench": "optimized-gowalla",
        "model": args.model,
        "fake_users": slots,
        "candidates": int(candidates.size),
        "outer_users": args.users,
        "loss": args.loss,
        "kappa": args.kappa,
        "lam": closed,
        "init": args.init,
        "warm_epochs": args.warm,
        "unroll": args.unroll,
        "batch": args.batch,
        "setup_s": round(setup_s, 1),
        "warm_start_s": round(warm_s, 1),
        "first_step_s": round(first_s, 1),
        "later_step_s": round(later_s, 1) if later_s is not None else None,
        "surrogate_hr@50": [r["surrogate_hr"][0] for r in history],
        "peak_rss_mb": round(peak_mb()),
        **machine(),
    }
    if args.victim_epochs:
        final = np.zeros((slots, train.n_items), np.float32)
        final[:, candidates] = np.asarray(atts.profile[0])
        start = np.zeros_like(final)
        start[:, candidates] = profile0[0]
        start[:, targets] = 1.0
        # RevAdv's heuristic baseline over every item
        bandwagon = popular_plus_random(rng, slots, train.n_items, np.argsort(-counts, kind="stable")[:10], filler)
        bandwagon[:, targets] = 1.0
        t0 = time.perf_counter()
        sets = {"start": start, "bandwagon": bandwagon, "optimized": final}
        sets = {name: sets[name] for name in args.victim_sets.split(",")}
        if args.victim_config:
            from jaxrec.config import load_config

            over = [f"train.epochs={args.victim_epochs}", f"train.seed={args.victim_seed}", "train.eval_every=0"]
            cfg = load_config(args.victim_config, over)
            figs = victims(split, n_real, sets, targets=targets, k=50, cfg=cfg)
            row["victim"] = f"{args.victim_config}, {args.victim_epochs} epochs, seed {args.victim_seed}"
        else:
            seed, lr = args.victim_seed, args.victim_lr
            figs = victims(split, n_real, sets, args.victim_epochs, seed, 64, lr, 2048, targets, 50)
            row["victim"] = f"mf dim 64, {args.victim_epochs} epochs, lr {lr}, batch 2048, seed {seed}"
        row["victim_s"] = round(time.perf_counter() - t0, 1)
        row.update({f"{name}:{k}": round(v, 4) for name, f in figs.items() for k, v in f.items()})
        row["peak_rss_mb"] = round(peak_mb())
    emit(row, args.out)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("synthetic")
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--epochs", type=int, default=50)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--resample", action="store_true", help="a new surrogate seed every outer step")
    p.add_argument("--closed", type=float, default=0.0, help="> 0: the closed-form (EASE) surrogate, this L2 weight")
    p.add_argument("--loss", default="logsigmoid", help="the outer loss (logsigmoid | hr | cw | ce)")
    p.add_argument("--kappa", type=float, default=1.0)
    p.add_argument("--out", default=str(HERE / "results" / "optimized-synthetic.jsonl"))
    p = sub.add_parser("throughput")
    p.add_argument("--members", type=int, default=4)
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--epochs", type=int, default=50)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--closed", type=float, default=0.0, help="> 0: the closed-form (EASE) surrogate")
    p.add_argument("--out", default=str(HERE / "results" / "optimized-throughput.jsonl"))
    p = sub.add_parser("gowalla")
    p.add_argument("--model", choices=["mf", "lightgcn", "closed"], default="mf", help="the surrogate")
    p.add_argument("--lam", type=float, default=50.0, help="closed: EASE's L2 weight")
    p.add_argument("--loss", default="hr", help="the outer loss (logsigmoid | hr | cw | ce)")
    p.add_argument("--kappa", type=float, default=1.0)
    p.add_argument("--init", choices=["random", "bandwagon"], default="random", help="the starting profiles")
    p.add_argument("--victim-epochs", type=int, default=0, help="> 0: MF victims retrained on the fakes")
    p.add_argument("--victim-lr", type=float, default=5e-3)
    p.add_argument("--victim-seed", type=int, default=7, help="the victims' training seed (never the attacker's)")
    p.add_argument("--victim-config", help="the victims' config (e.g. configs/gowalla-lightgcn.yaml), not MF")
    p.add_argument("--victim-sets", default="start,bandwagon,optimized", help="the fake sets the victims train on")
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--warm", type=int, default=1, help="epochs before the first outer step")
    p.add_argument("--unroll", type=int, default=1)
    p.add_argument("--batch", type=int, default=16384)
    p.add_argument("--candidates", type=int, default=2000)
    p.add_argument("--users", type=int, default=5000)
    p.add_argument("--out", default=str(HERE / "results" / "optimized-gowalla.jsonl"))
    args = parser.parse_args()
    {"synthetic": synthetic, "throughput": throughput, "gowalla": gowalla}[args.cmd](args)


if __name__ == "__main__":
    main()
