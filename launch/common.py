"""What the launchers share: settings from flags or the environment, the command line of the job,
the Dataflow flags every accelerator needs, and the --dry_run report.

Every launcher ends in the same command, `python -m pipelines.refine <pipeline flags> <Beam
flags>`, run from the repository root; --dry_run prints that command and the PipelineOptions
Beam resolves from it (as JSON) and contacts nothing. A setting that is missing or wrong is a
LaunchError: one line on stderr and exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import shlex
import subprocess
import sys
from typing import Callable, Iterable, Mapping, Optional, Sequence

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PIPELINE_MODULE = "pipelines.refine"
EXIT_USAGE = 2


class LaunchError(Exception):
    """A setting the user has to fix (a flag, an environment variable): said in one line."""


# --- settings -----------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Setting:
    value: str
    source: str  # "flag", "env:NAME", "default" or "placeholder" (dry run only)


def resolve_setting(value: Optional[str], env_names: Sequence[str], *, flag: str, what: str,
                    dry_run: bool, placeholder: str,
                    environ: Mapping[str, str] = os.environ) -> Setting:
    """A flag's value, else the first set environment variable, else (dry run only) a
    placeholder; otherwise a LaunchError that names both ways to give it."""
    if value:
        return Setting(value, "flag")
    for name in env_names:
        if environ.get(name):
            return Setting(environ[name], f"env:{name}")
    if dry_run:
        return Setting(placeholder, "placeholder")
    raise LaunchError(f"no {what}: pass --{flag}=... or set "
                      + " or ".join(f"${n}" for n in env_names))


def flag_value(args: Sequence[str], name: str) -> Optional[str]:
    """The value of --name in a pass-through argument list (`--name=v` or `--name v`; the last
    one wins, as with absl and argparse)."""
    found = None
    for i, arg in enumerate(args):
        if arg.startswith(f"--{name}="):
            found = arg.split("=", 1)[1]
        elif arg == f"--{name}" and i + 1 < len(args):
            found = args[i + 1]
    return found


def reject_flags(args: Sequence[str], names: Mapping[str, str]) -> None:
    """Refuses pass-through flags that would silently override what the launcher sets."""
    for arg in args:
        flag = arg.split("=", 1)[0].lstrip("-")
        if arg.startswith("--") and flag in names:
            raise LaunchError(f"--{flag} is set by this launcher; {names[flag]}")


# --- the command --------------------------------------------------------------------------------

def pipeline_command(pipeline_args: Sequence[str], beam_args: Sequence[str]) -> list[str]:
    return [sys.executable, "-m", PIPELINE_MODULE, *pipeline_args, *beam_args]


def resolved_pipeline_options(args: Sequence[str]) -> dict:
    """Beam's own reading of the flags: PipelineOptions(args).get_all_options(drop_default=True).

    Flags that are the job's (absl) rather than Beam's are dropped here, as Beam drops them; the
    warning Beam logs about them is silenced because it is expected.
    """
    from apache_beam.options.pipeline_options import PipelineOptions  # heavy; only when needed

    beam_logger = logging.getLogger("apache_beam.options.pipeline_options")
    level = beam_logger.level
    beam_logger.setLevel(logging.ERROR)
    try:
        options = PipelineOptions(list(args)).get_all_options(drop_default=True)
    finally:
        beam_logger.setLevel(level)
    return json.loads(json.dumps(options, default=str))


def dry_run_report(command: Sequence[str], *, env: Mapping[str, str], beam_args: Sequence[str],
                   settings: Mapping[str, Setting], problems: Sequence[str] = (),
                   notes: Sequence[str] = ()) -> dict:
    return {
        "command": list(command),
        "command_line": shlex.join(command),
        "cwd": REPO_ROOT,
        "env": dict(env),  # added to the launcher's environment for the job (and its workers)
        "beam_args": list(beam_args),
        "pipeline_options": resolved_pipeline_options(command[3:]),
        "settings": {k: dataclasses.asdict(v) for k, v in settings.items()},
        "problems": list(problems),  # what stops a real launch; empty when it would go
        "notes": list(notes),
    }


def execute(command: Sequence[str], env: Mapping[str, str]) -> int:
    """Runs the job from the repository root (so `pipelines` imports without installing)."""
    full_env = dict(os.environ, **env)
    full_env["PYTHONPATH"] = os.pathsep.join(
        p for p in (REPO_ROOT, os.environ.get("PYTHONPATH", "")) if p)
    print("+ " + shlex.join(command), file=sys.stderr, flush=True)
    return subprocess.call(list(command), cwd=REPO_ROOT, env=full_env)


def run_main(main: Callable[[Sequence[str]], int], argv: Optional[Sequence[str]] = None) -> int:
    """Calls main(argv); a LaunchError becomes one line on stderr and exit status 2."""
    try:
        return main(list(sys.argv[1:] if argv is None else argv))
    except LaunchError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_USAGE


def parser(description: str) -> argparse.ArgumentParser:
    # allow_abbrev=False: a pipeline flag such as --max_new_tokens must never be taken for an
    # abbreviation of one of ours and swallowed.
    p = argparse.ArgumentParser(description=description, allow_abbrev=False,
                                epilog="Every other flag goes to pipelines.refine (its own flags "
                                "and Beam's), e.g. --input=... --output_dir=... --task=pii.")
    p.add_argument("--dry_run", action="store_true",
                   help="print the command and the resolved PipelineOptions as JSON; run nothing")
    return p


# --- Dataflow -----------------------------------------------------------------------------------

# Set by the Dataflow launchers; a pass-through copy would fight with ours.
DATAFLOW_OWNED = {
    "runner": "it is always DataflowRunner",
    "project": "use the launcher's --project (or $GOOGLE_CLOUD_PROJECT)",
    "region": "use the launcher's --region (or $REGION)",
    "temp_location": "use the launcher's --temp_location (or $TEMP_LOCATION)",
    "sdk_container_image": "use the launcher's --image",
    "worker_machine_type": "use the launcher's --machine_type",
    "machine_type": "use the launcher's --machine_type",
    "dataflow_service_options": "the launcher builds worker_accelerator from its own flags",
    "sdk_location": "the SDK comes from the container (--sdk_location=container)",
}
REMOTE_SCHEMES = ("gs://",)


@dataclasses.dataclass(frozen=True)
class Workers:
    """What one accelerator kind contributes to the Dataflow flags."""
    machine_type: str
    service_options: tuple[str, ...]
    image_name: str  # the Artifact Registry image of the default --image
    notes: tuple[str, ...] = ()


# Runner v2 runs custom containers and accelerators. One SDK process per worker VM: it owns the
# VM's accelerators (a second JAX process would find the GPU memory preallocated, or the TPU
# already opened), and the DoFn threads of that process share one loaded model.
DATAFLOW_EXPERIMENTS = ("use_runner_v2", "no_use_multiple_sdk_containers")


def add_dataflow_flags(p: argparse.ArgumentParser, *, machine_type: str,
                       disk_size_gb: int) -> None:
    p.add_argument("--project", help="Google Cloud project (default $GOOGLE_CLOUD_PROJECT)")
    p.add_argument("--region", help="Dataflow region, e.g. us-central1 (default $REGION)")
    p.add_argument("--temp_location", help="gs:// path for Beam's temporary files "
                   "(default $TEMP_LOCATION)")
    p.add_argument("--image", help="worker container image (default $IMAGE, else "
                   "REGION-docker.pkg.dev/PROJECT/gdr-beam/<name>:latest)")
    p.add_argument("--machine_type", default=machine_type,
                   help=f"worker machine type (default {machine_type})")
    p.add_argument("--disk_size_gb", type=int, default=disk_size_gb,
                   help="worker boot disk; holds the container image (default %(default)s)")
    p.add_argument("--max_num_workers", type=int, default=2,
                   help="autoscaling ceiling; kept low by default because accelerator workers "
                   "are expensive (default %(default)s)")
    p.add_argument("--num_workers", type=int, help="initial workers (Dataflow's default if unset)")
    p.add_argument("--harness_threads", type=int,
                   help="--number_of_worker_harness_threads: DoFn threads of the one SDK "
                   "process, i.e. batches that may be on the accelerator at once")


def dataflow_main(argv: Sequence[str], p: argparse.ArgumentParser,
                  workers_from: Callable[[argparse.Namespace], Workers],
                  environ: Mapping[str, str] = os.environ) -> int:
    """Parses launcher flags, builds the Dataflow flags, then dry-runs or runs the job."""
    ns, passthrough = p.parse_known_args(argv)
    reject_flags(passthrough, DATAFLOW_OWNED)
    dry = ns.dry_run
    missing = []

    def setting(value, env_names, flag, what, placeholder):
        # Always resolves (a placeholder at worst) so every missing setting is named at once.
        try:
            return resolve_setting(value, env_names, flag=flag, what=what, dry_run=dry,
                                   placeholder=placeholder, environ=environ)
        except LaunchError as e:
            missing.append(str(e))
            return Setting(placeholder, "missing")

    project = setting(ns.project, ("GOOGLE_CLOUD_PROJECT", "CLOUDSDK_CORE_PROJECT"),
                      "project", "Google Cloud project", "my-project")
    region = setting(ns.region, ("REGION", "GOOGLE_CLOUD_REGION", "CLOUDSDK_COMPUTE_REGION"),
                     "region", "Dataflow region", "us-central1")
    temp = setting(ns.temp_location, ("TEMP_LOCATION",), "temp_location", "temp location",
                   f"gs://{project.value}-gdr-beam/tmp")
    if missing:
        raise LaunchError("; ".join(missing))
    workers = workers_from(ns)
    image = (Setting(ns.image, "flag") if ns.image
             else Setting(environ["IMAGE"], "env:IMAGE") if environ.get("IMAGE")
             # Where launch/dataflow_*/README.md pushes it: Artifact Registry in the region.
             else Setting(f"{region.value}-docker.pkg.dev/{project.value}/gdr-beam/"
                          f"{workers.image_name}:latest", "default"))

    problems = [f"--{name} is a placeholder ({s.value}); pass it or set its variable"
                for name, s in (("project", project), ("region", region),
                                ("temp_location", temp)) if s.source == "placeholder"]
    problems += _remote_path_problems(passthrough, temp.value)
    if not dry and problems:
        raise LaunchError("; ".join(problems))

    beam_args = ["--runner=DataflowRunner", f"--project={project.value}",
                 f"--region={region.value}", f"--temp_location={temp.value}",
                 f"--sdk_container_image={image.value}",
                 # The SDK installed in the image, not one staged from this machine: the
                 # launcher's Beam must then equal the image's (the Dockerfile pins it).
                 "--sdk_location=container",
                 f"--machine_type={workers.machine_type}",
                 f"--disk_size_gb={ns.disk_size_gb}", f"--max_num_workers={ns.max_num_workers}"]
    beam_args += [f"--dataflow_service_options={o}" for o in workers.service_options]
    beam_args += [f"--experiments={e}" for e in DATAFLOW_EXPERIMENTS]
    if ns.num_workers:
        beam_args.append(f"--num_workers={ns.num_workers}")
    if ns.harness_threads:
        beam_args.append(f"--number_of_worker_harness_threads={ns.harness_threads}")
    command = pipeline_command(passthrough, beam_args)
    if dry:
        settings = {"project": project, "region": region, "temp_location": temp, "image": image}
        print(json.dumps(dry_run_report(command, env={}, beam_args=beam_args,
                                        settings=settings, problems=problems,
                                        notes=workers.notes), indent=2))
        return 0
    _check_gcp_extra()
    return execute(command, env={})


def _remote_path_problems(passthrough: Sequence[str], temp_location: str) -> list[str]:
    """Dataflow workers cannot see this machine's files: inputs and outputs must be remote."""
    problems = []
    for name in ("input", "output_dir"):
        value = flag_value(passthrough, name)
        if value is None:
            problems.append(f"--{name} is missing (a gs:// path)")
        elif not value.startswith(REMOTE_SCHEMES + ("tfds://",)):
            problems.append(f"--{name}={value} is local; Dataflow workers need a gs:// path")
    if not temp_location.startswith(REMOTE_SCHEMES):
        problems.append(f"--temp_location={temp_location} must be a gs:// path")
    model = flag_value(passthrough, "model")
    if model and not model.startswith(REMOTE_SCHEMES):
        problems.append(f"--model={model} is local; give a gs:// checkpoint (workers copy it "
                        "once per machine) or omit it for the embedded default")
    return problems


def _check_gcp_extra() -> None:
    """Submitting to Dataflow needs Beam's GCP client libraries on this machine."""
    try:
        from apache_beam.runners.dataflow.internal import apiclient  # noqa: F401
    except ImportError as e:
        import apache_beam
        raise LaunchError(f"the Dataflow runner needs apache-beam[gcp] here ({e}): "
                          f"pip install 'apache-beam[gcp]=={apache_beam.__version__}'") from None


def service_option(name: str, fields: Iterable[str]) -> str:
    return f"{name}=" + ";".join(fields)
