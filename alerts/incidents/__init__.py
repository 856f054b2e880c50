"""Incidents: declared, updated, resolved, their timeline, checklist and post-mortem."""
