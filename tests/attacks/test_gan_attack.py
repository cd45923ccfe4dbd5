"""The attack study's GAN attack with a rated, stabilised G: G's own ratings are injected, the
targets pushed, the filler size kept, and D scores rated users."""

from __future__ import annotations

import dataclasses

import jax
import numpy as np

from jaxrec.attacks import profiles
from jaxrec.attacks.scenario import fake_sets, scenario
from jaxrec.attacks.shilling import KINDS
from jaxrec.config import Config, GANConfig
from jaxrec.experiment.studies.attack import _gan


def test_a_rated_gan_injects_its_own_ratings(rated_split, tmp_path):
    gan = GANConfig(
        noise_dim=4,
        g_hidden=(8,),
        d_hidden=(8,),
        dropout=0.0,
        epochs=2,
        batch_size=16,
        rated=True,
        relax="gumbel",
        rating_head="categorical",
        loss="wgan-gp",
        length_input=True,
        select="realism",
    )
    cfg = dataclasses.replace(
        Config(),
        gan=gan,
        attack=dataclasses.replace(
            Config().attack, kinds=("gan",), sizes=(4.0,), seeds=1, filler=5, n_targets=2, trusted=0.2
        ),
    )
    a = cfg.attack
    setup = scenario(rated_split, a.sizes, a.threshold, n_targets=a.n_targets, filler=a.filler, trusted=a.trusted)
    generate, suspicion = _gan(cfg, setup, tmp_path, False, lambda *a: None)
    fakes = fake_sets(setup, ("gan",), 1, a.seed, generate=generate)[("gan", 0, 4)]
    assert fakes.shape == (4, rated_split.n_items)
    t = list(setup.targets)
    np.testing.assert_array_equal(fakes[:, t], setup.stats.high)  # push
    filler = np.delete(fakes, t, axis=1)
    np.testing.assert_array_equal((filler > 0).sum(1), 5)
    assert set(np.unique(filler)) <= {0.0, 1.0, 2.0, 3.0, 4.0, 5.0}
    # the ratings are G's own draw for those items, not the average attack's
    seed = 7919 * cfg.attack.seed + KINDS.index("gan")
    binary, drawn = profiles.gan_profiles(generate, jax.random.key(seed), 4, np.full(10, 5), tuple(t), "mean")
    chosen = np.asarray(binary) > 0
    chosen[:, t] = False
    np.testing.assert_array_equal(fakes > 0, np.asarray(binary) > 0)
    np.testing.assert_array_equal(fakes[chosen], np.asarray(drawn.ratings)[chosen])
    s = suspicion(fakes)
    assert s.shape == (4,) and np.all((s >= 0) & (s <= 1))
