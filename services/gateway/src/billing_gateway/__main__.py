"""`python -m billing_gateway` runs the gateway; `python -m billing_gateway create-api-key …`
makes an API key (see `cli.py`)."""

import sys

from billing_common.runtime import run_service
from billing_gateway import cli
from billing_gateway.app import definition


def main(argv: list[str]) -> int:
    if not argv:
        run_service(definition)
        return 0
    return cli.main(argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
