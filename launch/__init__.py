"""Launchers for the refinement job: local multi-process, Dataflow with GPU or TPU workers.

Run from the repository root (`python launch/<target>/...`): the launchers build flags and
start `python -m pipelines.refine`; they are not part of the installed package.
"""
