from billing_common.runtime import run_service
from billing_reporting.app import definition

run_service(definition)
