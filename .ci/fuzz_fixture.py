#!/usr/bin/env python3
"""The fixture `.ci/fuzz` runs schemathesis against, created over the API.

Usage: fuzz_fixture.py BASE_URL OWNER_JWT OUT_DIR

Creates, as the owner: a tenant, a second member (an agent), an assistant, a contact, a
conversation with a message and its feedback, a `full` API key, a webhook endpoint (to a
closed loopback port) with one test delivery, a provider secret for `test`, a limit
reservation, an invitation, and a contact known by a WhatsApp id. Writes
OUT_DIR/schemathesis.toml, which pins every path parameter to one of these ids (so
generated requests reach real rows, not only 404s), and OUT_DIR/key with the API key's
secret. Standard library only.
"""

import json
import sys
import time
import urllib.error
import urllib.request
import uuid


# Left out of the fuzzing: they would delete, deactivate or lock the fixture's rows.
EXCLUDED = [
    ("DELETE", "/v1/tenants/{tenant}"),
    ("PATCH", "/v1/tenants/{tenant}"),
    ("DELETE", "/v1/tenants/{tenant}/api-keys/{id}"),
    ("DELETE", "/v1/tenants/{tenant}/members/{user_id}"),
    ("PATCH", "/v1/tenants/{tenant}/members/{user_id}"),
    ("DELETE", "/v1/tenants/{tenant}/assistants/{id}"),
    ("DELETE", "/v1/tenants/{tenant}/contacts/{id}"),
    ("DELETE", "/v1/tenants/{tenant}/conversations/{id}"),
    ("DELETE", "/v1/tenants/{tenant}/webhook-endpoints/{id}"),
    ("POST", "/v1/tenants/{tenant}/messages/{id}/redact"),
]


def call(base, token, method, path, body=None):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(base + path, data=data, method=method)
    request.add_header("Authorization", "Bearer " + token)
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            text = response.read()
    except urllib.error.HTTPError as error:
        sys.exit(f"fixture: {method} {path} -> {error.code}: {error.read()[:500]!r}")
    return json.loads(text) if text else None


def main():
    base, token, out = sys.argv[1], sys.argv[2], sys.argv[3]
    post = lambda path, body: call(base, token, "POST", path, body)  # noqa: E731

    tenant = post("/v1/tenants", {"slug": "fuzz-fixture", "name": "Fuzz fixture"})["id"]
    t = f"/v1/tenants/{tenant}"
    agent = str(uuid.uuid4())
    post(f"{t}/members", {"user_id": agent, "role": "agent", "email": "agent@example.com"})
    assistant = post(f"{t}/assistants", {"name": "Fuzz assistant"})["id"]
    contact = post(f"{t}/contacts", {"name": "Fuzz contact", "phone": "+628111234567"})["id"]
    conversation = post(
        f"{t}/conversations", {"assistant_id": assistant, "contact_id": contact, "title": "Fuzz"}
    )["id"]
    message = post(
        f"{t}/conversations/{conversation}/messages",
        {"role": "assistant", "content": "Hello", "cost_usd": "0.0008", "prompt_tokens": 10},
    )["id"]
    call(base, token, "PUT", f"{t}/messages/{message}/feedback", {"rating": 1})
    key = post(f"{t}/api-keys", {"name": "fuzz", "scopes": ["full"]})
    endpoint = post(
        f"{t}/webhook-endpoints",
        {"url": "http://127.0.0.1:9/fuzz", "event_types": ["message.created"]},
    )["id"]
    post(f"{t}/webhook-endpoints/{endpoint}/test", None)
    delivery = None
    for _ in range(50):
        page = call(base, token, "GET", f"{t}/webhook-endpoints/{endpoint}/deliveries")
        if page["data"]:
            delivery = page["data"][0]["id"]
            break
        time.sleep(0.2)
    if delivery is None:
        sys.exit("fixture: the test delivery was not recorded")
    call(base, token, "PUT", f"{t}/provider-secrets/test", {"secret": "whsec_" + "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="})
    reservation = post(
        f"{t}/limits/check", {"prompt_tokens": 10, "completion_tokens": 10, "reserve": True}
    )["reservation"]["id"]
    invitation = post(f"{t}/invitations", {"email": "invitee@example.com", "role": "agent"})["id"]
    # A contact known by its WhatsApp id, for the upsert by channel.
    whatsapp = "628111234999"
    call(base, token, "PUT", f"{t}/contacts/by-channel/whatsapp/{whatsapp}", {"name": "Fuzz WhatsApp"})

    # Which `{id}` each family of paths takes.
    ids = [
        (r"/api-keys/\{id\}", key["id"]),
        (r"/assistants/\{id\}", assistant),
        (r"/contacts/\{id\}", contact),
        (r"/conversations/\{id\}", conversation),
        (r"/messages/\{id\}", message),
        (r"/webhook-endpoints/\{id\}", endpoint),
        (r"/webhook-deliveries/\{id\}", delivery),
        (r"/limits/reservations/\{id\}", reservation),
        (r"/invitations/\{id\}", invitation),
    ]
    lines = [
        "# Written by .ci/fuzz_fixture.py: path parameters pinned to the fixture's rows.",
        "# No cache between runs: each run is the seed's, nothing replayed from an earlier one.",
        "[cache]",
        "enabled = false",
        "",
        "[parameters]",
        f'tenant = "{tenant}"',
        f'user_id = "{agent}"',
        'key = "assistant"',
        'provider = "test"',
        "",
    ]
    for pattern, value in ids:
        lines += [
            "[[operations]]",
            f"include-path-regex = '^/v1/tenants/\\{{tenant\\}}{pattern}'",
            f'parameters = {{ id = "{value}" }}',
            "",
        ]
    # The upsert by channel: a channel and an id it takes, the fixture's contact.
    lines += [
        "[[operations]]",
        "include-path-regex = '/contacts/by-channel/'",
        f'parameters = {{ channel = "whatsapp", id = "{whatsapp}" }}',
        "",
    ]
    # Operations that would destroy or lock the fixture the others need (see .ci/fuzz).
    for method, path in EXCLUDED:
        lines += [
            "[[operations]]",
            f"include-name = '{method} {path}'",
            "enabled = false",
            "",
        ]
    with open(f"{out}/schemathesis.toml", "w") as f:
        f.write("\n".join(lines))
    with open(f"{out}/key", "w") as f:
        f.write(key["secret"])
    print(f"fixture: tenant {tenant}, conversation {conversation}, message {message}")


if __name__ == "__main__":
    main()
