"""Tensor parallelism (with and without data parallelism) on 8 virtual CPU devices.

As in test_sharding.py, XLA_FLAGS=--xla_force_host_platform_device_count only counts before JAX
creates its backend, so the checks run in a child process (this file run as a script) that
reports JSON for the tests below to judge. The model is a tiny random Gemma 3 checkpoint written
with HF transformers (sliding-window and global layers, q/k norms) with 8 heads, so every
mesh splits them.
"""

import json
import os
import subprocess
import sys
import tempfile

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
N_DEVICES = 8
MESHES = ["1x8", "2x4", "4x2"]


def _child() -> dict:
    import jax
    import numpy as np

    import gdr_beam
    from gdr_beam import sharding
    import test_architectures as arch  # this file's directory is sys.path[0]

    directory = tempfile.mkdtemp()
    hf_tok = arch._tokenizer(directory)
    vocab = -(-len(hf_tok) // N_DEVICES) * N_DEVICES  # the head splits by vocab columns
    model = arch._build("gemma3", vocab, num_attention_heads=8, num_key_value_heads=8,
                        head_dim=16, intermediate_size=128)
    model.save_pretrained(directory)

    prompts = [p for p in arch.PROMPTS] + ["Numbers like 12, 345 and 6789 appear in"]
    out = {"devices": len(jax.devices())}

    def run(m):
        return {"greedy": m.generate_ids([m.encode(p) for p in prompts], max_new_tokens=12)}

    single = gdr_beam.load_model(directory, dtype="float32", max_batch_tokens=4096)
    out["single"] = run(single)
    long_ids = single.encode(" ".join(prompts))
    out["single"]["logits"] = single.logits(long_ids).tolist()
    out["single_bytes"] = sum(x.nbytes for x in jax.tree.leaves(single.params))

    def observe(m):
        per_device = {}
        for leaf in jax.tree.leaves(m.params):
            for shard in leaf.addressable_shards:
                per_device[str(shard.device)] = per_device.get(str(shard.device), 0) + \
                    shard.data.nbytes
        caches = []
        decode = m.sampler._decode

        def spy(params, cache, state, *args, **kwargs):
            caches.append({"shape": list(cache[0].k.shape),
                           "shard": list(cache[0].k.addressable_shards[0].data.shape)})
            return decode(params, cache, state, *args, **kwargs)

        m.sampler._decode = spy
        result = run(m)
        return {**result, "per_device_bytes": per_device, "repr": repr(m),
                "mesh": dict(m.parallel.mesh.shape), "caches": caches}

    for spec in MESHES:
        out[spec] = observe(gdr_beam.load_model(directory, dtype="float32", mesh=spec,
                                                max_batch_tokens=4096))
    # Full-sequence logits too (one mesh: each costs a compile), beyond the sliding window.
    two_by_four = gdr_beam.load_model(directory, dtype="float32", mesh="2x4")
    out["2x4"]["logits"] = two_by_four.logits(long_ids).tolist()
    os.environ[sharding.MESH_ENV] = "2x4"
    out["env"] = dict(sharding.resolve_mesh().shape)
    out["env_device_wins"] = sharding.resolve_mesh(device=jax.devices()[1])
    del os.environ[sharding.MESH_ENV]
    out["cache_specs"] = {f"{kv}/{m}": list(sharding.cache_spec(kv, m))
                          for kv, m in ((8, 8), (3, 4), (4, 1))}
    errors = {}
    for name, kwargs in {"too_big": dict(mesh="4x4"), "bad": dict(mesh="2by4"),
                         "both": dict(mesh="2x4", device=jax.devices()[0])}.items():
        try:
            sharding.resolve_mesh(**kwargs)
            errors[name] = None
        except ValueError as e:
            errors[name] = str(e)
    out["errors"] = errors
    return out


@pytest.fixture(scope="module")
def child():
    env = dict(os.environ)
    env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "") +
                        f" --xla_force_host_platform_device_count={N_DEVICES}").strip()
    env["JAX_PLATFORMS"] = "cpu"
    for name in ("GDR_BEAM_DEVICES", "GDR_BEAM_MESH"):
        env.pop(name, None)
    env["PYTHONPATH"] = REPO + os.pathsep + env.get("PYTHONPATH", "")
    proc = subprocess.run([sys.executable, os.path.abspath(__file__)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-5000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("spec", MESHES)
def test_mesh_generates_what_one_device_does(child, spec):
    assert child["devices"] == N_DEVICES
    got, want = child[spec], child["single"]
    assert got["greedy"] == want["greedy"]
    assert max(map(len, want["greedy"])) >= 8


def test_mesh_logits_equal_one_device(child):
    import numpy as np
    want = np.asarray(child["single"]["logits"])
    assert want.shape[0] > 4 * 8  # longer than the sliding window
    np.testing.assert_allclose(child["2x4"]["logits"], want, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("spec", MESHES)
def test_parameters_really_split(child, spec):
    data, model = (int(x) for x in spec.split("x"))
    got = child[spec]
    assert got["mesh"] == {"data": data, "model": model}
    per_device = got["per_device_bytes"]
    assert len(per_device) == N_DEVICES
    total = child["single_bytes"]
    # Every weight matrix splits; only the norms (a few hundred floats) stay replicated.
    for nbytes in per_device.values():
        assert total / model <= nbytes <= total / model * 1.05, (nbytes, total, model)


@pytest.mark.parametrize("spec", MESHES)
def test_kv_cache_split(child, spec):
    data, model = (int(x) for x in spec.split("x"))
    caches = child[spec]["caches"]
    assert caches
    for c in caches:
        batch, kv, length, hd = c["shape"]
        assert c["shard"] == [batch // data, kv // model, length, hd], c


def test_mesh_from_environment_and_errors(child):
    assert child["env"] == {"data": 2, "model": 4}
    assert child["env_device_wins"] is None  # a named device runs alone
    # kv heads that do not divide the model axis: the cache is replicated over it.
    assert child["cache_specs"] == {"8/8": ["data", "model"], "3/4": ["data"],
                                    "4/1": ["data"]}
    errors = child["errors"]
    assert "needs 16 devices" in errors["too_big"]
    assert "DATAxMODEL" in errors["bad"]
    assert "not both" in errors["both"]


if __name__ == "__main__":
    from absl import logging as absl_logging
    absl_logging.set_verbosity(absl_logging.WARNING)
    print(json.dumps(_child()))
