"""Where a benchmark's JSON goes besides stdout: one writer for every script here.

Imported as a sibling module (`python benchmarks/X.py` puts this folder on sys.path).
"""

import json
import os


def save_json(result: dict, path, indent: int = 2) -> None:
    """Writes `result` to `path` (its folder created), if a path was given."""
    if not path:
        return
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        f.write(json.dumps(result, indent=indent) + "\n")
