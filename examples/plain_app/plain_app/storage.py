"""Where orders come from: a tiny in-memory "disk" with a few broken entries."""

from __future__ import annotations

import json

_DISK: dict[str, str] = {
    "A-1": '{"sku": "book", "quantity": 2, "account": "alice"}',
    "A-2": '{"sku": "pen", "quantity": -1, "account": "bob"}',
    "A-3": '{"sku": "lamp", "quantity": 1, "account": "carol"}',
    "A-5": '{"sku": "desk", "quantity": 0, "account": "dave"}',
    "A-6": '{"sku": "chair", "quantity": 4, "account": "erin"}',
    "A-7": '{"sku": "mug", "quantity": 3, "account": "locked"}',
    "A-8": '{"sku": "book", "quantity": "many", "account": "frank"}',
    "A-9": '{"sku": "pen", "quantity": 1, "account": "grace"}',
    "A-10": '{"sku": "lamp", "quantity": 2, "account": "heidi"}',
    "A-12": '{"sku": "desk", "quantity": 1, "account": "ivan"}',
}


def read_order(order_id: str) -> dict[str, object]:
    try:
        raw = _DISK[order_id]
    except KeyError:
        raise FileNotFoundError(f"order file orders/{order_id}.json does not exist") from None
    return dict(json.loads(raw))
