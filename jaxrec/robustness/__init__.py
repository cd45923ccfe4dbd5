"""Robustness of recommenders to perturbations of their parameters.

* :mod:`~jaxrec.robustness.perturb` -- the one perturbation module (FGM, FGSM, random noise of the
  same norm) over the model's embedding path, used by APR training
  (:mod:`jaxrec.adversarial.apr`) and by perturbed evaluation;
* :mod:`~jaxrec.robustness.sweep` -- metrics under perturbation at many strengths in one vmapped
  program.
"""
