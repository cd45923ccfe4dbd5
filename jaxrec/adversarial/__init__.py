"""Adversarial machinery over user behaviour.

* :mod:`~jaxrec.adversarial.gan_training` -- G and D trained against each other (Goodfellow et
  al., NeurIPS 2014; conditional mode = CFGAN, Chae et al., CIKM 2018): pure jitted steps,
  ``lax.scan`` epochs, the :class:`GANState` pytree;
* :mod:`~jaxrec.adversarial.cfgan` -- the most-popular baseline CFGAN is compared with (CFGAN
  itself is trained by :func:`jaxrec.experiment.gan.train_cfgan`);
* (fake user profiles as injected, GAN and random: :mod:`jaxrec.attacks.profiles`);
* :mod:`~jaxrec.adversarial.realism` -- how real injected fakes look against held-out users;
* :mod:`~jaxrec.adversarial.detector` -- D as a fake-user detector (ROC-AUC, threshold at an FPR);
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
