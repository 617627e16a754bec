from billing_common.runtime import run_service
from billing_contracts.app import definition

run_service(definition)
