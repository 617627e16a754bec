"""Demo data for development, loaded through the public API like any client would.

Idempotent: each object has a fixed Idempotency-Key and external id, so running
the seed again (a second `make dev`) creates nothing new.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

import httpx

DEMO_CUSTOMERS: tuple[dict[str, str], ...] = (
    {
        "external_id": "demo-acme",
        "name": "Acme Corp",
        "email": "billing@acme.example",
        "currency": "USD",
        "timezone": "America/New_York",
    },
    {
        "external_id": "demo-globex",
        "name": "Globex GmbH",
        "email": "ap@globex.example",
        "currency": "EUR",
        "timezone": "Europe/Berlin",
    },
    {
        "external_id": "demo-initech",
        "name": "Initech KK",
        "email": "keiri@initech.example",
        "currency": "JPY",
        "timezone": "Asia/Tokyo",
    },
)


def seed(client: httpx.Client) -> list[str]:
    """Create the demo customers; return what happened to each."""
    outcomes = []
    for customer in DEMO_CUSTOMERS:
        response = client.post(
            "/v1/customers",
            json=customer,
            headers={"Idempotency-Key": f"demo-seed-{customer['external_id']}"},
        )
        if response.status_code == 201:
            outcomes.append(f"created {customer['external_id']} ({response.json()['id']})")
        elif (
            response.status_code == 409
            and response.json().get("code") == "customer_external_id_taken"
        ):
            outcomes.append(f"kept {customer['external_id']}")
        else:
            response.raise_for_status()
            raise RuntimeError(f"unexpected {response.status_code}: {response.text}")
    return outcomes


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m billing_demo seed")
    parser.add_argument("--gateway", required=True, help="e.g. http://127.0.0.1:3000")
    parser.add_argument("--api-key", required=True)
    args = parser.parse_args(argv)
    headers = {"Authorization": f"Bearer {args.api_key}"}
    with httpx.Client(base_url=args.gateway, headers=headers, timeout=30) as client:
        for outcome in seed(client):
            print(f"demo: {outcome}")  # noqa: T201 - a command-line tool's output
    return 0
