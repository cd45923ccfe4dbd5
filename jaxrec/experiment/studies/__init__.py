"""Every study of jaxrec, in one shape (:mod:`~jaxrec.experiment.studies.base`).

A study is a module here with ``NAME``, ``HELP``, ``check``, ``describe``, ``run``, ``tables`` and
``write_report`` (and optionally ``RESUMABLE``, ``arguments`` / ``inputs`` for its own flags,
``footer``). :data:`STUDIES` registers it: the CLI gives each one a subcommand and runs it with
:func:`~jaxrec.experiment.studies.base.execute`; the Python API runs it the same way
(:func:`run_study`). A new study is one module and one line in :data:`STUDIES`
(``docs/architecture.md``).
"""

from __future__ import annotations

from typing import Any

from jaxrec.config import Config
from jaxrec.experiment.studies import attack, bench, certify, gan, robustness, sweep
from jaxrec.experiment.studies.base import StudyResult, execute

#: name -> study module (the ``jaxrec <name>`` subcommand)
STUDIES = {m.NAME: m for m in (sweep, gan, robustness, attack, certify, bench)}


def run_study(name: str, cfg: Config, **kwargs: Any) -> StudyResult:
    """Run the study ``name`` on ``cfg`` (:func:`~jaxrec.experiment.studies.base.execute`:
    ``base_dir``, ``progress``, ``write``, ``resume``, ``overwrite``, ``console`` and the study's
    own inputs, e.g. ``grid=`` for a sweep, ``split=`` / ``rated=`` for preloaded data)."""
    return execute(STUDIES[name], cfg, **kwargs)


__all__ = ["STUDIES", "StudyResult", "execute", "run_study"]
