"""HTTP plumbing shared by the API functions: the resolver, the per-user rate-limit middleware, correlation
ids, request metrics and THE one place that maps errors to HTTP answers."""

from __future__ import annotations

import json
import time
import traceback
from collections.abc import Callable, Mapping
from http import HTTPStatus
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.event_handler.middlewares import NextMiddleware
from sentiment_core.contract import SMOKE_API_ID

from .correlation import HEADER as CORRELATION_HEADER
from .correlation import correlation_id_from_event
from .deadline import Deadline
from .errors import ApiError, NotFound, RateLimited, RateLimiterDown, Unauthenticated
from .observability import MetricUnit, add_version_dimension_set, count, logger, metrics
from .ratelimit import RateLimiter, RateLimiterUnavailable, caller_key

JSON = "application/json"


def error_body(code: str, message: str, correlation_id: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "correlation_id": correlation_id}}


def json_response(
    status: int, body: Mapping[str, Any], correlation_id: str, headers: Mapping[str, str] | None = None
) -> Response:
    return Response(
        status_code=status,
        content_type=JSON,
        body=json.dumps(body, ensure_ascii=False, separators=(",", ":"), allow_nan=False),  # never invalid JSON
        headers={CORRELATION_HEADER: correlation_id, **(headers or {})},
    )


def _error_response(app: APIGatewayHttpResolver, error: ApiError) -> Response:
    correlation_id = app.context.get("correlation_id", "unknown")
    if error.status >= 500:
        extra = {"error_code": error.code, "status": int(error.status)}
        logger.warning("request failed", extra=extra if error.detail is None else {**extra, "detail": error.detail})
    else:
        logger.info("request rejected", extra={"error_code": error.code, "status": int(error.status)})
    count("Errors", "ErrorCode", error.code)
    return json_response(
        error.status, error_body(error.code, error.message, correlation_id), correlation_id, error.headers
    )


def rate_limit(limiter: RateLimiter, fail_open: bool) -> Callable[[APIGatewayHttpResolver, NextMiddleware], Response]:
    """Global middleware: every route is limited per caller (the token's issuer and subject). The decision's
    RateLimit headers are put in the request's holder so that handle() adds them to every answer, errors
    included. Only a transient store failure may fail open; any other (a misconfigured table or role, a key
    the store refuses) fails closed, because failing open there would serve that caller without a limit."""

    def middleware(app: APIGatewayHttpResolver, next_middleware: NextMiddleware) -> Response:
        key = require_caller(app)
        try:
            decision = limiter.check(key)
        except RateLimiterUnavailable as exc:
            count("RateLimiterErrors", "Reason", exc.reason)
            serve = fail_open and exc.transient
            extra = {"fail_open": serve, "reason": exc.reason, "transient": exc.transient}
            (logger.warning if exc.transient else logger.error)("rate limiter unavailable", extra=extra)
            if not serve:
                raise RateLimiterDown(retry_after_s=1) from None
            return next_middleware(app)
        app.context["response_headers"].update(decision.headers(limiter.policy))
        if not decision.allowed:
            metrics.add_metric(name="RateLimited", unit=MetricUnit.Count, value=1)
            policy = limiter.policy
            raise RateLimited(
                f"Too many requests for this user (at most {policy.rate_per_minute} per minute, bursts up to "
                f"{policy.burst}); retry after {decision.retry_after_s} s.",
                retry_after_s=decision.retry_after_s,
            )
        return next_middleware(app)

    return middleware


def create_resolver(limiter: RateLimiter, fail_open: bool = True) -> APIGatewayHttpResolver:
    app = APIGatewayHttpResolver()
    app.use(middlewares=[rate_limit(limiter, fail_open)])

    @app.exception_handler(ApiError)
    def _api_error(error: ApiError) -> Response:
        return _error_response(app, error)

    @app.exception_handler(Exception)
    def _unexpected(error: Exception) -> Response:
        # The log gets the exception type and where it was raised (with the correlation id), the client the
        # generic answer. Never the exception's message: it may embed the user's text (redaction rule,
        # docs/security.md); the stack shows code lines, not values.
        logger.error(
            "unhandled error",
            extra={"error_type": type(error).__name__, "stack": traceback.format_tb(error.__traceback__)},
        )
        return _error_response(app, ApiError())

    @app.not_found
    def _not_found(_: Exception) -> Response:
        return _error_response(app, NotFound())

    return app


def handle(
    app: APIGatewayHttpResolver,
    event: dict[str, Any],
    context: Any,
    budget_s: float,
    route_budgets: Mapping[str, float] | None = None,
) -> dict[str, Any]:
    """Entry used by every API function: correlation id first, so that every log line and answer has it;
    the request's deadline starts here (``app.context["deadline"]``: routes pass it to their dependencies),
    with ``budget_s``, or the budget ``route_budgets`` gives the request's path."""
    path = event.get("rawPath")
    deadline = Deadline.for_invocation((route_budgets or {}).get(str(path), budget_s), context)
    correlation_id = correlation_id_from_event(event)
    logger.set_correlation_id(correlation_id)
    extra_headers: dict[str, str] = {}
    app.append_context(correlation_id=correlation_id, response_headers=extra_headers, deadline=deadline)
    started = time.perf_counter()
    response = app.resolve(event, context)
    response["headers"] = {**extra_headers, **(response.get("headers") or {})}
    status, latency_ms = int(response.get("statusCode", 500)), (time.perf_counter() - started) * 1000
    record_request(status, latency_ms, smoke=(event.get("requestContext") or {}).get("apiId") == SMOKE_API_ID)
    logger.info("request handled", extra={"status": status, "latency_ms": round(latency_ms, 2)})
    return response


def record_request(status: int, latency_ms: float, smoke: bool = False) -> None:
    """Request count, latency and 4xx/5xx as 0/1 samples, so Average is the error ratio. Published per
    Stage and, for the canary comparison, per Stage + FunctionVersion (same EMF blob; a smoke request of
    the PreTraffic hook under its own FunctionVersion value)."""
    metrics.add_metric(name="Requests", unit=MetricUnit.Count, value=1)
    metrics.add_metric(name="Latency", unit=MetricUnit.Milliseconds, value=latency_ms)
    metrics.add_metric(name="4xx", unit=MetricUnit.Count, value=1 if 400 <= status < 500 else 0)
    metrics.add_metric(name="5xx", unit=MetricUnit.Count, value=1 if status >= 500 else 0)
    add_version_dimension_set(smoke)


def require_caller(app: APIGatewayHttpResolver) -> str:
    """Defence in depth behind the JWT authorizer: no `sub` claim, no service. The caller's limiter key is
    the hash of issuer and subject (ratelimit.caller_key)."""
    claims = app.current_event.request_context.authorizer.jwt_claim or {}
    subject, issuer = claims.get("sub"), claims.get("iss")
    if not isinstance(subject, str) or not subject.strip():
        raise Unauthenticated()
    return caller_key(issuer if isinstance(issuer, str) else "", subject)


def ok(body: Mapping[str, Any], app: APIGatewayHttpResolver, headers: Mapping[str, str] | None = None) -> Response:
    return json_response(HTTPStatus.OK, body, app.context.get("correlation_id", "unknown"), headers)


__all__ = ["Callable", "create_resolver", "error_body", "handle", "json_response", "ok", "require_caller"]
