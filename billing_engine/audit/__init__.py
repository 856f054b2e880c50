"""Audit: which named admin key acted, and an entry for every admin change."""
