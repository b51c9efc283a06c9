"""The catalogue routes: offers, the error catalogue, and the HTML page behind every doc_url."""

from __future__ import annotations

import html

from fastapi import APIRouter, Request
from starlette.responses import HTMLResponse, Response

from cracker.api.deps import RuntimeDep
from cracker.api.envelope import JSONBytes, doc_url
from cracker.api.responses import COMMON, errors
from cracker.api.schemas import CatalogueModel, OffersModel
from cracker.domain.catalogue import CATALOGUE, ErrorSpec, spec_for_slug
from cracker.domain.clock import rfc3339
from cracker.domain.errors import NotFound
from cracker.domain.money import format_usd
from cracker.domain.ocr_models import GENERAL_MODEL
from cracker.domain.task_types import TASK_TYPES

router = APIRouter(tags=["catalogue"])
#: The task type whose offer lists the OCR models.
OCR_TYPE = "image-to-text"


@router.get(
    "/v2/offers", response_model=OffersModel, responses=errors(*COMMON),
    summary="The price of each task type this server sells", operation_id="list_offers",
)
async def list_offers(runtime: RuntimeDep) -> Response:
    offers = await runtime.offers.list()
    models = [{"name": GENERAL_MODEL, "score": None, "created_at": None}] + [
        {"name": m.name, "score": round(m.score, 4), "created_at": rfc3339(m.created_at)}
        for m in (await runtime.ocr_models.summaries()).values()
    ]
    return JSONBytes({
        "offers": [
            {
                "type": o.type, "price": format_usd(o.price), "currency": "USD",
                "solved_by": TASK_TYPES[o.type].solved_by, "description": TASK_TYPES[o.type].summary,
                "work_limit": TASK_TYPES[o.type].work_limit,
                "models": models if o.type == OCR_TYPE else None,
            }
            for o in offers
        ]
    })


def _entry(request: Request, spec: ErrorSpec) -> dict[str, object]:
    return {
        "code": spec.code, "kind": spec.kind, "http_status": spec.http_status, "retryable": spec.retryable,
        "charged": spec.charged, "category": spec.category, "message": spec.message, "fix": spec.fix,
        "doc_url": doc_url(request, spec.code),
    }


@router.get(
    "/v2/errors", response_model=CatalogueModel, responses=errors(*COMMON),
    summary="The error catalogue: every code, its HTTP status, retryable and charged flags",
    operation_id="list_errors",
)
async def list_errors(request: Request) -> Response:
    return JSONBytes({"errors": [_entry(request, spec) for spec in CATALOGUE.values()]})


_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{code} - Cracker errors</title>
<style>body{{font:16px/1.5 system-ui,sans-serif;max-width:44rem;margin:3rem auto;padding:0 1rem}}
code{{background:#f3f3f3;padding:.1em .3em;border-radius:3px}}dt{{font-weight:600}}</style></head>
<body><p><a href="/v2/errors">Error catalogue</a></p>
<h1><code>{code}</code></h1><p>{message}</p>
<dl><dt>Kind</dt><dd>{kind}</dd><dt>HTTP status</dt><dd>{status}</dd>
<dt>Retryable</dt><dd>{retryable}</dd><dt>Charged</dt><dd>{charged}</dd>
<dt>Category</dt><dd>{category}</dd><dt>How to fix</dt><dd>{fix}</dd></dl>
</body></html>
"""


@router.get(
    "/errors/{slug}", response_class=HTMLResponse, responses=errors("not_found", "rate_limit_exceeded"),
    summary="The documentation page of one error code (the target of every doc_url)",
    operation_id="error_page",
)
async def error_page(slug: str) -> Response:
    spec = spec_for_slug(slug)
    if spec is None:
        raise NotFound(f"No error code {slug!r}")
    return HTMLResponse(
        _PAGE.format(
            code=html.escape(spec.code), message=html.escape(spec.message), kind=spec.kind,
            status=spec.http_status if spec.http_status is not None else "200 (inside the task envelope)",
            retryable="yes" if spec.retryable else "no",
            charged="yes: the task keeps its price" if spec.charged else "no",
            category=html.escape(spec.category), fix=html.escape(spec.fix),
        )
    )
