"""`python -m billing_local`: start the embedded stack, print its URLs, wait for a signal.

Prints `export KEY=value` lines on stdout (also written to --env-file if given),
then blocks until Ctrl-C, SIGTERM or SIGHUP and stops every server. Exits non-zero
if a server dies meanwhile.
"""

from __future__ import annotations

import argparse
import shlex
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

from billing_local.stack import EmbeddedStack, StackError

_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def _stop_on_signal(signum: int, frame: FrameType | None) -> None:
    # Later signals are ignored, so that they cannot cut the shutdown short
    # (stop() itself SIGKILLs whatever takes longer than 10 s).
    for sig in _STOP_SIGNALS:
        signal.signal(sig, signal.SIG_IGN)
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m billing_local",
        description="Start Tansu, PostgreSQL, Valkey and localstripe on free local ports.",
    )
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=Path(".local/stack"),
        help="folder for data and logs (default: .local/stack)",
    )
    parser.add_argument("--env-file", type=Path, help="also write the export lines here")
    args = parser.parse_args(argv)

    for signum in _STOP_SIGNALS:
        signal.signal(signum, _stop_on_signal)

    started = time.monotonic()
    try:
        with EmbeddedStack(args.data_dir) as stack:
            urls = stack.start()
            lines = [f"export {key}={shlex.quote(value)}" for key, value in urls.as_env().items()]
            text = "\n".join(lines) + "\n"
            if args.env_file is not None:
                args.env_file.parent.mkdir(parents=True, exist_ok=True)
                args.env_file.write_text(text)
            sys.stdout.write(text)
            sys.stdout.flush()
            print(
                f"# embedded stack up in {time.monotonic() - started:.1f}s; "
                f"logs in {stack.data_dir / 'logs'}; Ctrl-C stops it",
                file=sys.stderr,
            )
            while True:
                stack.check_alive()
                time.sleep(1.0)
    except KeyboardInterrupt:
        pass
    except StackError as exc:
        print(f"billing_local: {exc}", file=sys.stderr)
        return 1
    finally:
        if args.env_file is not None:
            args.env_file.unlink(missing_ok=True)
    print("# embedded stack stopped", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
