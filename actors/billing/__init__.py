"""Billing: Stripe API v1 behind the connector contract (``BillingConnector``).

``connector`` (what each message does), ``mapping`` (Stripe objects <-> canonical records,
form encoding, search quoting), ``paging`` (calls, list walks, fan-out, change feeds),
``errors`` (Stripe's error table).
"""

from actors.billing.connector import BillingConnector
from actors.billing.errors import THROTTLE_PAUSE
from actors.billing.mapping import form_encode, search_quote
from actors.billing.paging import FAN_OUT, SCAN_ABOVE

__all__ = [
    "FAN_OUT",
    "SCAN_ABOVE",
    "THROTTLE_PAUSE",
    "BillingConnector",
    "form_encode",
    "search_quote",
]
