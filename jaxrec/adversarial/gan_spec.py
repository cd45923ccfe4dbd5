"""The static description of a GAN run: :class:`GANSpec` (sizes, mode, losses and switches).

What each field does is in :mod:`jaxrec.adversarial.gan_steps`; values are checked here, once,
and errors name the field (the experiment layer adds the ``gan.`` section).
"""

from __future__ import annotations

import dataclasses
import functools

from jaxrec.adversarial.gan_losses import LOSSES
from jaxrec.attacks.discrete import RELAXATIONS
from jaxrec.errors import JaxrecError
from jaxrec.models.gan import RATING_HEADS, Discriminator, Generator


@dataclasses.dataclass(frozen=True)
class GANSpec:
    """Static description of a GAN run (hashable; closed over by the jitted steps).

    Attributes:
      n_items: size of a user vector.
      noise_dim: size of z (may be 0 when ``conditional``).
      conditional: CFGAN mode (condition = the user's purchase vector, masks below).
      non_saturating: G minimises ``-log D(G(z))`` instead of ``log(1 - D(G(z)))``.
      d_steps: D steps per G step (k).
      pm, pm_ratio: partial masking and the share of non-purchased items sampled into ``k_u``.
      zr, zr_ratio, zr_alpha: zero reconstruction, its sample share and weight α.
      loss, gp_weight, label_smoothing, instance_noise, feature_matching, minibatch_std, relax,
        tau, temperature, rating_levels, rating_head, length_input: the options of the module docstring (all off
        by default).
    """

    n_items: int
    noise_dim: int = 128
    g_hidden: tuple[int, ...] = (256, 512, 1024)
    d_hidden: tuple[int, ...] = (256, 512, 1024)
    dropout: float = 0.3
    conditional: bool = False
    non_saturating: bool = False
    d_steps: int = 1
    pm: bool = True
    pm_ratio: float = 0.7
    zr: bool = True
    zr_ratio: float = 0.7
    zr_alpha: float = 0.1
    loss: str = "bce"
    gp_weight: float = 10.0
    label_smoothing: float = 0.0
    instance_noise: float = 0.0
    feature_matching: float = 0.0
    minibatch_std: bool = False
    relax: str = "none"
    tau: float = 1.0
    temperature: float = 1.0
    rating_levels: int = 0
    rating_head: str = "mean"
    length_input: bool = False

    def __post_init__(self):
        # messages name the field; the experiment layer prefixes the config section
        if self.n_items < 1:
            raise JaxrecError(f"n_items must be >= 1, got {self.n_items}")
        if self.noise_dim < 0 or (self.noise_dim == 0 and not self.conditional):
            raise JaxrecError(f"noise_dim: must be >= 1 (0 is allowed only when conditional), got {self.noise_dim}")
        if self.d_steps < 1:
            raise JaxrecError(f"d_steps must be >= 1, got {self.d_steps}")
        if not 0.0 <= self.dropout < 1.0:
            raise JaxrecError(f"dropout must be in [0, 1), got {self.dropout}")
        for name in ("pm_ratio", "zr_ratio"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise JaxrecError(f"{name} must be in [0, 1], got {getattr(self, name)}")
        if self.zr_alpha < 0:
            raise JaxrecError(f"zr_alpha must be >= 0, got {self.zr_alpha}")
        for name in ("g_hidden", "d_hidden"):
            if any(h < 1 for h in getattr(self, name)):
                raise JaxrecError(f"{name}: hidden sizes must be >= 1, got {getattr(self, name)}")
        if self.loss not in LOSSES:
            raise JaxrecError(f"loss: unknown GAN loss {self.loss!r}; choose one of {list(LOSSES)}")
        if self.relax not in RELAXATIONS:
            raise JaxrecError(f"relax: unknown relaxation {self.relax!r}; choose one of {list(RELAXATIONS)}")
        if not 0.0 <= self.label_smoothing < 1.0:
            raise JaxrecError(f"label_smoothing must be in [0, 1), got {self.label_smoothing}")
        if self.label_smoothing and self.loss != "bce":
            raise JaxrecError(f"label_smoothing: applies to loss 'bce' only, got loss {self.loss!r}")
        for name in ("gp_weight", "instance_noise", "feature_matching"):
            if getattr(self, name) < 0:
                raise JaxrecError(f"{name} must be >= 0, got {getattr(self, name)}")
        for name in ("tau", "temperature"):
            if not getattr(self, name) > 0:
                raise JaxrecError(f"{name} must be > 0, got {getattr(self, name)}")
        if self.rating_head not in RATING_HEADS:
            raise JaxrecError(f"rating_head: unknown head {self.rating_head!r}; choose one of {list(RATING_HEADS)}")
        if self.rating_levels < 0 or self.rating_levels == 1:
            raise JaxrecError(f"rating_levels must be 0 (unrated) or >= 2, got {self.rating_levels}")
        if self.conditional and (self.relax != "none" or self.rating_levels or self.length_input):
            raise JaxrecError(
                "relax / rated / length_input: the discrete relaxation, rated profiles and G's length "
                "input are for the unconditional GAN (CFGAN ranks G's continuous output)"
            )

    @property
    def generator(self) -> Generator:
        return _modules(self)[0]

    @property
    def discriminator(self) -> Discriminator:
        return _modules(self)[1]


@functools.cache
def _modules(spec: GANSpec) -> tuple[Generator, Discriminator]:
    """One G and one D instance per (equal) spec: their bound ``apply`` is the static
    ``apply_fn`` of the train states, and equal states must hash equal or ``jit`` retraces."""
    return (
        Generator(spec.n_items, tuple(spec.g_hidden), spec.conditional, spec.rating_levels, spec.rating_head),
        Discriminator(tuple(spec.d_hidden), spec.dropout, spec.conditional, spec.minibatch_std),
    )
