"""``jaxrec bench``: the standard benchmark suite, one table per question, on whatever device runs it.

The suite (:data:`SUITES`; the measurements are :mod:`jaxrec.experiment.benchmarks`): training
epochs of MF / NeuMF / LightGCN with each optimizer on ml-100k, Gowalla and synthetic data of
MovieLens-20M's shape (138,493 users x 26,744 items, 1M -> 5M -> 20M pairs,
:func:`jaxrec.data.synthetic.power_law`); full ranking against the bare score product; members
1 -> 64; members on their own data variants against sequential runs; APR's epoch against a plain
one; a robustness curve of 32 strengths vmapped against a loop; the full suite also times SASRec
epochs on Amazon Games (window 50 and 200, padded against length buckets, float32 against
bfloat16, 4 seeds as members against one). ``--quick`` runs the small part
(ml-100k and 1M synthetic pairs; a few minutes on a 2-core CPU).

Writes ``results.jsonl`` (one row per measurement with the machine: device, backend, versions,
commit), ``report.md`` and PNG cost curves. ``--compare A.jsonl B.jsonl`` measures nothing: it
puts two machines' results side by side in one report (seconds of each and their ratio).
"""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import subprocess
import time
from pathlib import Path

import jax

from jaxrec.config import Config, DataConfig
from jaxrec.data.split import random_ratio
from jaxrec.data.synthetic import power_law
from jaxrec.errors import JaxrecError
from jaxrec.experiment import benchmarks as B
from jaxrec.experiment.data import load_split
from jaxrec.experiment.output import atomic_write, start
from jaxrec.experiment.report import Table, markdown_report, plot_curves
from jaxrec.experiment.studies.base import StudyResult, say
from jaxrec.train.rowwise import OPTIMIZERS
from jaxrec.version import __version__

NAME = "bench"
HELP = "benchmark training, ranking, members and sweeps on this machine (--quick: a few minutes)"
DEFAULTS = "the standard suite"
ML20M_SHAPE = (138_493, 26_744)  #: users x items of MovieLens-20M, the synthetic sets' shape


@dataclasses.dataclass(frozen=True)
class Suite:
    """What one run of the suite measures."""

    datasets: tuple[str, ...]  #: ml-100k, gowalla, or synthetic pair counts as "synthetic-<pairs>"
    epoch_models: dict  #: data -> [(model, optimizers)]
    ranking_models: dict  #: data -> [models]
    members: tuple[int, ...]
    variants: int
    apr_models: tuple[str, ...]
    strengths: int
    repeats: int
    sequences: tuple = ()  #: sequence data sets (SASRec epochs: lengths x batching x dtype, members)


_ALL = tuple(OPTIMIZERS)
SUITES = {
    "quick": Suite(
        datasets=("ml-100k", "synthetic-1000000"),
        epoch_models={
            "ml-100k": [("mf", _ALL), ("neumf", ("adam",)), ("lightgcn", ("adam",))],
            "synthetic-1000000": [("mf", _ALL)],
        },
        ranking_models={"ml-100k": ["mf", "lightgcn"], "synthetic-1000000": ["mf"]},
        members=(1, 4, 16),
        variants=4,
        apr_models=("mf", "lightgcn"),
        strengths=32,
        repeats=2,
    ),
    "full": Suite(
        datasets=("ml-100k", "gowalla", "synthetic-1000000", "synthetic-5000000", "synthetic-20000000"),
        epoch_models={
            "ml-100k": [("mf", _ALL), ("neumf", _ALL), ("lightgcn", ("adam", "lazy_adam"))],
            "gowalla": [("mf", _ALL), ("lightgcn", ("adam",))],
            "synthetic-1000000": [("mf", _ALL), ("lightgcn", ("adam",))],
            "synthetic-5000000": [("mf", _ALL)],
            "synthetic-20000000": [("mf", _ALL)],
        },
        ranking_models={
            "ml-100k": ["mf", "neumf", "lightgcn"],
            "gowalla": ["mf", "lightgcn"],
            "synthetic-1000000": ["mf"],
            "synthetic-5000000": ["mf"],
            "synthetic-20000000": ["mf"],
        },
        members=(1, 4, 16, 64),
        variants=8,
        apr_models=("mf", "neumf", "lightgcn"),
        strengths=32,
        repeats=3,
        sequences=("amazon-games",),
    ),
}
SUITES["sequences"] = dataclasses.replace(
    SUITES["full"], datasets=(), epoch_models={}, ranking_models={}, apr_models=(), repeats=1
)
BATCH = {"ml-100k": 2048, "gowalla": 2048}  #: batch size per data set; synthetic: 8192


@dataclasses.dataclass
class Plan:
    suite: str
    compare: tuple[Path, ...]


def arguments(parser) -> None:
    parser.add_argument("--quick", action="store_true", help="the small suite (ml-100k and 1M synthetic pairs)")
    parser.add_argument(
        "--sequences", action="store_true", help="only the full suite's sequence-model cases (SASRec on Amazon Games)"
    )
    parser.add_argument(
        "--compare",
        nargs=2,
        metavar="RESULTS.jsonl",
        help="measure nothing: one report of two machines' results.jsonl side by side",
    )


def inputs(args) -> dict:
    return {"quick": args.quick, "compare": tuple(args.compare or ()), "sequences": args.sequences}


def check(cfg: Config, base_dir=".", quick: bool = False, compare: tuple = (), sequences: bool = False) -> Plan:
    paths = tuple(Path(p) for p in compare)
    for p in paths:
        if not p.is_file():
            raise JaxrecError(f"--compare: {p} is not a file (give two results.jsonl of `jaxrec bench`)")
    if quick and sequences:
        raise JaxrecError("--quick and --sequences are two different suites: give one")
    return Plan("quick" if quick else "sequences" if sequences else "full", paths)


def describe(cfg: Config, plan: Plan) -> str:
    if plan.compare:
        return f"comparing {plan.compare[0]} with {plan.compare[1]}"
    return f"the {plan.suite} suite on {machine()['device']}"


def machine() -> dict:
    """The device, backend, versions and commit every row carries."""
    import flax

    dev = jax.devices()[0]
    try:
        here = Path(__file__).resolve().parent
        commit = subprocess.run(
            ["git", "-C", str(here), "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=5
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = ""
    return {
        "device": f"{dev.platform}:{getattr(dev, 'device_kind', '')}",
        "devices": jax.device_count(),
        "backend": jax.default_backend(),
        "cpus": os.cpu_count(),
        "arch": platform.machine(),
        "jax": jax.__version__,
        "flax": flax.__version__,
        "jaxrec": __version__,
        "commit": commit or "unknown",
    }


def _split(name: str):
    if name.startswith("synthetic-"):
        inter = power_law(*ML20M_SHAPE, int(name.split("-")[1]), seed=0)
        return random_ratio(inter, (0.8, 0.1, 0.1), seed=0)
    return load_split(DataConfig(dataset=name, split="predefined" if name == "gowalla" else "random"))


def run(cfg: Config, plan: Plan, progress: bool = True, console=None, resume: bool = False) -> StudyResult:
    t0 = time.time()
    if plan.compare:
        rows = [
            dict(json.loads(line), source=str(p))
            for p in plan.compare
            for line in p.read_text().splitlines()
            if line.strip()
        ]
        return StudyResult(NAME, cfg, rows, [], {"wall_s": time.time() - t0}, extras=plan)
    log = say(console, progress)
    suite, rows, info = SUITES[plan.suite], [], machine()

    def add(new):
        for r in new if isinstance(new, list) else [new]:
            rows.append({**r, "machine": info})
            log(_line(r))

    for data in suite.datasets:
        split = _split(data)
        batch = BATCH.get(data, 8192)
        for model, optimizers in suite.epoch_models.get(data, []):
            for opt in optimizers:
                add(B.epoch_case(data, split, model, batch, opt, suite.repeats))
        for model in suite.ranking_models.get(data, []):
            add(B.ranking_case(data, split, model, suite.repeats))
        if data == "ml-100k":
            add(B.members_case(data, split, "mf", batch, list(suite.members), suite.repeats))
            add(B.variants_case(data, split, "mf", batch, suite.variants, suite.repeats))
            for model in suite.apr_models:
                add(B.apr_case(data, split, model, batch, suite.repeats))
            add(B.strengths_case(data, split, "mf", suite.strengths, suite.repeats))
        del split
    for data in suite.sequences:
        split = load_split(DataConfig(dataset=data, split="leave_one_out"), sequential=True)
        for max_len in (50, 200):
            for bucketed in (False, True):
                for dtype in ("float32", "bfloat16"):
                    add(B.sequence_case(data, split, max_len, bucketed, dtype, suite.repeats))
        add(B.sequence_members_case(data, split, 4, suite.repeats))
    return StudyResult(NAME, cfg, rows, [], {"wall_s": time.time() - t0}, extras=plan)


def _line(r: dict) -> str:
    keys = [
        k
        for k in ("data", "model", "optimizer", "members", "strengths", "perturb_at", "max_len", "batching", "dtype")
        if k in r
    ]
    what = " ".join(str(r[k]) for k in keys)
    extra = next((f"{k} {r[k]:.2f}" for k in ("overhead", "speedup", "us_per_pair", "tokens_per_s") if k in r), "")
    return f"{r['case']}: {what}: {r['seconds']:.3f} s {extra}"


def _fmt(v, digits=3) -> str:
    if isinstance(v, float):
        return f"{v:.{digits}g}" if abs(v) < 1e-2 else f"{v:.{digits}f}"
    return str(v)


#: per case: the columns that identify a row, then the measured ones
COLUMNS = {
    "epoch": (["data", "model", "optimizer", "pairs", "batch"], ["seconds", "us_per_pair", "peak_rss_mb"]),
    "ranking": (["data", "model", "users", "items"], ["seconds", "bare_seconds", "overhead"]),
    "members": (["data", "model", "members"], ["seconds", "member_epoch_s", "speedup"]),
    "variants": (["data", "model", "members"], ["seconds", "sequential_seconds", "speedup"]),
    "apr": (["data", "model", "perturb_at"], ["seconds", "plain_seconds", "overhead"]),
    "strengths": (["data", "model", "strengths"], ["seconds", "sequential_seconds", "speedup"]),
    "sequence": (
        ["data", "model", "max_len", "batching", "dtype", "tokens"],
        ["seconds", "tokens_per_s", "peak_rss_mb"],
    ),
}
#: what a row written before a key existed measured (results files of older commits)
KEY_DEFAULTS = {"perturb_at": "tables"}


def _key(row: dict, key: str, missing=None):
    return row.get(key, KEY_DEFAULTS.get(key, missing))


TITLES = {
    "epoch": "training epoch (median seconds)",
    "ranking": "full ranking vs the bare score product",
    "members": "seeds as members of one program (speedup vs separate epochs)",
    "variants": "members on their own data variants vs sequential runs",
    "apr": "APR epoch vs plain epoch",
    "strengths": "robustness strengths vmapped vs a loop",
    "sequence": "sequence-model epoch (SASRec-BCE, median seconds, real tokens/s)",
}


def tables(result: StudyResult) -> list[Table]:
    if isinstance(result.extras, Plan) and result.extras.compare:
        return _compare_tables(result)
    out = []
    for case, (keys, vals) in COLUMNS.items():
        rs = [r for r in result.rows if r["case"] == case]
        if rs:
            out.append(Table(TITLES[case], keys + vals, [[_fmt(_key(r, k, "-")) for k in keys + vals] for r in rs]))
    return out


def _source_labels(result: StudyResult) -> dict[str, str]:
    """``{results file: its column label}`` for ``--compare``: the device, and when both files come
    from the same kind of device (one machine before and after a change), its commit too, or else
    the file's name."""
    paths = [str(p) for p in result.extras.compare]
    info = {p: next((r["machine"] for r in result.rows if r["source"] == p), {}) for p in paths}
    label = {p: str(info[p].get("device", p)) for p in paths}
    if len(set(label.values())) < len(paths):
        commits = {p: info[p].get("commit") for p in paths}
        distinct = len(set(commits.values())) == len(paths) and all(commits.values())
        label = {p: f"{label[p]} ({commits[p] if distinct else p})" for p in paths}
    return label


def _compare_tables(result: StudyResult) -> list[Table]:
    """Per case, each row's seconds on the two machines and their ratio (first / second)."""
    a, b = result.extras.compare
    label = _source_labels(result)
    out = []
    for case, (keys, _) in COLUMNS.items():
        found: dict = {}
        for r in result.rows:
            if r["case"] == case:
                found.setdefault(tuple(_key(r, k) for k in keys if k not in ("users", "batch")), {})[r["source"]] = r
        rows = []
        for key, by in found.items():
            sa, sb = (by.get(str(p), {}).get("seconds") for p in (a, b))
            ratio = f"{sa / sb:.2f}" if sa and sb else "-"
            rows.append([*map(str, key), _fmt(sa) if sa else "-", _fmt(sb) if sb else "-", ratio])
        if rows:
            head = [k for k in keys if k not in ("users", "batch")]
            out.append(Table(f"{TITLES[case]}: seconds", [*head, label[str(a)], label[str(b)], "ratio"], rows))
    return out


def footer(result: StudyResult) -> str:
    return f"{len(result.rows)} measurements in {result.timing['wall_s']:.0f} s"


def write_report(result: StudyResult, run_dir) -> None:
    """``results.jsonl``, ``report.md`` and the cost curves."""
    start(result.config, NAME)
    lines = "".join(json.dumps(r) + "\n" for r in result.rows)
    atomic_write(Path(run_dir) / "results.jsonl", lines)
    plots = _plots(result, Path(run_dir))
    info = result.rows[0]["machine"] if result.rows else {}
    intro = [f"Machine: `{json.dumps(info)}`." if info else "", footer(result) + "."]
    text = markdown_report(f"Benchmark: {result.config.name}", intro, tables(result), plots, result.timing)
    atomic_write(Path(run_dir) / "report.md", text)


def _plots(result: StudyResult, run_dir: Path) -> list[Path]:
    """Seconds per epoch against training pairs (one curve per data family, model and
    optimizer; with --compare, per machine too) and member-epoch seconds against members."""
    labels = _source_labels(result) if isinstance(result.extras, Plan) and result.extras.compare else {}
    tag = (lambda r: labels[r["source"]]) if labels else (lambda r: "")
    out = []
    epochs = [
        {
            "pairs": r["pairs"],
            "curve": " ".join(filter(None, [tag(r), r["model"], r["optimizer"]])),
            "seconds_mean": r["seconds"],
            "seconds_std": 0.0,
        }
        for r in result.rows
        if r["case"] == "epoch" and r["data"].startswith("synthetic")
    ]
    if len({e["pairs"] for e in epochs}) > 1:
        out.append(
            plot_curves(
                epochs,
                "pairs",
                "seconds",
                ["curve"],
                run_dir / "cost_epoch_vs_pairs.png",
                "epoch seconds vs training pairs (synthetic, ML-20M shape)",
                log=True,
            )
        )
    members = [
        {
            "members": r["members"],
            "curve": " ".join(filter(None, [tag(r), r["model"]])),
            "member_epoch_s_mean": r["member_epoch_s"],
            "member_epoch_s_std": 0.0,
        }
        for r in result.rows
        if r["case"] == "members"
    ]
    if len({m["members"] for m in members}) > 1:
        out.append(
            plot_curves(
                members,
                "members",
                "member_epoch_s",
                ["curve"],
                run_dir / "cost_member_epoch_vs_members.png",
                "seconds per member-epoch vs members",
                log=True,
            )
        )
    return out
