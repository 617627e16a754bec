from billing_common.runtime import run_service
from billing_rating.app import definition

run_service(definition)
