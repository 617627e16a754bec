from billing_common.runtime import run_service
from billing_metering.app import definition

run_service(definition)
