"""Drives a running fullup service through a client that openapi-python-client generated
from docs/openapi.json: creates a site and a webhook, sends an event, and waits for its
delivery to succeed, reading it back by id with its attempts.

Usage: client_roundtrip.py PACKAGE BASE_URL RECEIVER_URL, with FULLUP_ADMIN_TOKEN and
FULLUP_WEBHOOK_SECRET (the webhook's signing secret, which the receiver checks) set and the
generated PACKAGE importable (on PYTHONPATH). Prints one JSON object with the ids it
made and the delivery's final state; exits non-zero on any unexpected answer.
"""

import importlib
import json
import os
import sys
import time

# How long the delivery may take to succeed: it is attempted at once, to a local receiver.
DEADLINE_SECONDS = 30


def expect(response, status):
    """The parsed body of `response`, which must have `status`."""
    if response.status_code != status:
        sys.exit(
            f"expected {status}, got {response.status_code}: {response.content!r}"
        )
    return response.parsed


def main():
    package, base_url, receiver_url = sys.argv[1:4]
    load = lambda name: importlib.import_module(f"{package}.{name}")  # noqa: E731
    client_module, models = load("client"), load("models")
    create_site = load("api.sites.create_site")
    create_webhook = load("api.webhooks.create_webhook")
    create_event = load("api.events.create_event")
    list_deliveries = load("api.deliveries.list_deliveries")
    get_delivery = load("api.deliveries.get_delivery")
    list_attempts = load("api.deliveries.list_attempts")

    client = client_module.AuthenticatedClient(
        base_url=base_url, token=os.environ["FULLUP_ADMIN_TOKEN"]
    )
    site = expect(
        create_site.sync_detailed(
            client=client, body=models.SiteRequest(name="generated client")
        ),
        201,
    )
    webhook = expect(
        create_webhook.sync_detailed(
            site.id,
            client=client,
            body=models.CreateWebhook(
                url=receiver_url,
                event_types=["order.*"],
                secret=os.environ["FULLUP_WEBHOOK_SECRET"],
            ),
        ),
        201,
    )
    created = expect(
        create_event.sync_detailed(
            site.id,
            client=client,
            body=models.CreateEvent(type_="order.paid", data={"order": 42}),
            idempotency_key="generated-client-1",
        ),
        202,
    )

    deadline = time.monotonic() + DEADLINE_SECONDS
    while True:
        page = expect(
            list_deliveries.sync_detailed(
                site.id, client=client, event_id=created.id
            ),
            200,
        )
        if page.data and page.data[0].state == models.DeliveryState.SUCCEEDED:
            break
        if time.monotonic() > deadline:
            sys.exit(f"the delivery of {created.id} did not succeed: {page.data!r}")
        time.sleep(0.05)

    delivery = expect(
        get_delivery.sync_detailed(site.id, page.data[0].id, client=client),
        200,
    )
    attempts = expect(
        list_attempts.sync_detailed(site.id, delivery.id, client=client),
        200,
    )
    print(
        json.dumps(
            {
                "site_id": site.id,
                "webhook_id": webhook.id,
                "event_id": created.id,
                "delivery_id": delivery.id,
                "delivery_webhook_id": delivery.webhook_id,
                "state": str(delivery.state),
                "attempt_status_codes": [a.status_code for a in attempts.data],
            }
        )
    )


if __name__ == "__main__":
    main()
