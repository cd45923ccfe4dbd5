"""Robustness of recommenders to perturbations of their parameters and of their training data.

* :mod:`~jaxrec.robustness.perturb` -- the one perturbation module (FGM, FGSM, PGD, random and
  Gaussian noise) over the model's embedding path, used by APR training
  (:mod:`jaxrec.adversarial.apr`) and by the sweeps here;
* :mod:`~jaxrec.robustness.strengths` -- :func:`sweep`: metrics and rank stability at many
  strengths and seeds in one vmapped program;
* :mod:`~jaxrec.robustness.data_noise` -- training data with interactions dropped or added at
  random (victims retrained on them as members of one program by the experiment layer);
* :mod:`~jaxrec.robustness.report` -- the report's tables (markdown and rich) and plots.
"""

from jaxrec.robustness.strengths import PGD, StrengthSweep, auto_batch, sweep, sweep_chunk

__all__ = ["PGD", "StrengthSweep", "auto_batch", "sweep", "sweep_chunk"]
