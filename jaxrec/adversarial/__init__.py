"""Adversarial training and adversarial generators: APR, and GANs over user behaviour.

* :mod:`~jaxrec.adversarial.apr` -- Adversarial Personalized Ranking (He et al., SIGIR 2018), a
  loss wrapper on the one engine (:data:`TRAINING_METHODS` lists the ``adv.method`` choices), and
  :mod:`~jaxrec.adversarial.vat` -- VAT's per-user strengths for it (Zhang et al., RecSys 2024);
* :mod:`~jaxrec.adversarial.windows` -- APR and VAT on a sequence model's input windows, and
  :mod:`~jaxrec.adversarial.substitution` -- Yue et al.'s mix and Dirichlet defenses (RecSys 2022);
* :mod:`~jaxrec.adversarial.gan_training` -- G and D trained against each other (Goodfellow et
  al., NeurIPS 2014; conditional mode = CFGAN, Chae et al., CIKM 2018): pure jitted steps
  (:mod:`~jaxrec.adversarial.gan_steps`, losses in :mod:`~jaxrec.adversarial.gan_losses`, the
  switches in :mod:`~jaxrec.adversarial.gan_spec`), ``lax.scan`` epochs, the :class:`GANState`
  pytree, model selection by realism or a fresh detector, D as a detector (``d_suspicion``);
* :mod:`~jaxrec.adversarial.cfgan` -- the most-popular baseline CFGAN is compared with;
* :mod:`~jaxrec.adversarial.realism` -- how real injected fakes look against held-out users;
* :mod:`~jaxrec.adversarial.fake_users` -- every kind of fake user as injected, judged against
  held-out real users (realism, D, a fresh detector).

This floor builds on :mod:`jaxrec.attacks` (profiles, the top-L discretiser, every detector) and
:mod:`jaxrec.robustness` (the perturbation module); the config-driven runs are in
:mod:`jaxrec.experiment`.
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

#: adversarial training of a recommender (``adv.method``): none, APR (:mod:`~jaxrec.adversarial.apr`)
#: or VAT, APR with per-user strengths (:mod:`~jaxrec.adversarial.vat`); for sequence models also
#: Yue et al.'s mix and Dirichlet defenses (:mod:`~jaxrec.adversarial.substitution`; APR and VAT
#: on windows: :mod:`~jaxrec.adversarial.windows`)
TRAINING_METHODS = ("none", "apr", "vat", "mix", "dirichlet")
SEQUENCE_ONLY = ("mix", "dirichlet")  #: ``adv.method`` s that need a sequence model

__all__ = [
    "SEQUENCE_ONLY",
    "TRAINING_METHODS",
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
