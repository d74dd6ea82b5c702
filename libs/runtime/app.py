"""The FastAPI app every service runs: lifespan, health, readiness, metrics, problems."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse, Response
from fastapi_offline import FastAPIOffline
from opentelemetry import context as otel_context
from pydantic import BaseModel

from .admission import Admission, AdmissionMiddleware
from .clock import DevelopmentClock
from .collector import tune
from .limits import RequestGuard
from .logs import configure_logging, redact_access_log
from .metrics import CONTENT_TYPE, HttpMetricsMiddleware
from .openapi import document_errors
from .problems import install_problem_handlers
from .service import ServiceRuntime
from .settings import ServiceSettings
from .tracing import configure_tracing, dropped_request_context, telemetry_config


# Dependencies are coroutines: FastAPI runs a plain function in its thread pool on every
# request, a hop that costs more than the attribute read it does.
async def service_runtime(request: Request) -> ServiceRuntime:
    """The running service's runtime (a FastAPI dependency)."""
    return request.app.state.runtime


async def service_deps(request: Request) -> Any:
    """The handlers' dependencies the bootstrap built (a FastAPI dependency); each service
    names it with its own type: ``Deps = Annotated[Dependencies, Depends(service_deps)]``."""
    return request.app.state.runtime.deps


class ServiceApp(FastAPI):
    """The services' app: FastAPI's telemetry where its span is recorded, and where it would
    be dropped the same non-recording span made directly (ADR 0043): its ids are what the
    events a request decides carry on."""

    async def __call__(self, scope, receive, send) -> None:
        context = dropped_request_context(scope) if scope["type"] == "http" else None
        if context is None:
            await super().__call__(scope, receive, send)
            return
        scope["fastapi.telemetry"] = None  # FastAPI: nothing of this request to observe
        token = otel_context.attach(context)
        try:
            await super().__call__(scope, receive, send)
        finally:
            otel_context.detach(token)
            scope.pop("fastapi.telemetry", None)


class Health(BaseModel):
    status: str


class Readiness(BaseModel):
    status: str
    checks: dict[str, str]


def create_app(
    build_runtime: Callable[[], ServiceRuntime],
    *,
    title: str,
    description: str,
    routers: Sequence[APIRouter] = (),
) -> FastAPI:
    """An app whose lifespan builds the runtime (from settings, at start-up, never at import)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        runtime = build_runtime()
        configure_logging(runtime.settings.service, runtime.settings.log_level)
        configure_tracing(runtime.settings.service)
        app.state.runtime = runtime
        await runtime.start()
        # What start-up loaded stays for the process's life: no collection walks it again.
        tune(runtime.settings.gc_thresholds, freeze=runtime.settings.gc_freeze)
        try:
            yield
        finally:
            await runtime.stop()

    # /docs and /redoc from assets in the fastapi-offline package, not a CDN: they work on a
    # machine without internet access (docs/decisions/0034-schemathesis-and-offline-docs.md).
    app = FastAPIOffline(title=title, description=description, version="0.1.0",
                         lifespan=lifespan, swagger_ui_parameters={"validatorUrl": None},
                         telemetry=telemetry_config())
    # fastapi-offline builds a plain FastAPI; ours is that app with its own __call__ (the
    # subclass adds no state, so the app changes class in place).
    app.__class__ = ServiceApp
    # uvicorn has configured its loggers by the time it imports the app: from here on no
    # access log line carries a query string (a client may put an ID number in one).
    redact_access_log()
    install_problem_handlers(app)
    document_errors(app)
    app.add_middleware(DevelopmentClock)
    # Before any route reads a body: 401/403 first, body caps, NUL refused (ADR 0030).
    app.add_middleware(RequestGuard, runtime_of=lambda: getattr(app.state, "runtime", None),
                       routes_of=lambda: app.router.routes,
                       defaults=lambda name: ServiceSettings.model_fields[name].default)

    # Before routing and everything else: a shed request costs almost nothing (ADR 0036).
    def admission_of() -> Admission | None:
        runtime = getattr(app.state, "runtime", None)
        return runtime.admission if runtime is not None else None

    app.add_middleware(AdmissionMiddleware, admission_of=admission_of)

    def metrics_of():
        runtime = getattr(app.state, "runtime", None)
        return runtime.prometheus if runtime is not None else None

    # Outermost: it times the whole request, problem documents and tracing included.
    app.add_middleware(HttpMetricsMiddleware, metrics_of=metrics_of)

    @app.get("/healthz", tags=["operations"])
    async def healthz() -> Health:
        """Liveness: the process is up and serving."""
        return Health(status="ok")

    @app.get("/readyz", tags=["operations"], response_model=Readiness,
             responses={503: {"model": Readiness, "description": "Not ready: the checks say "
                                                                   "which part does not answer"}})
    async def readyz() -> JSONResponse:
        """Readiness: database, Kafka and the background workers all answer."""
        checks = await app.state.runtime.readiness()
        ready = all(v == "ok" for v in checks.values())
        return JSONResponse({"status": "ready" if ready else "not-ready", "checks": checks},
                            status_code=200 if ready else 503)

    @app.get("/metrics", tags=["operations"], response_class=Response, responses={
        200: {"description": "Prometheus text", "content": {CONTENT_TYPE: {
            "schema": {"type": "string"}}}}})
    async def metrics() -> Response:
        """Prometheus text exposition: events published, relay backlog and publish lag,
        events handled, dead letters and consumer lag per consumer, handler, relay and HTTP
        latency histograms, how long tailing readers wait (libs.runtime.metrics)."""
        return Response(await app.state.runtime.metrics(), media_type=CONTENT_TYPE)

    for router in routers:
        app.include_router(router)
    return app
