"""The experience API: one GraphQL schema for portals and widgets."""
