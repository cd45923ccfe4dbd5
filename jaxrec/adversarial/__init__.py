"""Adversarial machinery over user behaviour.

* :mod:`~jaxrec.adversarial.gan_training` -- G and D trained against each other (Goodfellow et
  al., NeurIPS 2014; conditional mode = CFGAN, Chae et al., CIKM 2018): pure jitted steps
  (:mod:`~jaxrec.adversarial.gan_steps`, losses in :mod:`~jaxrec.adversarial.gan_losses`, the
  switches in :mod:`~jaxrec.adversarial.gan_spec`), ``lax.scan`` epochs, the :class:`GANState`
  pytree, model selection by realism or a fresh detector;
* :mod:`~jaxrec.adversarial.discrete` -- the one top-L discretiser and the straight-through /
  Gumbel relaxations D judges G's profiles through;
* :mod:`~jaxrec.adversarial.cfgan` -- the most-popular baseline CFGAN is compared with (CFGAN
  itself is trained by :func:`jaxrec.experiment.gan.train_cfgan`);
* (fake user profiles as injected, GAN and random: :mod:`jaxrec.attacks.profiles`);
* :mod:`~jaxrec.adversarial.realism` -- how real injected fakes look against held-out users;
* :mod:`~jaxrec.adversarial.detector` -- D as a fake-user detector (ROC-AUC, threshold at an FPR);
* :mod:`~jaxrec.adversarial.fresh_detector` -- a classifier trained after the fact on real users
  vs fakes (cross-validated ROC-AUC);
(``jaxrec gan`` end to end, reading the config, is :mod:`jaxrec.experiment.gan`.)
"""

from jaxrec.adversarial.gan_training import (
    GANBatch,
    GANData,
    GANSpec,
    GANState,
    create_gan_state,
    fit_gan,
    gan_data,
    make_d_step,
    make_g_step,
    make_gan_epoch,
    make_gan_step,
)

__all__ = [
    "GANBatch",
    "GANData",
    "GANSpec",
    "GANState",
    "create_gan_state",
    "fit_gan",
    "gan_data",
    "make_d_step",
    "make_g_step",
    "make_gan_epoch",
    "make_gan_step",
]
