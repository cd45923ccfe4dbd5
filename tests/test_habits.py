"""The habits that keep the code as it is designed: ruff (lint and format, pyproject.toml's one
configuration), import-linter's contracts (the floors; only the experiment layer and the CLI read
config; the CLI imports no study's internals), mypy on the public modules and docstrings that
cite only what exists. Each failure prints the tool's own message."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re
import subprocess
import sys
from pathlib import Path

import pytest

import jaxrec

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def _tool(name: str) -> str:
    path = BIN / name
    if not path.exists():
        pytest.fail(f"{name} is not installed next to {sys.executable}: pip install -e '.[test]'")
    return str(path)


@pytest.mark.parametrize(
    "argv",
    [["ruff", "check", "jaxrec", "tests", "bench"], ["ruff", "format", "--check", "jaxrec", "tests", "bench"]],
    ids=["ruff-check", "ruff-format"],
)
def test_ruff(argv):
    proc = subprocess.run([_tool(argv[0]), *argv[1:]], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_import_contracts():
    proc = subprocess.run([_tool("lint-imports"), "--no-cache"], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[proc.stdout.find("Contracts") :] + proc.stderr


#: the public modules a type checker holds to their hints (mypy, pyproject.toml's [tool.mypy]:
#: what they import is followed silently)
TYPED = [
    "jaxrec/__init__.py",
    "jaxrec/models/__init__.py",
    "jaxrec/models/contracts.py",
    "jaxrec/experiment/__init__.py",
    "jaxrec/experiment/models.py",
    "jaxrec/experiment/studies/__init__.py",
    "jaxrec/experiment/trained.py",
    "jaxrec/experiment/saved.py",
    "jaxrec/robustness/certificate.py",
]


def test_public_modules_type_check():
    proc = subprocess.run([_tool("mypy"), *TYPED], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


#: the wide public functions: what follows their leading data is passed by name
#: (``perturbed_metrics(model, params, inputs, data, ranking, eps=..., method=...)``)
POSITIONAL = {
    "jaxrec.robustness.strengths:perturbed_metrics": 5,
    "jaxrec.train.loop:fit": 3,
    "jaxrec.train.engine:make_engine": 2,
    "jaxrec.adversarial.gan_training:fit_gan": 3,
    "jaxrec.adversarial.gan_training:gan_engine": 1,
    "jaxrec.adversarial.gan_training:make_gan_epoch": 2,
    "jaxrec.adversarial.gan_training:realism_valid": 3,
    "jaxrec.adversarial.gan_steps:create_gan_state": 2,
}


def test_wide_public_functions_take_keywords():
    wrong = {}
    for target, most in POSITIONAL.items():
        module, name = target.split(":")
        fn = inspect.unwrap(getattr(importlib.import_module(module), name))
        kinds = [p.kind for p in inspect.signature(fn).parameters.values()]
        positional = sum(
            k in (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD) for k in kinds
        )
        if positional > most:
            wrong[target] = positional
    assert not wrong, f"positional parameters beyond the leading data: {wrong}"


ROLE = re.compile(r":(?:func|mod|class|data|meth|attr|exc):`~?([^`<]+?)(?:\(\))?`")


def _resolve(name: str, module) -> bool:
    """``name`` (absolute, or relative to ``module``: a global, or an attribute of one of its
    classes) names an object that exists."""
    name = name.lstrip(".")
    parts = name.split(".")
    if parts[0] in vars(module):
        obj = vars(module)[parts[0]]
        try:
            for p in parts[1:]:
                obj = getattr(obj, p)
            return True
        except AttributeError:
            return False
    if any(hasattr(c, parts[0]) for c in vars(module).values() if inspect.isclass(c)):
        return True
    for cut in range(len(parts), 0, -1):  # the longest importable module, then attributes
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        try:
            for p in parts[cut:]:
                obj = getattr(obj, p)
            return True
        except AttributeError:
            return False
    return False


def test_docstrings_cite_only_what_exists():
    broken = []
    for info in pkgutil.walk_packages(jaxrec.__path__, "jaxrec."):
        module = importlib.import_module(info.name)
        text = Path(module.__file__).read_text()
        for line_no, line in enumerate(text.splitlines(), start=1):
            for ref in ROLE.findall(line):
                if not _resolve(ref, module):
                    broken.append(f"{info.name}:{line_no}: {ref}")
    assert not broken, "docstrings cite what does not exist:\n" + "\n".join(broken)
