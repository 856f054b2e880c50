"""GET /v1/plans."""

from __future__ import annotations

from fastapi import APIRouter

from billing_engine.api.deps import ServicesDep
from billing_engine.plans.schemas import CatalogOut, catalog_out

router = APIRouter(tags=["billing"])


@router.get("/v1/plans", summary="The plan catalogue in force", response_model=CatalogOut)
def get_plans(services: ServicesDep) -> CatalogOut:
    return catalog_out(services.catalog)
