"""The ERP: SAP S/4HANA OData V2 behind the connector contract (``ErpConnector``).

``connector`` (what each message does), ``mapping`` (OData entities <-> canonical
records), ``paging`` (CSRF and cookies, batched and paged reads, change feeds), ``batch``
(the OData ``$batch`` wire format), ``errors`` (SAP's error table).
"""

from actors.erp.connector import ErpConnector
from actors.erp.paging import or_chunks

__all__ = ["ErpConnector", "or_chunks"]
