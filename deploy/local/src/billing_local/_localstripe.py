"""Run localstripe bound to one address, with its state file where we say.

`python -m localstripe` listens on all interfaces through an IPv6 socket (which
fails where IPv6 is disabled) and keeps its state in the shared file
/tmp/localstripe.pickle, rewritten on every object stored, and loaded again at the
next start: two stacks on one machine would share customers, and a test stack would
inherit the last dev session's data. This entry point serves the same aiohttp app,
with the state in `--state-file` (saved once per mutating request, atomically).

Usage: python -m billing_local._localstripe --port P [--host H] [--state-file F]
"""

from __future__ import annotations

import argparse
import logging
import os
import pickle
from collections.abc import Sequence
from pathlib import Path
from typing import Any


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="billing_local._localstripe")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--state-file", type=Path, default=None)
    args = parser.parse_args(argv)

    from aiohttp import web
    from localstripe import resources, server

    state_file: Path | None = args.state_file

    def dump_to_disk(store: Any) -> None:
        if state_file is None:
            return
        tmp = state_file.with_name(state_file.name + ".tmp")
        with tmp.open("wb") as fh:
            pickle.dump(dict(store), fh, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(tmp, state_file)

    def try_load_from_disk(store: Any) -> None:
        if state_file is None or not state_file.exists():
            return
        with state_file.open("rb") as fh:
            # The file is ours: written by this module into the stack's data dir.
            saved = pickle.load(fh)  # noqa: S301
        store.clear()
        dict.update(store, saved)

    store_cls = resources.Store
    # Plain dict writes: persistence happens once per mutating request, in
    # localstripe's own save_store_middleware, which calls dump_to_disk.
    store_cls.__setitem__ = dict.__setitem__
    store_cls.__delitem__ = dict.__delitem__
    store_cls.dump_to_disk = dump_to_disk
    store_cls.try_load_from_disk = try_load_from_disk
    resources.store.try_load_from_disk()

    access_log = logging.getLogger("aiohttp.access")
    access_log.setLevel(logging.INFO)
    access_log.addHandler(logging.StreamHandler())
    web.run_app(server.app, host=args.host, port=args.port, access_log=access_log)


if __name__ == "__main__":
    main()
