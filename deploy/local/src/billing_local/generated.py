"""Files the repository generates (Dockerfiles, kustomize manifests): check and write.

A generator computes `{relative path: content}`; `drift` says which files on disk
differ (as unified diffs), `write_changed` brings them up to date. Used by
`deploy/docker/generate_dockerfiles.py` and `deploy/k8s/generate.py`, whose
`--check` runs in `make lint`.
"""

from __future__ import annotations

import argparse
import difflib
import sys
from collections.abc import Callable, Mapping, Sequence
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


def generator_main(
    argv: Sequence[str] | None,
    expected: Callable[[], Mapping[Path, str]],
    *,
    description: str,
    default_root: Path,
    kind: str,
    regenerate: str,
) -> int:
    """The command line every generator shares: write the files, or `--check` them.

    `kind` names the files in messages ("Dockerfiles"), `regenerate` is the command
    that rewrites them, shown when `--check` finds drift.
    """
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument(
        "--check", action="store_true", help=f"write nothing; exit 1 if {kind} differ"
    )
    parser.add_argument("--root", type=Path, default=default_root, help="where the files go")
    args = parser.parse_args(argv)
    root: Path = args.root
    files = expected()
    if args.check:
        problems = drift(root, files)
        for problem in problems:
            sys.stderr.write(problem + "\n")
        if problems:
            sys.stderr.write(f"{len(problems)} of the {kind} differ; run `{regenerate}`\n")
            return 1
        sys.stdout.write(f"{len(files)} {kind} up to date\n")
        return 0
    written = write_changed(root, files)
    for path in written:
        sys.stdout.write(f"wrote {path.as_posix()}\n")
    sys.stdout.write(f"{len(written)} written, {len(files) - len(written)} unchanged\n")
    return 0
