"""Tests of the system actors."""
