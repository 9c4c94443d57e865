"""Runs the refinement job on Dataflow with NVIDIA GPU workers (default: one L4 per g2-standard-8).

    python launch/dataflow_gpu/launch.py --dry_run --input=gs://B/in/*.jsonl \
        --output_dir=gs://B/out --task=pii
    python launch/dataflow_gpu/launch.py --project=P --region=us-central1 \
        --temp_location=gs://B/tmp --input=gs://B/in/*.jsonl --output_dir=gs://B/out

Flags not defined here go to pipelines.refine (its own and Beam's). See README.md here for the
image build, quotas, costs and memory settings.
"""

from __future__ import annotations

import os
import sys

if __package__ in (None, ""):  # run as a file: make `launch` importable from the repo root
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(
        os.path.abspath(__file__)))))

from launch import common  # noqa: E402  (after the path set-up above)

DEFAULT_MACHINE = "g2-standard-8"
# Dataflow's GPU types (worker_accelerator type:...); L4 needs a G2 machine type.
# L4s per G2 machine type: G2 machines come with a fixed number of GPUs.
G2_GPUS = {"g2-standard-4": 1, "g2-standard-8": 1, "g2-standard-12": 1, "g2-standard-16": 1,
           "g2-standard-32": 1, "g2-standard-24": 2, "g2-standard-48": 4, "g2-standard-96": 8}
GPU_TYPES = ("nvidia-l4", "nvidia-tesla-t4", "nvidia-tesla-a100", "nvidia-a100-80gb",
             "nvidia-h100-80gb", "nvidia-tesla-v100", "nvidia-tesla-p100", "nvidia-tesla-p4")


def build_parser():
    p = common.parser(__doc__.split("\n")[0])
    common.add_dataflow_flags(p, machine_type=DEFAULT_MACHINE, disk_size_gb=50)
    p.add_argument("--gpu_type", default="nvidia-l4", choices=GPU_TYPES,
                   help="GPU model (default %(default)s)")
    p.add_argument("--gpu_count", type=int, default=1,
                   help="GPUs per worker; the one SDK process uses them all, data parallel "
                   "(the image sets GDR_BEAM_DEVICES=all). Must match the machine type.")
    return p


def workers(ns) -> common.Workers:
    if ns.gpu_count < 1:
        raise common.LaunchError(f"--gpu_count must be >= 1, got {ns.gpu_count}")
    if ns.gpu_type == "nvidia-l4" and not ns.machine_type.startswith("g2-"):
        raise common.LaunchError(f"nvidia-l4 GPUs come only with G2 machine types, not "
                                 f"{ns.machine_type} (e.g. --machine_type=g2-standard-8)")
    attached = G2_GPUS.get(ns.machine_type)
    if attached is not None and attached != ns.gpu_count:
        raise common.LaunchError(f"{ns.machine_type} has {attached} L4 GPU(s), not "
                                 f"--gpu_count={ns.gpu_count}")
    fields = [f"type:{ns.gpu_type}", f"count:{ns.gpu_count}",
              # Dataflow installs the driver on the VM and mounts it into the container.
              "install-nvidia-driver"]
    return common.Workers(
        machine_type=ns.machine_type,
        service_options=(common.service_option("worker_accelerator", fields),),
        image_name="gdr-beam-gpu",
        notes=("one SDK process per worker (no_use_multiple_sdk_containers): it owns the GPU, "
               "so the image keeps JAX's preallocation (XLA_PYTHON_CLIENT_PREALLOCATE=true, "
               "XLA_PYTHON_CLIENT_MEM_FRACTION=0.85)",
               "the engine defaults to bfloat16 on GPU"))


def main(argv) -> int:
    return common.dataflow_main(argv, build_parser(), workers)


if __name__ == "__main__":
    sys.exit(common.run_main(main))
