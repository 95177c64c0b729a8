"""Tests of the crm connector package (actors/crm/)."""
