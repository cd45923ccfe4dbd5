"""Adversarial machinery over user behaviour.

* :mod:`~jaxrec.adversarial.gan_training` -- G and D trained against each other (Goodfellow et
  al., NeurIPS 2014; conditional mode = CFGAN, Chae et al., CIKM 2018): pure jitted steps,
  ``lax.scan`` epochs, the :class:`GANState` pytree;
* :mod:`~jaxrec.adversarial.cfgan` -- CFGAN trained and tested as a recommender through the
  shared full-ranking evaluator;
* :mod:`~jaxrec.adversarial.profiles` -- fake user profiles as injected (GAN, random attack);
* :mod:`~jaxrec.adversarial.realism` -- how real injected fakes look against held-out users;
* :mod:`~jaxrec.adversarial.detector` -- D as a fake-user detector (ROC-AUC, threshold at an FPR);
* :mod:`~jaxrec.adversarial.gan_run` -- ``jaxrec gan`` end to end.
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
    spec_from_config,
    state_from_config,
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
    "spec_from_config",
    "state_from_config",
]
