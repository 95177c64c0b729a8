"""The CRM: Salesforce REST API v60.0 behind the connector contract (``CrmConnector``).

``connector`` (what each message does), ``mapping`` (records and SOQL <-> canonical
records), ``paging`` (calls, SOQL paging, composite calls, bulk query jobs), ``bulk``
(Bulk API 2.0 CSV results), ``errors`` (Salesforce's error table).
"""

from actors.crm.connector import CrmConnector
from actors.crm.errors import THROTTLE_PAUSE
from actors.crm.mapping import ACCOUNT_FIELDS, CHUNK, FIELD_TYPES, soql_like, soql_quote

__all__ = [
    "ACCOUNT_FIELDS",
    "CHUNK",
    "FIELD_TYPES",
    "THROTTLE_PAUSE",
    "CrmConnector",
    "soql_like",
    "soql_quote",
]
