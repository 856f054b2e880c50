"""Entitlements: what an org's plan and subscription allow, cached in Redis."""
