"""Runs the refinement job on Dataflow with TPU workers (default: one TPU v5e chip per worker).

    python launch/dataflow_tpu/launch.py --dry_run --input=gs://B/in/*.jsonl \
        --output_dir=gs://B/out --task=pii
    python launch/dataflow_tpu/launch.py --project=P --region=us-central1 \
        --temp_location=gs://B/tmp --input=gs://B/in/*.jsonl --output_dir=gs://B/out

Flags not defined here go to pipelines.refine (its own and Beam's). See README.md here for the
image build, the allowlist and quota, costs, and the sources of the option names.
"""

from __future__ import annotations

import os
import sys

if __package__ in (None, ""):  # run as a file: make `launch` importable from the repo root
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(
        os.path.abspath(__file__)))))

from launch import common  # noqa: E402  (after the path set-up above)

# (TPU type, topology) -> the worker machine type Dataflow requires for it, from "Dataflow
# support for TPUs" (cloud.google.com/dataflow/docs/tpu/tpu-support). Single-host only.
MACHINE_TYPES = {
    ("tpu-v5-lite-podslice", "1x1"): "ct5lp-hightpu-1t",
    ("tpu-v5-lite-podslice", "2x2"): "ct5lp-hightpu-4t",
    ("tpu-v5-lite-podslice", "2x4"): "ct5lp-hightpu-8t",
    ("tpu-v6e-slice", "1x1"): "ct6e-standard-1t",
}


def build_parser():
    p = common.parser(__doc__.split("\n")[0])
    # machine_type default None: it follows from the TPU type and topology.
    common.add_dataflow_flags(p, machine_type=None, disk_size_gb=50)
    p.add_argument("--tpu_type", default="tpu-v5-lite-podslice",
                   help="TPU type (default %(default)s, i.e. v5e)")
    p.add_argument("--topology", default="1x1",
                   help="chips of one worker, e.g. 1x1, 2x2, 2x4 (default %(default)s); the "
                   "one SDK process uses them all, data parallel (GDR_BEAM_DEVICES=all)")
    return p


def workers(ns) -> common.Workers:
    required = MACHINE_TYPES.get((ns.tpu_type, ns.topology))
    if ns.machine_type is None:
        if required is None:
            known = ", ".join(f"{t} {topo}" for t, topo in MACHINE_TYPES)
            raise common.LaunchError(
                f"no known machine type for {ns.tpu_type} {ns.topology} (known: {known}); "
                "pass --machine_type from Dataflow's TPU support table")
        machine = required
    else:
        machine = ns.machine_type
        if required is not None and machine != required:
            raise common.LaunchError(f"{ns.tpu_type} {ns.topology} requires --machine_type="
                                     f"{required}, not {machine}")
    fields = [f"type:{ns.tpu_type}", f"topology:{ns.topology}"]
    return common.Workers(
        machine_type=machine,
        service_options=(common.service_option("worker_accelerator", fields),),
        image_name="gdr-beam-tpu",
        notes=("one SDK process per worker (no_use_multiple_sdk_containers): a TPU chip is "
               "opened by one process at a time",
               "Dataflow bills TPU jobs per TPU chip-hour, not for worker CPU and memory",
               "the project must be allowlisted for Dataflow TPUs"))


def main(argv) -> int:
    return common.dataflow_main(argv, build_parser(), workers)


if __name__ == "__main__":
    sys.exit(common.run_main(main))
