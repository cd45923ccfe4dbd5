"""The sharding mechanism: the 4-device checks run in a subprocess, the rest on one device."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import pytest

from jaxrec.config import load_config
from jaxrec.errors import JaxrecError
from jaxrec.train import parallel as par

HERE = Path(__file__).parent


def test_four_simulated_devices():
    """tests/train/multidevice/md_sharding.py under XLA_FLAGS=...device_count=4, in a subprocess
    (the flag must be set before JAX starts; the rest of the suite keeps one device)."""
    env = {
        **os.environ,
        "XLA_FLAGS": f"{os.environ.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count=4".strip(),
        "JAX_PLATFORMS": "cpu",
    }
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "-n0",  # one file: pyproject's 2 xdist workers would only add a second start (30 s)
            "-x",
            str(HERE / "multidevice" / "md_sharding.py"),
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=HERE.parent.parent,
        timeout=600,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    passed = re.search(r"(\d+) passed", out)
    assert passed and int(passed.group(1)) >= 6, out[-2000:]
    assert "skipped" not in out and "failed" not in out, out[-2000:]


def test_constrain_batches_is_a_no_op_without_a_mesh():
    x = jnp.zeros((3, 8, 2))
    jaxpr = jax.make_jaxpr(par.constrain_batches)({"a": x})
    assert "sharding_constraint" not in str(jaxpr)


def test_one_device_mesh_and_errors():
    mesh = par.make_mesh()
    assert dict(mesh.shape) == {"member": 1, "data": jax.device_count(), "model": 1}
    with pytest.raises(JaxrecError, match=r"a mesh of member=1 x data=\d+ x model=1 needs"):
        par.make_mesh(data=jax.device_count() + 1)
    with pytest.raises(JaxrecError, match="model and member must be >= 1"):
        par.make_mesh(model=0)
    with pytest.raises(JaxrecError, match=r"a mesh of member=2 x data=1 x model=1 needs 2"):
        par.make_mesh(data=1, member=2, devices=jax.devices()[:1])
    assert par.mesh_from_config(1, 1) is None  # the default: no mesh, the plain jit path


def test_config_sections():
    cfg = load_config(None, ["parallel.data=4", "parallel.model=2", "checkpoint.every=5", "checkpoint.keep=2"])
    assert (cfg.parallel.data, cfg.parallel.model) == (4, 2)
    assert (cfg.checkpoint.every, cfg.checkpoint.keep, cfg.checkpoint.dir) == (5, 2, None)
    with pytest.raises(JaxrecError, match="unknown config key parallel.devices"):
        load_config(None, ["parallel.devices=4"])
