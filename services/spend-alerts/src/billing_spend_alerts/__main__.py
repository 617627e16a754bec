from billing_common.runtime import run_service
from billing_spend_alerts.app import definition

run_service(definition)
