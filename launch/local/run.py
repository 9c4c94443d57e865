"""Runs the refinement job on this machine with N worker processes (Beam's DirectRunner).

    python launch/local/run.py --num_workers=2 --input=gdr_beam/samples/pii_sample.jsonl \
        --output_dir=/tmp/gdr-out --task=pii

The DirectRunner in multi_processing mode starts N SDK worker processes and splits each stage's
input between them. The RunInference handler loads the model lazily, once per worker process,
so N processes hold N copies of the weights (2.6 GB each for the embedded model in f32 on CPU).
Flags not defined here go to pipelines.refine (its own and Beam's).
"""

from __future__ import annotations

import os
import sys

if __package__ in (None, ""):  # run as a file: make `launch` importable from the repo root
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(
        os.path.abspath(__file__)))))

from launch import common  # noqa: E402  (after the path set-up above)

OWNED = {
    "runner": "this launcher runs the DirectRunner (see launch/dataflow_* for Dataflow)",
    "direct_num_workers": "use --num_workers",
    "direct_running_mode": "it is multi_processing (in_memory and multi_threading keep one "
                           "process, hence one model, for all workers)",
}


def build_parser():
    p = common.parser(__doc__.split("\n")[0])
    p.add_argument("--num_workers", type=int, default=os.cpu_count() or 1,
                   help="worker processes, one model each (default: the CPU count, "
                   "%(default)s here)")
    p.add_argument("--memory_fraction", type=float,
                   help="on a GPU machine: the share of GPU memory each worker preallocates "
                   "(e.g. 0.45 for 2 workers); default: no preallocation when N > 1")
    return p


def main(argv) -> int:
    ns, passthrough = build_parser().parse_known_args(argv)
    common.reject_flags(passthrough, OWNED)
    if ns.num_workers < 1:
        raise common.LaunchError(f"--num_workers must be >= 1, got {ns.num_workers}")
    # Imported here: the memory rules are the engine's, but JAX is never initialised here.
    from gdr_beam.device_memory import memory_env  # pylint: disable=import-outside-toplevel
    try:
        # Worker processes inherit this environment. On CPU the variables do nothing; on a GPU
        # machine they keep N processes from each preallocating 75% of the same GPU.
        env = memory_env(ns.num_workers, fraction=ns.memory_fraction)
    except ValueError as e:
        raise common.LaunchError(str(e)) from None
    beam_args = ["--runner=DirectRunner", f"--direct_num_workers={ns.num_workers}",
                 "--direct_running_mode=multi_processing"]
    problems = [f"--{name} is missing" for name in ("input", "output_dir")
                if common.flag_value(passthrough, name) is None]
    command = common.pipeline_command(passthrough, beam_args)
    if ns.dry_run:
        print(common.json.dumps(common.dry_run_report(
            command, env=env, beam_args=beam_args, settings={}, problems=problems,
            notes=[f"{ns.num_workers} worker process(es), one model loaded in each"]),
            indent=2))
        return 0
    if problems:
        raise common.LaunchError("; ".join(problems))
    return common.execute(command, env)


if __name__ == "__main__":
    sys.exit(common.run_main(main))
