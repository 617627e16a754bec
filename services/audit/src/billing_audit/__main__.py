from billing_audit.app import definition
from billing_common.runtime import run_service

run_service(definition)
