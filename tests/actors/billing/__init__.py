"""Tests of the billing connector package (actors/billing/)."""
