"""Robustness of recommenders to perturbations of their parameters and of their training data.

* :mod:`~jaxrec.robustness.perturb` -- the one perturbation module (FGM, FGSM, PGD, random and
  Gaussian noise) over the model's embedding path, used by APR training
  (:mod:`jaxrec.adversarial.apr`) and by the strength curves here;
* :mod:`~jaxrec.robustness.strengths` -- :func:`perturbed_metrics`: metrics and rank stability at many
  strengths and seeds in one vmapped program;
* :mod:`~jaxrec.robustness.data_noise` -- training data with interactions dropped or added at
  random (victims retrained on them as members of one program by the experiment layer).

The study that runs them from a config, with its report, is
:mod:`jaxrec.experiment.studies.robustness`.
"""

from jaxrec.robustness.strengths import PGD, PerturbedMetrics, auto_batch, perturbed_metrics

__all__ = ["PGD", "PerturbedMetrics", "auto_batch", "perturbed_metrics"]
