"""The sagas a governed mutation starts, one module each: what it validates before it is
accepted, and its steps across the four systems (run by ``gateway.processes.saga``).

- ``onboarding``: onboardCustomer (ERP business partner, CRM account, billing customer,
  support organization);
- ``quote_to_cash``: closeOpportunity (ERP sales order, billing subscriptions, support
  entitlement, CRM stamp);
- ``renewal``: renewSubscription;
- ``case_to_resolution``: openCase and escalateCase;
- ``resolve_case``: resolveCase (credit note, credit memo request, ticket solved).
"""
