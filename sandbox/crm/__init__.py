"""CRM sandbox: a Salesforce REST API v60.0 stand-in (see ``sandbox.crm.app``).

Modules: ``schema`` (objects, fields, write rules), ``soql`` (query parser), ``records``
(transactions over the store), ``api`` (the REST resources and composite), ``limits``,
``events`` (Change Data Capture), ``seed`` (the demo world), ``app`` (HTTP, auth).
"""

from sandbox.crm.app import ACCESS_TOKEN, CrmDialect, create_app

__all__ = ["ACCESS_TOKEN", "CrmDialect", "create_app"]
