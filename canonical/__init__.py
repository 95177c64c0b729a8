"""The canonical model: the shapes every system's records are translated into."""

from canonical.models import (
    Case,
    Customer,
    Entitlement,
    Invoice,
    Opportunity,
    Order,
    OrderItem,
    Payment,
    Product,
    Subscription,
    SubscriptionItem,
    System,
    XRef,
)

__all__ = [
    "Case",
    "Customer",
    "Entitlement",
    "Invoice",
    "Opportunity",
    "Order",
    "OrderItem",
    "Payment",
    "Product",
    "Subscription",
    "SubscriptionItem",
    "System",
    "XRef",
]
