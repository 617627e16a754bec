"""Files the repository generates (Dockerfiles, kustomize manifests): check and write.

A generator computes `{relative path: content}`; `drift` says which files on disk
differ (as unified diffs), `write_changed` brings them up to date. Used by
`deploy/docker/generate_dockerfiles.py` and `deploy/k8s/generate.py`, whose
`--check` runs in `make lint`.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from pathlib import Path


def drift(root: Path, expected: Mapping[Path, str]) -> list[str]:
    """The unified diff of each file under `root` that differs from `expected`."""
    problems: list[str] = []
    for relative, wanted in expected.items():
        path = root / relative
        actual = path.read_text(encoding="utf-8") if path.is_file() else ""
        if actual != wanted:
            diff = difflib.unified_diff(
                actual.splitlines(keepends=True),
                wanted.splitlines(keepends=True),
                fromfile=f"{relative} (on disk)" if path.is_file() else f"{relative} (missing)",
                tofile=f"{relative} (generated)",
            )
            problems.append("".join(diff))
    return problems


def write_changed(root: Path, expected: Mapping[Path, str]) -> list[Path]:
    """Write the files that differ from `expected`; return those written."""
    written: list[Path] = []
    for relative, wanted in expected.items():
        path = root / relative
        if path.is_file() and path.read_text(encoding="utf-8") == wanted:
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(wanted, encoding="utf-8")
        written.append(relative)
    return written
