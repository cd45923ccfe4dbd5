"""CFGAN (Chae et al., CIKM 2018) as a recommender: the baseline it is compared with.

The generator is trained by the shared GAN engine (:mod:`jaxrec.adversarial.gan_training`,
conditional mode) and ranked through the :class:`jaxrec.models.gan.CFGAN` Recommender module by
the shared full-ranking evaluator; the config-driven run is
:func:`jaxrec.experiment.gans.train_cfgan`.
"""

from __future__ import annotations

import numpy as np

from jaxrec.data.interactions import Split


def most_popular_scores(split: Split) -> np.ndarray:
    """``[n_items]`` training-interaction counts: the most-popular baseline's score of every item
    (the same for every user; rank it with :func:`jaxrec.evaluate.metric_sums`)."""
    return np.bincount(split.train.items, minlength=split.n_items).astype(np.float32)
