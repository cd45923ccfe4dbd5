"""``jaxrec gan``'s printed tables and per-epoch line (the numbers come from
:mod:`jaxrec.experiment.gan` and :mod:`jaxrec.experiment.gan_fakes`)."""

from __future__ import annotations


def epoch_line(r: dict) -> str:
    """One epoch's line: D's scores, the losses, and the realism / validation figures it has."""
    parts = [
        f"epoch {r['epoch']}",
        f"D(real) {r['d_real']:.3f}",
        f"D(fake) {r['d_fake']:.3f}",
        f"d_loss {r['d_loss']:.4f}",
        f"g_loss {r['g_loss']:.4f}",
    ]
    if "realism/popularity_jsd" in r:
        parts += [f"JSD {r['realism/popularity_jsd']:.3f}", f"nn-cos {r['realism/nn_cosine']:.3f}"]
    if "valid/realism" in r:
        parts.append(f"valid gap {-r['valid/realism']:.3f}")
    if "valid/recall@20" in r:
        parts.append(f"valid recall@20 {r['valid/recall@20']:.4f}")
    return " | ".join(parts)


REALISM_ROWS = ("popularity_jsd", "length_ks", "nn_cosine", "diversity", "rating_jsd")


def results_tables(result, title: str) -> list:
    """rich Tables: D's scores, realism of every kind of fake user against the real users, D and
    the fresh detector; or CFGAN's ranking."""
    from rich.table import Table

    m = result.metrics
    if result.spec.conditional:
        from jaxrec.experiment.training import results_table

        d = Table(title=f"{title}: D on G's users (last epoch, training batches)")
        for c in ("D(real)", "D(fake)", "d_loss", "g_loss"):
            d.add_column(c, justify="right")
        d.add_row(*(f"{m[k]:.4f}" for k in ("d_real", "d_fake", "d_loss", "g_loss")))
        return [results_table({k: v for k, v in m.items() if "@" in k}, title=f"{title}: test"), d]
    kinds = [k[len("realism_") :] for k in m if k.startswith("realism_") and k != "realism_real"]
    sel = m["selection"]
    d = Table(title=f"{title}: D's probability of 'real' (mean; G and D of epoch {sel['epoch']}, {sel['criterion']})")
    d.add_column("users")
    d.add_column("D(x)", justify="right")
    rows = [
        ("held-out real (reference)", "d_real_reference"),
        ("held-out real (calibration)", "d_real_calibration"),
        ("G(z), raw [0,1]", "d_gan_raw"),
    ] + [(f"{k} profiles", f"d_{k}_profiles") for k in kinds]
    for name, key in rows:
        d.add_row(name, f"{m[key]:.4f}")
    r = Table(
        title=f"{title}: realism vs {m['n_reference_users']} held-out real users "
        "(nn_cosine, diversity: closest to the real column is best)"
    )
    r.add_column("figure")
    for k in kinds:
        r.add_column(k, justify="right")
    r.add_column("real (calibration)", justify="right")
    for row in REALISM_ROWS:
        if row in m["realism_real"]:
            r.add_row(row, *(f"{m[f'realism_{k}'][row]:.4f}" for k in [*kinds, "real"]))
    det = Table(
        title=f"{title}: detectors (fresh: {len(m[f'fresh_{kinds[0]}']['auc_folds'])}-fold ROC-AUC vs "
        f"reference users; D's threshold: {m['fpr_target']:.0%} FPR on calibration users)"
    )
    det.add_column("figure")
    for k in kinds:
        det.add_column(f"{k} fakes", justify="right")
    det.add_row("fresh detector auc", *(f"{m[f'fresh_{k}']['auc']:.4f}" for k in kinds))
    for row in ("auc", "precision", "recall", "fpr"):
        det.add_row(f"D {row}", *(f"{m[f'detector_{k}'][row]:.4f}" for k in kinds))
    return [d, r, det]
