"""The shop as a Flask app, served by gunicorn with prefork workers.

Run it under faultlens (from the repository root)::

    faultlens run --service shop-web --endpoint http://127.0.0.1:4317 -- \\
        gunicorn --chdir examples --workers 2 --bind 127.0.0.1:8001 flask_app.app:app

The same failures as ``examples/fastapi_service``: ``/items/99`` is a 404 (``abort``),
``POST /orders`` with a bad quantity a 400 (the app's own validation error, answered by its
error handler), ``/items/1/price`` a pricing dependency that is down behind a circuit breaker
(502, then 503 with ``Retry-After``), ``/items/2/restock-eta`` a bug (500). Each worker
process records its own failures; Prometheus sums them per code.
"""

from __future__ import annotations

import os

import requests
from flask import Flask, abort, jsonify, request

import faultlens
from faultlens.integrations import flask as faultlens_flask
from faultlens.integrations import set_request_context

PRICING_URL = os.environ.get("PRICING_URL", "http://127.0.0.1:9")  # the dependency, down
ITEMS = {1: {"name": "kettle", "stock": 3}, 2: {"name": "toaster", "stock": 0}}

pricing = faultlens.CircuitBreaker("pricing", failure_threshold=3, open_timeout=30.0)
app = Flask("shop")


class InvalidOrder(faultlens.FaultError):
    code = "VAL_REQUEST_INVALID"


@app.errorhandler(InvalidOrder)
def invalid_order(exc: InvalidOrder):
    return jsonify({"detail": str(exc)}), 400


def find(item_id: int) -> dict:
    item = ITEMS.get(item_id)
    if item is None:
        abort(404)
    return item


@app.get("/items/<int:item_id>")
def get_item(item_id: int):
    return find(item_id)


@app.post("/orders")
def create_order():
    set_request_context(user_id=request.headers.get("X-User-Id", "anonymous"))
    body = request.get_json(silent=True) or {}
    quantity = body.get("quantity")
    if not isinstance(quantity, int) or not 0 < quantity <= 10:
        raise InvalidOrder(f"quantity must be 1..10, got {quantity!r}")
    item = find(int(body.get("item_id", 0)))
    return {"ok": True, "item": item["name"], "quantity": quantity}


@app.get("/items/<int:item_id>/price")
def get_price(item_id: int):
    find(item_id)
    with pricing:
        response = requests.get(f"{PRICING_URL}/price/{item_id}", timeout=2.0)
        response.raise_for_status()
    return response.json()


@app.get("/items/<int:item_id>/restock-eta")
def restock_eta(item_id: int):
    item = find(item_id)
    days_per_unit = 30 / item["stock"]  # the bug: an item out of stock
    return {"days": round(days_per_unit, 1)}


@app.get("/health")
def health():
    return {"ok": True}


faultlens_flask.instrument_app(app, envelopes=os.environ.get("SHOP_ENVELOPES", "1") == "1")
