"""CRM sandbox: a Salesforce REST API v60.0 stand-in (see ``sandbox.crm.app``).

Modules: ``schema`` (objects, fields, write rules), ``soql`` (the query language),
``records`` (transactions over the store), ``calls`` / ``api`` (the REST resources),
``query`` (cursors and batches), ``bulk`` (Bulk API 2.0 query jobs), ``composite``,
``describe``, ``limits``, ``events`` (Change Data Capture), ``seed`` (the demo world),
``app`` (HTTP, auth, limits).
"""

from sandbox.crm.app import ACCESS_TOKEN, CrmDialect, create_app

__all__ = ["ACCESS_TOKEN", "CrmDialect", "create_app"]
