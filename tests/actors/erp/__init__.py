"""Tests of the erp connector package (actors/erp/)."""
