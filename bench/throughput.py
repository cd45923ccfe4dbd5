"""Training throughput (samples/s) against batch size: one JSON object per line on stdout.

    JAXREC_DATA_DIR=/work/shared/data python bench/throughput.py                     # one device
    python bench/throughput.py --batch-sizes 512 2048 8192 --epochs 10
    python bench/throughput.py --fake-devices 4     # + the same on 4 simulated CPU devices

A sample is one real (user, positive, sampled negative) triple; samples/s = real training pairs
per epoch / median epoch seconds (after a compile epoch; ``jaxrec.experiment.benchmarks.timed``).
Each batch size gets its own compiled epoch (the real training path: ``make_epoch`` +
``jit_epoch``, or the member engine on a mesh).

``--fake-devices N`` reruns the sweep in a subprocess with
``XLA_FLAGS=--xla_force_host_platform_device_count=N`` and batches split over an N-device
``data`` axis. That is a **functional check only**: N simulated devices share the same few CPU
cores, so its numbers measure the partitioning overhead, not scaling. Real scaling needs real
devices (GPUs/TPUs).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def sweep(config: str, batch_sizes: list[int], epochs: int, mesh_data: int, lr: float | None) -> None:
    import jax
    import numpy as np

    from jaxrec.config import load_config
    from jaxrec.experiment import build_training, load_split
    from jaxrec.experiment.benchmarks import timed
    from jaxrec.train.engine import init_tracker, make_engine
    from jaxrec.train.loop import jit_epoch
    from jaxrec.train.parallel import make_mesh
    from jaxrec.train.state import member

    cfg = load_config(config)
    split = load_split(cfg.data)
    t = cfg.train
    n_real = int(np.diff(split.train.csr()[0]).sum())
    for bs in batch_sizes:
        train = dataclasses.replace(t, batch_size=bs, lr=t.lr if lr is None else lr)
        tr = build_training(dataclasses.replace(cfg, train=train), split)
        if mesh_data > 1:  # the member engine compiled for a data-parallel mesh (one member)
            engine = make_engine(tr.epoch, 1, mesh=make_mesh(data=mesh_data))
            s0, t0_, data, _ = engine.place(tr.state, init_tracker(tr.state.params, 1, False), tr.data)
            state = (s0, t0_)

            def epoch_fn(carry, d, engine=engine):
                s, t, m = engine.epoch(*carry, d, 0)
                return (s, t), m
        else:
            state, data, epoch_fn = member(tr.state, 0), tr.data, jit_epoch(tr.epoch)
        box = [state, None]

        def one_epoch(box=box, epoch_fn=epoch_fn, data=data):
            box[0], box[1] = epoch_fn(box[0], data)
            jax.block_until_ready(box[1]["loss"])

        first, med = timed(one_epoch, epochs)  # the first epoch compiles
        m = box[1]
        print(
            json.dumps(
                {
                    "dataset": cfg.data.dataset,
                    "model": cfg.model.name,
                    "dtype": cfg.model.dtype,
                    "batch_size": bs,
                    "devices": mesh_data,
                    "epochs_timed": epochs,
                    "epoch_s_median": round(med, 5),
                    "samples_per_s": round(n_real / med),
                    "compile_s": round(first - med, 3),
                    "final_loss": round(float(np.mean(np.asarray(m["loss"]))), 5),
                    "backend": jax.default_backend(),
                    "simulated_devices": mesh_data > 1 and jax.default_backend() == "cpu",
                    "cpus": os.cpu_count(),
                    "machine": platform.machine(),
                }
            ),
            flush=True,
        )


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--config", default=os.path.join(HERE, "..", "configs", "ml100k-mf.yaml"))
    p.add_argument("--batch-sizes", type=int, nargs="+", default=[256, 512, 1024, 2048, 4096, 8192])
    p.add_argument("--epochs", type=int, default=5, help="timed epochs per batch size")
    p.add_argument("--lr", type=float, default=None, help="override train.lr")
    p.add_argument("--fake-devices", type=int, default=0, help="also run on N simulated CPU devices")
    p.add_argument("--mesh-data", type=int, default=1, help=argparse.SUPPRESS)  # used by the subprocess
    args = p.parse_args(argv)
    sweep(args.config, args.batch_sizes, args.epochs, args.mesh_data, args.lr)
    if args.fake_devices > 1:
        env = {
            **os.environ,
            "XLA_FLAGS": f"--xla_force_host_platform_device_count={args.fake_devices}",
            "JAX_PLATFORMS": "cpu",
        }
        cmd = [
            sys.executable,
            __file__,
            "--config",
            args.config,
            "--epochs",
            str(args.epochs),
            "--mesh-data",
            str(args.fake_devices),
            "--batch-sizes",
            *[str(b) for b in args.batch_sizes if b % args.fake_devices == 0],
        ]
        if args.lr is not None:
            cmd += ["--lr", str(args.lr)]
        subprocess.run(cmd, env=env, check=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
