"""A TFDS builder over the output of `pipelines.refine`: a named, versioned dataset.

The refined output directory already loads as is, with no code:

    import tensorflow_datasets as tfds
    ds = tfds.builder_from_directory("/tmp/gdr-out").as_dataset(split="train")

This builder is for the next step, when the refined data should become a dataset of its own:
a registered name (`tfds.load("refined_text", data_dir=...)`), a version, a fixed schema that
does not follow whatever pass-through fields an input happened to carry, and configs that
choose records. It reads the refined TFRecord shards directly (`_generate_examples`), so it
needs only the shard files and their `dataset_info.json`, which it finds in `manual_dir`:

    builder = RefinedText(config="accepted", data_dir="/tmp/tfds")
    builder.download_and_prepare(
        download_config=tfds.download.DownloadConfig(manual_dir="/tmp/gdr-out"))
    ds = builder.as_dataset(split="train")
"""

import dataclasses
import json

import tensorflow as tf
import tensorflow_datasets as tfds

# The output contract of gdr-beam: every refined example has these string fields.
# `fallback_reasons` came in 1.1.0, `segments` in 1.2.0; outputs written before a field
# existed read as "" there.
CONTRACT_FIELDS = ("id", "text", "original_sha256", "task", "model", "verdict", "changes",
                   "fallback_reasons", "segments")


@dataclasses.dataclass
class RefinedTextConfig(tfds.core.BuilderConfig):
    # Empty: keep every verdict.
    verdicts: tuple = ()


class RefinedText(tfds.core.GeneratorBasedBuilder):
    """Refined texts with their provenance; pass-through fields kept as one JSON string."""

    VERSION = tfds.core.Version("1.2.0")
    RELEASE_NOTES = {"1.0.0": "First version: contract fields, num_changes, metadata.",
                     "1.1.0": "fallback_reasons: why the model's rewrites were not used.",
                     "1.2.0": "segments: how a text too long for one reply was refined."}
    BUILDER_CONFIGS = [
        RefinedTextConfig(name="all", description="Every refined example."),
        # A fallback means the model's rewrite was rejected and the task's rule-based fallback
        # was used; "accepted" keeps only what the verifier passed.
        RefinedTextConfig(name="accepted", description="Only rewritten or unchanged examples.",
                          verdicts=("rewritten", "unchanged")),
    ]
    MANUAL_DOWNLOAD_INSTRUCTIONS = (
        "Run `python -m pipelines.refine --input=... --output_dir=DIR`, then pass DIR as "
        "`tfds.download.DownloadConfig(manual_dir=DIR)` (or `tfds build --manual_dir=DIR`).")

    def _info(self):
        features = {name: tfds.features.Text() for name in CONTRACT_FIELDS}
        features["num_changes"] = tfds.features.Scalar(dtype=tf.int32)
        features["metadata"] = tfds.features.Text()  # JSON object of pass-through fields
        # DatasetInfo directly, not dataset_info_from_configs: that one also reads README /
        # CITATIONS files next to the module, which a single-file builder does not have.
        return tfds.core.DatasetInfo(
            builder=self,
            description="Texts rewritten by gdr-beam (Generative Data Refinement).",
            features=tfds.features.FeaturesDict(features))

    def _split_generators(self, dl_manager):
        refined = tfds.builder_from_directory(str(dl_manager.manual_dir))
        return {name: self._generate_examples(list(info.filepaths))
                for name, info in refined.info.splits.items()}

    def _generate_examples(self, paths):
        for raw in tf.data.TFRecordDataset([str(p) for p in paths]).as_numpy_iterator():
            record = _decode(tf.train.Example.FromString(raw))
            if self.builder_config.verdicts and \
                    record["verdict"] not in self.builder_config.verdicts:
                continue
            try:
                changes = json.loads(record["changes"] or "[]")
            except ValueError:
                changes = []
            extra = {k: v for k, v in record.items() if k not in CONTRACT_FIELDS}
            example = {name: record.get(name, "") for name in CONTRACT_FIELDS}
            example["num_changes"] = len(changes) if isinstance(changes, list) else 0
            example["metadata"] = json.dumps(extra, sort_keys=True, ensure_ascii=False)
            yield record["id"], example  # ids are unique in a refined split


def _decode(example):
    """tf.train.Example -> {name: str | number | list}; single values unwrapped."""
    out = {}
    for name, feature in example.features.feature.items():
        kind = feature.WhichOneof("kind")
        values = list(getattr(feature, kind).value) if kind else []
        if kind == "bytes_list":
            values = [v.decode("utf-8", "replace") for v in values]
        out[name] = values[0] if len(values) == 1 else values
    return out
