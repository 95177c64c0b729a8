"""Tests of the support connector package (actors/support/)."""
