"""target_hr@K and target_score_shift on a hand-made example; fake users never count."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest

from jaxrec.attacks.metrics import pair_outcomes, target_metrics, target_ranking
from jaxrec.data.interactions import Interactions
from jaxrec.errors import JaxrecError

# 3 real users (0, 1, 2) and one fake (3), 5 items, targets 2 and 4
SCORES = np.array(
    [
        [0.90, 0.10, 0.00, 0.50, 0.80],  # u0 trained on 2: not eligible for 2; target 4 ranks 2nd
        [0.20, 0.90, 0.70, 0.10, 0.95],  # u1 trained on 1, tested on 4: target 2 ranks 2nd (4 is not eligible)
        [0.99, 0.30, 0.85, 0.80, 0.20],  # u2 trained on 0: target 2 ranks 1st, target 4 4th
        [0.00, 0.00, 1.00, 0.00, 1.00],  # the fake user, who never rated 2 or 4: must not count
    ],
    np.float32,
)
TRAIN = Interactions(np.array([0, 1, 2, 3]), np.array([2, 1, 0, 0]), 4, 5)
TEST = Interactions(np.array([1]), np.array([4]), 4, 5)


def outcomes(scores, ks=(1, 2, 4), chunk=2):
    ranking = target_ranking(TRAIN, [TRAIN, TEST], [2, 4], n_real=3, chunk=chunk)
    out = pair_outcomes(lambda u: jnp.asarray(scores)[u], ranking.data, ks)
    p = ranking.pair_user.size
    return ranking, {k: np.asarray(v)[:p] for k, v in out.items()}


@pytest.mark.parametrize("chunk", [1, 2, 8])
def test_target_hit_ratio_and_score_shift_hand_example(chunk):
    ranking, out = outcomes(SCORES, chunk=chunk)
    # eligible pairs: target 2 -> users 1, 2; target 4 -> users 0, 2
    assert sorted(zip(ranking.pair_target.tolist(), ranking.pair_user.tolist())) == [(0, 1), (0, 2), (1, 0), (1, 2)]
    clean = out["score"] - 0.1
    m = target_metrics(out, ranking, clean)
    # target 2: HR@1 1/2, HR@2 1; target 4: HR@1 0, HR@2 1/2, HR@4 1; then the mean over targets
    assert m["target_hr@1"] == pytest.approx(0.25)
    assert m["target_hr@2"] == pytest.approx(0.75)
    assert m["target_hr@4"] == pytest.approx(1.0)
    assert m["target_score"] == pytest.approx(np.mean([(0.70 + 0.85) / 2, (0.80 + 0.20) / 2]), abs=1e-6)
    assert m["target_score_shift"] == pytest.approx(0.1, abs=1e-6)


def test_fake_users_never_count():
    """The fake user ranks both targets first; whatever its scores, the figures are those of the
    real users alone."""
    _, base = outcomes(SCORES)
    loud = SCORES.copy()
    loud[3] = [0, 0, 50, 0, 50]
    ranking, out = outcomes(loud)
    assert np.all(ranking.pair_user < 3)
    assert target_metrics(out, ranking) == target_metrics(base, ranking)


def test_every_user_interacted_with_every_target_is_a_clear_error():
    every = Interactions(np.array([0, 0]), np.array([2, 4]), 4, 5)
    with pytest.raises(JaxrecError, match="no user to measure"):
        target_ranking(TRAIN, [every], [2, 4], n_real=1)
