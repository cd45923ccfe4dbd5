"""Randomized-ablation votes as one program against a Python loop over the votes (SASRec with
RecBole's defaults, 3 epochs on ml-100k, every test user's history window): the same counts, the
wall ratio, votes per second (and blocks of vmapped votes, with how many vote slots their batched
product rounds differently), and the certificate of those votes (certified HR@10 / NDCG@10
against the number of substituted items r, and the smoothed recommender's clean cost); prints one
JSON line (docs/certify.md, "Certificates against pollution").

Run: ``JAXREC_DATA_DIR=... python bench/ablation_votes.py [T]``
"""

from __future__ import annotations

import json
import sys
import time

import jax
import numpy as np

import jaxrec
from jaxrec.experiment.benchmarks import timed
from jaxrec.experiment.studies.certify_ablation import ablation_queries
from jaxrec.robustness.ablation import Ablation, ablation_votes, auto_block, loop_votes, real_lengths, sequence_scorer
from jaxrec.robustness.ablation_certificate import certified_curve, certify_ablation, smoothed_metrics

KEEP, LAST, TOP_N, ALPHA, MAX_R = 5, 50, 10, 0.001, 5


def main() -> None:
    votes = int(sys.argv[1]) if len(sys.argv) > 1 else 400
    r = jaxrec.run(jaxrec.load_config("ml100k-sasrec", ["train.epochs=3"]), progress=False, write=False)
    model, split = r.model, r.split
    _, windows, users, held = ablation_queries(split, model.max_len)
    U, n_items = windows.shape[0], split.n_items
    chunk = -(-U // 2)  # two chunks of one shape
    spec = Ablation(keep=KEEP, last=LAST, votes=votes, n_votes=TOP_N)
    score, key = sequence_scorer(model), jax.random.key(0)
    block = auto_block(chunk, n_items, votes)

    def program(v=1):
        return ablation_votes(score, r.params, windows, users, key, spec, n_items=n_items, chunk=chunk, block=v)

    calls = []  # the first call (compiles), then one timed call
    first, steady = timed(lambda: calls.append(program()), 1)
    counts, again = calls
    # the loop's one-vote program, compiled before the clock starts
    w0 = np.asarray(windows[:chunk])
    loop_votes(score, r.params, w0, users[:chunk], np.ones(chunk, bool), key, spec=spec, n_items=n_items, ts=range(1))
    t = time.perf_counter()
    looped = ablation_votes(score, r.params, windows, users, key, spec, n_items=n_items, chunk=chunk, loop=True)
    loop_s = time.perf_counter() - t
    blocks = []  # blocks of vmapped votes: compiled, then timed
    _, block_s = timed(lambda: blocks.append(program(block)), 1)
    vmapped = blocks[-1]

    cert = certify_ablation(
        counts,
        votes,
        real_lengths(windows, n_items),
        keep=KEEP,
        last=LAST,
        top_n=TOP_N,
        alpha=ALPHA,
        max_radius=MAX_R,
        held=held.astype(np.int64),
    )
    curve = certified_curve(cert.held_rank, TOP_N)
    clean = smoothed_metrics(counts, held, TOP_N)
    print(
        json.dumps(
            {
                "votes": votes,
                "users": int(U),
                "keep": KEEP,
                "last": LAST,
                "same_counts": bool(np.array_equal(counts, looped) and np.array_equal(counts, again)),
                "program_s": round(steady, 2),
                "program_first_call_s": round(first, 2),
                "loop_s": round(loop_s, 2),
                "ratio": round(loop_s / steady, 2),
                "block": block,
                "block_s": round(block_s, 2),
                "block_vote_slots_differing": int(np.abs(vmapped - counts).sum()),
                "votes_per_s": round(votes / steady, 1),
                "user_votes_per_s": round(votes * U / steady),
                "base_hit@10": round(float(r.metrics["hit@10"]), 4),
                "base_ndcg@10": round(float(r.metrics["ndcg@10"]), 4),
                "smoothed_hit@10": round(clean[f"hit@{TOP_N}"], 4),
                "smoothed_ndcg@10": round(clean[f"ndcg@{TOP_N}"], 4),
                "certified_hit@10": [round(float(x), 4) for x in curve[f"hit@{TOP_N}"]],
                "certified_ndcg@10": [round(float(x), 4) for x in curve[f"ndcg@{TOP_N}"]],
                "median_radius_of_top10": float(np.median(cert.radius)),
                "delta_r": [round(float(x), 4) for x in cert.delta[np.argmax(real_lengths(windows, n_items))]],
            }
        )
    )


if __name__ == "__main__":
    main()
