"""Accelerator-only code paths, run on CPU with 4 virtual devices.

XLA_FLAGS=--xla_force_host_platform_device_count=4 only counts if it is set before JAX creates
its backend, which other tests in the pytest process have long done; so the checks run in a
child process (this file run as a script) and report JSON, which the tests below judge.

Covered: device selection in load_model (default, an explicit device), data-parallel
generation over all local devices (outputs equal to one device's, arrays really split across
the 4 devices, parameters replicated), device argument errors, and the memory-fraction
environment handling (must be set before JAX initialises; explicit values win).
"""

import json
import os
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
N_DEVICES = 4


# --- the child ----------------------------------------------------------------------------------

def _child() -> dict:
    """Runs in a fresh process with 4 CPU devices; returns observations, asserts nothing."""
    from gdr_beam import device_memory as dm

    out = {}
    # Before any JAX computation: the memory settings take.
    out["applied_before_init"] = dm.apply_memory_env({dm.PREALLOCATE: "false"})
    out["initialized_before"] = dm.backend_initialized()

    import jax
    import gdr_beam
    from gdr_beam import sharding

    devices = jax.devices()
    out["devices"] = [str(d) for d in devices]
    out["initialized_after"] = dm.backend_initialized()
    try:
        dm.apply_memory_env({dm.MEM_FRACTION: ".5"})
        out["late_apply"] = "accepted"
    except RuntimeError as e:
        out["late_apply"] = str(e)
    # Re-applying what is already in effect is not a change, so it is fine after init too.
    out["late_noop"] = dm.apply_memory_env({dm.PREALLOCATE: "false"})

    errors = {}
    for name, kwargs in {"both": dict(device=devices[0], devices="all"),
                         "word": dict(devices="some"), "empty": dict(devices=[]),
                         "twice": dict(devices=[devices[1], devices[1]])}.items():
        try:
            sharding.resolve_devices(**kwargs)
            errors[name] = None
        except ValueError as e:
            errors[name] = str(e)
    out["errors"] = errors
    out["resolved_list"] = [str(d) for d in sharding.resolve_devices(
        devices=[devices[3], devices[1]])]
    os.environ[sharding.DEVICES_ENV] = "all"  # what the accelerator images set
    out["env_all"] = len(sharding.resolve_devices())
    out["env_all_explicit_device"] = [str(d) for d in sharding.resolve_devices(devices[1])]
    del os.environ[sharding.DEVICES_ENV]
    out["env_unset"] = [str(d) for d in sharding.resolve_devices()]

    def placement(model):
        leaves = jax.tree.leaves(model.params)
        return {"device_sets": sorted({tuple(sorted(str(d) for d in x.sharding.device_set))
                                       for x in leaves}),
                "replicated": all(x.sharding.is_fully_replicated for x in leaves)}

    prompts = ["The capital of France is", "1, 1, 2, 3, 5, 8,",
               "def add(a, b):\n    return", "Q: What is 12 * 12?\nA:",
               "Once upon a time, in a small village by the sea, there lived",
               "SELECT name, email FROM users WHERE"]
    chat = None

    def run_all(model):
        nonlocal chat
        chat = chat or [model.apply_chat_template([{"role": "user", "content": "Say hello."}])]
        return {
            "greedy6": model.generate(prompts, max_new_tokens=16),
            "greedy3": model.generate(prompts[:3], max_new_tokens=16),
            "greedy1": model.generate(prompts[4:5], max_new_tokens=16),
            "sampled": model.generate(prompts[:4], max_new_tokens=12, temperature=0.9,
                                      top_p=0.95, seed=[5, 6, 7, 8]),
            "stop": model.generate(prompts[1:2] + chat, max_new_tokens=24, stop=[" 21,"]),
        }

    default = gdr_beam.load_model()
    out["default"] = {"device": str(default.device), **placement(default),
                      "outputs": run_all(default)}

    third = gdr_beam.load_model(device=devices[2])
    out["third"] = {"device": str(third.device), **placement(third),
                    "outputs": {"greedy6": third.generate(prompts, max_new_tokens=16)}}

    spread = gdr_beam.load_model(devices="all")
    seen = []
    decode = spread.sampler._decode

    def spying_decode(params, cache, state, *args, **kwargs):
        # What decode receives is what prefill (or the previous chunk) produced.
        for name, x in (("cache_k", cache[0].k), ("tokens", state.tokens),
                        ("done", state.done), ("keys", state.keys)):
            seen.append({"name": name, "shape": list(x.shape),
                         "devices": len(x.sharding.device_set),
                         "shard_rows": sorted({s.data.shape[0] for s in x.addressable_shards}),
                         "replicated": x.sharding.is_fully_replicated})
        return decode(params, cache, state, *args, **kwargs)

    spread.sampler._decode = spying_decode
    out["spread"] = {"devices": [str(d) for d in spread.devices], **placement(spread),
                     "repr": repr(spread), "outputs": run_all(spread), "seen": seen}
    return out


# --- the tests ----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def child():
    env = dict(os.environ)
    env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "") +
                        f" --xla_force_host_platform_device_count={N_DEVICES}").strip()
    env["JAX_PLATFORMS"] = "cpu"
    env.pop("XLA_PYTHON_CLIENT_PREALLOCATE", None)
    env.pop("XLA_PYTHON_CLIENT_MEM_FRACTION", None)
    env.pop("GDR_BEAM_DEVICES", None)
    env["PYTHONPATH"] = REPO + os.pathsep + env.get("PYTHONPATH", "")
    proc = subprocess.run([sys.executable, os.path.abspath(__file__)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-5000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_four_virtual_devices(child):
    assert len(child["devices"]) == N_DEVICES


def test_memory_env_only_before_jax_initialises(child):
    assert child["applied_before_init"] == {"XLA_PYTHON_CLIENT_PREALLOCATE": "false"}
    assert not child["initialized_before"] and child["initialized_after"]
    assert "already initialised" in child["late_apply"]
    assert "XLA_PYTHON_CLIENT_MEM_FRACTION" in child["late_apply"]
    assert child["late_noop"] == {}


def test_default_device_is_the_first(child):
    assert child["default"]["device"] == child["devices"][0]
    assert child["default"]["device_sets"] == [[child["devices"][0]]]


def test_explicit_device_is_used(child):
    third = child["third"]
    assert third["device"] == child["devices"][2]
    assert third["device_sets"] == [[child["devices"][2]]]
    assert third["outputs"]["greedy6"] == child["default"]["outputs"]["greedy6"]


def test_all_devices_generate_what_one_device_does(child):
    spread, default = child["spread"], child["default"]
    for name, texts in default["outputs"].items():
        assert spread["outputs"][name] == texts, name
    assert any(t.strip() for t in default["outputs"]["greedy6"])


def test_params_replicated_on_all_devices(child):
    spread = child["spread"]
    assert spread["devices"] == child["devices"]
    assert spread["device_sets"] == [sorted(child["devices"])]
    assert spread["replicated"]
    assert f"{N_DEVICES} x cpu" in spread["repr"]


def test_batch_arrays_split_across_devices(child):
    seen = child["spread"]["seen"]
    assert {s["name"] for s in seen} == {"cache_k", "tokens", "done", "keys"}
    for s in seen:
        assert s["devices"] == N_DEVICES, s
        assert not s["replicated"], s
        assert s["shape"][0] % N_DEVICES == 0, s  # padded to a multiple of the device count
        assert s["shard_rows"] == [s["shape"][0] // N_DEVICES], s
    # The single-prompt call still ran on all 4 devices (a batch of 4, one row each).
    assert min(s["shape"][0] for s in seen) == N_DEVICES


def test_device_argument_errors(child):
    errors = child["errors"]
    assert "not both" in errors["both"]
    assert "'all'" in errors["word"]
    assert "empty" in errors["empty"]
    assert "twice" in errors["twice"]
    assert child["resolved_list"] == [child["devices"][3], child["devices"][1]]


def test_devices_env_of_the_images(child):
    assert child["env_all"] == N_DEVICES
    assert child["env_all_explicit_device"] == [child["devices"][1]]  # an argument wins
    assert child["env_unset"] == [child["devices"][0]]


# --- memory env rules (pure; no JAX needed) -------------------------------------------------

def test_memory_env_rules():
    from gdr_beam import device_memory as dm
    assert dm.memory_env(1, environ={}) == {}
    assert dm.memory_env(2, environ={}) == {dm.PREALLOCATE: "false"}
    assert dm.memory_env(3, fraction=0.3, environ={}) == {dm.MEM_FRACTION: "0.3"}
    # An explicit setting wins, and is checked.
    assert dm.memory_env(4, environ={dm.MEM_FRACTION: ".2"}) == {}
    with pytest.raises(ValueError, match="fraction of device memory"):
        dm.memory_env(2, environ={dm.MEM_FRACTION: "75"})
    with pytest.raises(ValueError, match="true or false"):
        dm.check_memory_env({dm.PREALLOCATE: "maybe"})
    with pytest.raises(ValueError, match="exceeds"):
        dm.memory_env(4, fraction=0.5, environ={})
    with pytest.raises(ValueError, match=">= 1"):
        dm.memory_env(0, environ={})


if __name__ == "__main__":
    from absl import logging as absl_logging
    absl_logging.set_verbosity(absl_logging.WARNING)
    print(json.dumps(_child()))
