import sys

from billing_common.runtime import run_service
from billing_demo import seed
from billing_demo.app import definition

if sys.argv[1:2] == ["seed"]:
    sys.exit(seed.main(sys.argv[2:]))
run_service(definition)
