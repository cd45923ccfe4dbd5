"""Members: one ``jaxrec sweep`` against sequential ``jaxrec train`` processes, scaling over the
number of members, and where a member-epoch's time goes. One JSON object per line.

  python bench/members.py sweep-vs-train --config configs/ml100k-mf.yaml --seeds 8 [--rounds 2]
  python bench/members.py scaling --config configs/ml100k-mf.yaml --members 1 4 16 64 --epochs 5
  python bench/members.py breakdown --members 1 4 8 64

``sweep-vs-train`` times whole processes (start, data, compilation, training, test evaluation)
exactly as a user runs them, alternating the two ways over ``--rounds`` rounds; the steady-state
seconds per member-epoch come from the processes' own ``metrics.json`` / ``results.json``, and the
8-seed accuracy (mean ± sample std of the test metrics) from the sweep's summary. ``scaling`` runs
each member count in a fresh process (peak resident memory, ``benchmarks.peak_rss_mb``). ``breakdown``
times, per member, what an MF-BPR epoch is made of on ml-100k (embedding tables 2,625 x 64):
the gathers and the dense scatter-add gradient of the batch, and Adam's dense update of every
table row (median of 5 calls after a compiling one, ``jaxrec.experiment.benchmarks.timed``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


def _env() -> dict:
    return {**os.environ, "JAX_PLATFORMS": os.environ.get("JAX_PLATFORMS", "cpu")}


def _machine() -> dict:
    return {"cpus": os.cpu_count(), "machine": platform.machine(), "python": platform.python_version()}


def _timed(cmd: list[str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, env=_env(), stdout=subprocess.DEVNULL)
    return time.perf_counter() - t0


def sweep_vs_train(config: str, seeds: int, rounds: int, extra: list[str]) -> None:
    jaxrec = [sys.executable, "-m", "jaxrec.cli"]
    for r in range(rounds):
        with tempfile.TemporaryDirectory() as out:
            sets = [s for x in [f"output_dir={out}", *extra] for s in ("--set", x)]
            seq = 0.0
            per_epoch = []
            for seed in range(seeds):
                seq += _timed(
                    [
                        *jaxrec,
                        "train",
                        "-q",
                        "-c",
                        config,
                        *sets,
                        "--set",
                        f"name=s{seed}",
                        "--set",
                        f"train.seed={seed}",
                    ]
                )
                per_epoch.append(
                    json.loads((Path(out) / f"s{seed}" / "metrics.json").read_text())["train_s_per_epoch_median"]
                )
            wall = _timed(
                [
                    *jaxrec,
                    "sweep",
                    "-q",
                    "-c",
                    config,
                    *sets,
                    "--set",
                    "name=sweep",
                    "--grid",
                    "train.seed=" + ",".join(map(str, range(seeds))),
                ]
            )
            res = json.loads((Path(out) / "sweep" / "results.json").read_text())
            summary = res["summary"][0]
            sweep_epoch = res["timing"]["train_s_per_epoch_median"][0]
            import statistics

            one = statistics.median(per_epoch)
            print(
                json.dumps(
                    {
                        "bench": "sweep-vs-train",
                        "config": config,
                        "overrides": extra,
                        "members": seeds,
                        "round": r,
                        "sequential_wall_s": round(seq, 2),
                        "sweep_wall_s": round(wall, 2),
                        "wall_ratio": round(seq / wall, 2),
                        "one_run_epoch_s": round(one, 4),
                        "sweep_epoch_s": round(sweep_epoch, 4),
                        "sweep_member_epoch_s": round(sweep_epoch / seeds, 4),
                        "member_epoch_vs_one_run": round(sweep_epoch / seeds / one, 3),
                        "sweep_compile_s": round(res["timing"]["compile_s"][0], 2),
                        **{k: round(v, 4) for k, v in summary.items() if k.startswith(("recall@20", "ndcg@20"))},
                        **_machine(),
                    }
                ),
                flush=True,
            )


def scaling_point(config: str, members: int, epochs: int, extra: list[str]) -> None:
    """One member count in this process (called by ``scaling`` in a fresh subprocess)."""
    import jax

    from jaxrec.config import load_config
    from jaxrec.experiment import load_split, train_members
    from jaxrec.experiment.benchmarks import peak_rss_mb

    cfg = load_config(config, [*extra, f"train.epochs={epochs}"])
    split = load_split(cfg.data)
    cfgs = [load_config(config, [*extra, f"train.epochs={epochs}", f"train.seed={s}"]) for s in range(members)]
    t0 = time.perf_counter()
    out = train_members(cfgs, split, progress=False)
    wall = time.perf_counter() - t0
    epoch = out.timing["train_s_per_epoch_median"]
    print(
        json.dumps(
            {
                "bench": "scaling",
                "config": config,
                "model": cfg.model.name,
                "members": members,
                "epochs": epochs,
                "wall_s": round(wall, 2),
                "epoch_s": round(epoch, 4),
                "member_epoch_s": round(epoch / members, 5),
                "compile_s": round(out.timing["compile_s"], 2),
                "eval_s": round(out.timing["eval_s"], 3),
                "peak_rss_mib": round(peak_rss_mb(), 1),
                "backend": jax.default_backend(),
                **_machine(),
            }
        ),
        flush=True,
    )


def breakdown(members: list[int], steps: int = 40, batch: int = 2048, dim: int = 64) -> None:
    """Per member: an MF-BPR step's gathers + dense scatter-add gradient, and Adam's dense update
    of the whole tables, each over ``steps`` steps (one epoch of ml-100k at batch 2048)."""
    import jax
    import jax.numpy as jnp
    import optax

    from jaxrec.experiment.benchmarks import timed

    rows = 943 + 1682
    tx = optax.adam(1e-3)

    def grads_only(tables, idx):
        def loss(t, i):
            u, p, n = t[i[:, 0]], t[i[:, 1]], t[i[:, 2]]
            return -jnp.mean(jax.nn.log_sigmoid(jnp.sum(u * (p - n), -1)))

        def body(acc, i):
            return acc + jax.grad(loss)(tables, i), None

        return jax.lax.scan(body, jnp.zeros_like(tables), idx)[0]

    def adam_only(tables, opt, g):
        def body(c, _):
            t, o = c
            up, o = tx.update(g, o, t)
            return (optax.apply_updates(t, up), o), None

        return jax.lax.scan(body, (tables, opt), None, length=steps)[0]

    for m in members:
        key = jax.random.key(0)
        tables = jax.random.normal(key, (m, rows, dim)) * 0.1
        idx = jax.random.randint(key, (m, steps, batch, 3), 0, rows)
        opt = jax.vmap(tx.init)(tables)
        g = jax.jit(jax.vmap(grads_only) if m > 1 else lambda t, i: grads_only(t[0], i[0])[None])
        a = jax.jit(jax.vmap(adam_only, in_axes=(0, 0, 0)))
        out = {}
        for name, fn, args in (("grads_s", g, (tables, idx)), ("adam_s", a, (tables, opt, tables))):
            # compiled by the first call, then the median of 5
            out[name] = timed(lambda fn=fn, args=args: jax.block_until_ready(fn(*args)), 5)[1] / m
        print(
            json.dumps(
                {
                    "bench": "breakdown",
                    "members": m,
                    "steps": steps,
                    "batch": batch,
                    "rows": rows,
                    "dim": dim,
                    "member_gather_scatter_grad_s": round(out["grads_s"], 5),
                    "member_adam_update_s": round(out["adam_s"], 5),
                    "table_and_moments_mib_all_members": round(3 * m * rows * dim * 4 / 2**20, 1),
                    "backend": jax.default_backend(),
                    **_machine(),
                }
            ),
            flush=True,
        )


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="what", required=True)
    a = sub.add_parser("sweep-vs-train")
    a.add_argument("--config", default=str(ROOT / "configs" / "ml100k-mf.yaml"))
    a.add_argument("--seeds", type=int, default=8)
    a.add_argument("--rounds", type=int, default=1)
    a.add_argument("--set", dest="overrides", action="append", default=[])
    b = sub.add_parser("scaling")
    b.add_argument("--config", default=str(ROOT / "configs" / "ml100k-mf.yaml"))
    b.add_argument("--members", type=int, nargs="+", default=[1, 4, 16, 64])
    b.add_argument("--epochs", type=int, default=5)
    b.add_argument("--set", dest="overrides", action="append", default=[])
    b.add_argument("--point", action="store_true", help=argparse.SUPPRESS)  # one count, this process
    c = sub.add_parser("breakdown")
    c.add_argument("--members", type=int, nargs="+", default=[1, 4, 8, 64])
    args = p.parse_args(argv)
    if args.what == "sweep-vs-train":
        sweep_vs_train(args.config, args.seeds, args.rounds, args.overrides)
    elif args.what == "scaling" and args.point:
        scaling_point(args.config, args.members[0], args.epochs, args.overrides)
    elif args.what == "scaling":
        for m in args.members:
            cmd = [
                sys.executable,
                __file__,
                "scaling",
                "--point",
                "--config",
                args.config,
                "--members",
                str(m),
                "--epochs",
                str(args.epochs),
                *[s for o in args.overrides for s in ("--set", o)],
            ]
            subprocess.run(cmd, check=True, env=_env())
    else:
        breakdown(args.members)
    return 0


if __name__ == "__main__":
    sys.exit(main())
