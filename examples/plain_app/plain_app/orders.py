"""The order pipeline: read, validate, reserve stock, charge. Errors are handled per order
(and counted) the way a batch job usually does it, several calls deep."""

from __future__ import annotations

import sys
import time
from collections import Counter

from . import storage

ORDER_IDS = [f"A-{n}" for n in range(1, 13)]
_PAYMENT_DOWN_FOR = {"A-9", "A-12"}


class Inventory:
    def __init__(self) -> None:
        self.stock = {"book": 10, "pen": 10, "lamp": 10, "desk": 10, "chair": 2, "mug": 10}

    def reserve(self, sku: str, quantity: int) -> None:
        if self.stock.get(sku, 0) < quantity:
            raise RuntimeError(f"out of stock: {sku} (wanted {quantity})")
        self.stock[sku] -= quantity


class PaymentGateway:
    def charge(self, order_id: str, account: str, amount: int) -> str:
        if account == "locked":
            raise PermissionError(f"account {account!r} may not be charged")
        if order_id in _PAYMENT_DOWN_FOR:
            raise ConnectionError("payment gateway 10.0.0.7:443 refused the connection")
        return f"receipt-{order_id}"

    @staticmethod
    def amount_for(sku: str, quantity: int) -> int:
        prices = {"book": 12, "pen": 2, "lamp": 30, "desk": 150, "chair": 80, "mug": 8}
        return prices[sku] * quantity


def check_quantity(quantity: object) -> int:
    if not isinstance(quantity, int):
        raise ValueError(f"quantity must be a whole number, got {quantity!r}")
    if quantity <= 0:
        raise ValueError(f"quantity must be positive, got {quantity}")
    return quantity


def validate(order: dict[str, object]) -> tuple[str, int, str]:
    return str(order["sku"]), check_quantity(order["quantity"]), str(order["account"])


def process_one(order_id: str, inventory: Inventory, gateway: PaymentGateway) -> str:
    sku, quantity, account = validate(storage.read_order(order_id))
    inventory.reserve(sku, quantity)
    return gateway.charge(order_id, account, PaymentGateway.amount_for(sku, quantity))


def process_all(order_ids: list[str], *, interval: float = 0.0) -> Counter[str]:
    """Process every order; returns how many ended how (``ok`` or the exception type)."""
    inventory, gateway = Inventory(), PaymentGateway()
    outcomes: Counter[str] = Counter()
    for order_id in order_ids:
        try:
            process_one(order_id, inventory, gateway)
            outcomes["ok"] += 1
        except Exception as exc:
            outcomes[type(exc).__name__] += 1
            print(f"error {order_id} {type(exc).__name__}: {exc}", flush=True)
        if interval:
            time.sleep(interval)
    return outcomes


def main(argv: list[str]) -> int:
    rounds = 1
    interval = 0.0
    if "--forever" in argv:
        rounds, interval = 10**9, 0.01
    total: Counter[str] = Counter()
    for _ in range(rounds):
        total += process_all(ORDER_IDS, interval=interval)
    print("outcomes " + " ".join(f"{k}={v}" for k, v in sorted(total.items())), flush=True)
    if "--crash" in argv:
        process_one("A-404", Inventory(), PaymentGateway())  # nobody catches this one
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
