"""Support: Zendesk Support API v2 behind the connector contract (``SupportConnector``).

``connector`` (what each message does), ``mapping`` (organizations and tickets <->
canonical records), ``paging`` (calls, batched and paged reads, incremental exports),
``errors`` (Zendesk's error table).
"""

from actors.support.connector import SupportConnector

__all__ = ["SupportConnector"]
