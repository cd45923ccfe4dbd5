"""jaxrec: robust recommender systems with adversarial training, in JAX/Flax.

The small public API::

    import jaxrec
    split = jaxrec.load_split(jaxrec.DataConfig(dataset="ml-100k"))   # load, clean, split
    result = jaxrec.run(jaxrec.load_config("ml100k-mf"))                # train + test + save the model
    result.metrics["recall@20"]
    model = jaxrec.load_run(result.run_dir)                            # a TrainedModel
    model.recommend([5], k=10).items                                   # raw item ids for raw user 5
    res = jaxrec.sweep(cfg, {"train.seed": [0, 1, 2, 3]})             # 4 trainings, one program
    res.summary                                                      # mean ± std over seeds
    jaxrec.run_attack(jaxrec.load_config("ml100k-attack"))
    jaxrec.full_ranking_metrics(result.model, {**result.params, **result.inputs},
                                jaxrec.split_ranking(result.split, "test"), ks=(10, 20))

Every study (``sweep``, ``robustness``, ``attack``, ``gan``) returns a :class:`StudyResult`
(``rows``, ``summary``, ``timing``, ``extras``, ``run_dir``). A flax module of your own that
follows the Recommender contract (:class:`Recommender`, or :class:`SequenceRecommender` for
history queries; both ``typing.Protocol``) becomes a ``model.name`` with
``jaxrec.register_model(name, cls)``. The package ships ``py.typed``.
"""

from jaxrec.config import Config, DataConfig, EvalConfig, ModelConfig, TrainConfig, load_config
from jaxrec.data import Interactions, Split, load_dataset
from jaxrec.errors import JaxrecError
from jaxrec.evaluate import evaluate as full_ranking_metrics
from jaxrec.evaluate import ranking_data, split_ranking
from jaxrec.experiment import (
    RunResult,
    StudyResult,
    build_model,
    load_split,
    run,
    run_attack,
    run_gan,
    run_robustness,
    run_study,
    sweep,
)
from jaxrec.experiment.trained import Recommendations, TrainedModel, load_run
from jaxrec.models import MF, MODELS, Recommender, SequenceRecommender, register_model
from jaxrec.version import __version__

__all__ = [
    "__version__",
    "Config",
    "DataConfig",
    "EvalConfig",
    "Interactions",
    "JaxrecError",
    "MF",
    "MODELS",
    "ModelConfig",
    "Recommendations",
    "Recommender",
    "RunResult",
    "SequenceRecommender",
    "Split",
    "StudyResult",
    "TrainConfig",
    "TrainedModel",
    "build_model",
    "full_ranking_metrics",
    "load_config",
    "load_dataset",
    "load_run",
    "load_split",
    "ranking_data",
    "register_model",
    "run",
    "run_attack",
    "run_gan",
    "run_robustness",
    "run_study",
    "split_ranking",
    "sweep",
]
