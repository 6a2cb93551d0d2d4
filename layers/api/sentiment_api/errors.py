"""Domain errors. Each carries its HTTP status and machine-readable code; they are mapped to the one
error body shape in exactly one place (sentiment_api.http)."""

from __future__ import annotations

from http import HTTPStatus


class ApiError(Exception):
    """An error with a documented, client-safe answer."""

    status: HTTPStatus = HTTPStatus.INTERNAL_SERVER_ERROR
    code: str = "INTERNAL_ERROR"
    public_message: str = "The service failed to process the request."

    def __init__(
        self, message: str | None = None, *, retry_after_s: int | None = None, detail: str | None = None
    ) -> None:
        super().__init__(message or self.public_message)
        self.message = message or self.public_message
        self.retry_after_s = retry_after_s
        self.detail = detail  # for the log only (with the correlation id), never for the client

    @property
    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after_s)} if self.retry_after_s is not None else {}


# ---- 4xx: the client can fix these ----------------------------------------------------------------
class InvalidJson(ApiError):
    status, code = HTTPStatus.BAD_REQUEST, "INVALID_JSON"


class InvalidEncoding(ApiError):
    status, code = HTTPStatus.BAD_REQUEST, "INVALID_ENCODING"


class ValidationFailed(ApiError):
    status, code = HTTPStatus.BAD_REQUEST, "VALIDATION_ERROR"


class EmptyText(ApiError):
    """The text is empty or whitespace only: nothing to classify, so no model call and no guess."""

    status, code = HTTPStatus.BAD_REQUEST, "EMPTY_TEXT"
    public_message = "text is empty or only whitespace: there is nothing to classify."


class Unauthenticated(ApiError):
    status, code = HTTPStatus.UNAUTHORIZED, "UNAUTHENTICATED"
    public_message = "The request carries no authenticated subject."


class NotFound(ApiError):
    status, code = HTTPStatus.NOT_FOUND, "NOT_FOUND"
    public_message = "No such resource."


class PayloadTooLarge(ApiError):
    status, code = HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "PAYLOAD_TOO_LARGE"


class UnsupportedMediaType(ApiError):
    status, code = HTTPStatus.UNSUPPORTED_MEDIA_TYPE, "UNSUPPORTED_MEDIA_TYPE"


class RateLimited(ApiError):
    status, code = HTTPStatus.TOO_MANY_REQUESTS, "RATE_LIMITED"
    public_message = "Too many requests for this user; retry after the time in Retry-After."


# ---- 5xx: the dependency or we failed ------------------------------------------------------------
class ModelError(ApiError):
    """The model endpoint answered with an error or an answer we cannot use."""

    status, code = HTTPStatus.BAD_GATEWAY, "MODEL_ERROR"
    public_message = "The model failed to produce a prediction."


class ModelUnavailable(ApiError):
    """The model endpoint is throttling or cannot be reached right now; worth retrying later."""

    status, code = HTTPStatus.SERVICE_UNAVAILABLE, "MODEL_UNAVAILABLE"
    public_message = "The model is temporarily unavailable; retry after the time in Retry-After."


class RateLimiterDown(ApiError):
    """The rate-limit store failed and the service is configured to fail closed."""

    status, code = HTTPStatus.SERVICE_UNAVAILABLE, "RATE_LIMITER_UNAVAILABLE"
    public_message = "The service cannot check request quotas right now; retry after the time in Retry-After."


class ModelTimeout(ApiError):
    status, code = HTTPStatus.GATEWAY_TIMEOUT, "MODEL_TIMEOUT"
    public_message = "The model did not answer in time."


class InvalidResponse(ApiError):
    """Our own answer failed its schema: a bug, answered as a plain internal error. What failed is the
    ``detail`` (logged); the client gets the public message only."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail=detail)


# ---- GET /explain's dependency: the governance report store ---------------------------------------
class ReportUnreadable(ApiError):
    """A stored report is not valid JSON of the expected schema: its producer (the governance job) failed.
    The client gets the public message; what is wrong, and where, is the logged detail."""

    status, code = HTTPStatus.BAD_GATEWAY, "REPORT_UNREADABLE"
    public_message = "The latest governance report cannot be read; the operators have the details."

    def __init__(self, detail: str) -> None:
        super().__init__(detail=detail)


class ReportsUnavailable(ApiError):
    """The report store (S3) failed or timed out: worth retrying."""

    status, code = HTTPStatus.SERVICE_UNAVAILABLE, "REPORTS_UNAVAILABLE"
    public_message = "Governance reports cannot be read right now; retry after the time in Retry-After."


# ---- the bulk jobs (POST /jobs, GET /jobs/{job_id}, POST /jobs/{job_id}/start) --------------------------
class JobNotFound(NotFound):
    """No job of this caller has this id: unknown, expired, or another caller's (the same answer for all)."""

    public_message = "No such job: a job is visible to its owner only, until it expires."


class UploadMissing(ApiError):
    status, code = HTTPStatus.CONFLICT, "UPLOAD_MISSING"
    public_message = "The job's file has not been uploaded: PUT it to the job's upload URL, then start the job."


class InputTooLarge(ApiError):
    status, code = HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "INPUT_TOO_LARGE"


class JobsUnavailable(ApiError):
    """The job table, bucket or state machine failed or timed out: worth retrying."""

    status, code = HTTPStatus.SERVICE_UNAVAILABLE, "JOBS_UNAVAILABLE"
    public_message = "Jobs cannot be read or started right now; retry after the time in Retry-After."
