"""The alerts process' HTTP API (port 8007): the app factory (`alerts.api.app`), the
dependencies every route takes (`alerts.api.deps`) and what the concepts' contracts share
(`alerts.api.contract`). The routes themselves live with their concepts
(`alerts.<concept>.routes`), each with its response schemas (`alerts.<concept>.schemas`).
"""
