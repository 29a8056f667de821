"""A FastAPI shop API served by uvicorn, with no faultlens code but one opt-in line.

Run it under faultlens (from the repository root; any OTLP endpoint, or none for the journal)::

    faultlens run --service shop-api --endpoint http://127.0.0.1:4317 -- \\
        uvicorn --app-dir examples fastapi_service.app:app --port 8000

and try the ways it fails:

- ``GET /items/1`` works; ``GET /items/99`` is a 404 (``HTTPException``): counted as
  ``HTTP_NOT_FOUND`` in ``faultlens.http.handled_errors``, not an error;
- ``POST /orders`` with ``{"item_id": 1, "quantity": 0}`` is a 422 (validation): counted as
  ``VAL_REQUEST_INVALID``;
- ``GET /items/1/price`` calls a pricing service that is down (``PRICING_URL``, by default a
  port nothing listens on) through a circuit breaker: 502 ``NET_CONNECTION_FAILED`` three
  times, then 503 ``EXE_CIRCUIT_OPEN`` with ``Retry-After`` until the breaker's next trial;
- ``GET /items/2/restock-eta`` is a bug (a division by zero stock): 500.

Each failure is one classified ``exception`` event on the request's server span (Jaeger),
one ``faultlens_errors_total`` point (Prometheus) and one journal record; every error answer
is a JSON envelope whose ``meta.trace_id`` finds the trace.
"""

from __future__ import annotations

import os

import httpx
from fastapi import FastAPI, HTTPException, Request
from pydantic import BaseModel, Field

import faultlens
from faultlens.integrations import fastapi as faultlens_fastapi
from faultlens.integrations import set_request_context

PRICING_URL = os.environ.get("PRICING_URL", "http://127.0.0.1:9")  # the dependency, down
ITEMS = {1: {"name": "kettle", "stock": 3}, 2: {"name": "toaster", "stock": 0}}

pricing = faultlens.CircuitBreaker("pricing", failure_threshold=3, open_timeout=30.0)
app = FastAPI(title="shop")


class Order(BaseModel):
    item_id: int
    quantity: int = Field(gt=0, le=10)


def find(item_id: int) -> dict:
    item = ITEMS.get(item_id)
    if item is None:
        raise HTTPException(status_code=404, detail=f"no item {item_id}")
    return item


@app.get("/items/{item_id}")
async def get_item(item_id: int) -> dict:
    return find(item_id)


@app.post("/orders")
async def create_order(order: Order, request: Request) -> dict:
    set_request_context(user_id=request.headers.get("x-user-id", "anonymous"))
    item = find(order.item_id)
    return {"ok": True, "item": item["name"], "quantity": order.quantity}


@app.get("/items/{item_id}/price")
def get_price(item_id: int) -> dict:
    find(item_id)
    with pricing:
        response = httpx.get(f"{PRICING_URL}/price/{item_id}", timeout=2.0)
        response.raise_for_status()
    return response.json()


@app.get("/items/{item_id}/restock-eta")
def restock_eta(item_id: int) -> dict:
    item = find(item_id)
    days_per_unit = 30 / item["stock"]  # the bug: an item out of stock
    return {"days": round(days_per_unit, 1)}


@app.get("/health")
async def health() -> dict:
    return {"ok": True}


# The opt-in part: error answers as faultlens envelopes (everything else needs no code under
# `faultlens run`; without it, this one call is all it takes).
faultlens_fastapi.instrument_app(app, envelopes=os.environ.get("SHOP_ENVELOPES", "1") == "1")
