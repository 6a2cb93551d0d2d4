"""A local S3 (moto's server) for the bulk jobs' files, and the one thing moto's server does not do: check
presigned URLs. ``python -m local_stack.s3`` serves it in its own process (the local stack's way);
``start_s3`` makes the same server in this process (tests).

A request carrying a query-string signature (a presigned URL, ``X-Amz-Signature``) is checked as S3 checks
it, before moto sees it: the signature is recomputed with botocore's own SigV4 query signer over the
method, path, query and the headers the URL signed (so a URL signed for a Content-Length or Content-Type
refuses a body of another size or type), and the URL must not have expired (``X-Amz-Date`` +
``X-Amz-Expires``). A failed check answers 403 with S3's error codes (``SignatureDoesNotMatch``,
``AccessDenied``: "Request has expired"). Requests signed in headers (the functions' own SDK calls) go to
moto unchanged; it accepts any credentials."""

from __future__ import annotations

import argparse
import calendar
import hmac
import time
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl, quote, urlencode

from botocore.auth import S3SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from .lambda_context import REGION
from .servers import LOCAL_KEY, SIDE_HOST, WsgiServer, make_wsgi_server, serve_side_server

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

#: The dummy credentials every local client signs with (lambda_environment gives them to the functions).
CREDENTIALS = Credentials(LOCAL_KEY, LOCAL_KEY)


def start_s3(port: int = 0, clock: Callable[[], float] = time.time) -> WsgiServer:
    """moto's S3 server behind the presigned-URL check (not started)."""
    from moto.moto_server.werkzeug_app import create_backend_app

    return make_wsgi_server(SIDE_HOST, port, checked(create_backend_app("s3"), clock), threads=8, name="s3")


def checked(app: WSGIApplication, clock: Callable[[], float] = time.time) -> WSGIApplication:
    def check(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        refusal = presigned_refusal(environ, clock())
        if refusal is None:
            return app(environ, start_response)
        code, message = refusal
        body = (
            f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code><Message>{message}</Message></Error>'
        ).encode()
        start_response("403 Forbidden", [("Content-Type", "application/xml"), ("Content-Length", str(len(body)))])
        return [body]

    return check


def presigned_refusal(environ: WSGIEnvironment, now: float) -> tuple[str, str] | None:
    """(code, message) when the request's query signature fails S3's checks; None when it passes or the
    request is not presigned."""
    query = parse_qsl(environ.get("QUERY_STRING", ""), keep_blank_values=True)
    values = dict(query)
    if "X-Amz-Signature" not in values:
        return None
    try:
        signed_at = calendar.timegm(time.strptime(values["X-Amz-Date"], "%Y%m%dT%H%M%SZ"))
        expires = int(values["X-Amz-Expires"])
        signed_headers = values["X-Amz-SignedHeaders"].split(";")
    except (KeyError, ValueError):
        return "AuthorizationQueryParametersError", "The presigned URL lacks or garbles its X-Amz-* parameters."
    if now > signed_at + expires:
        return "AccessDenied", "Request has expired"
    headers = {}
    for name in signed_headers:
        value = _header(environ, name)
        if value is None:
            return "SignatureDoesNotMatch", f"The request lacks the signed header {name}."
        headers[name] = value
    unsigned = urlencode([(k, v) for k, v in query if k != "X-Amz-Signature"], quote_via=quote)
    path = quote(environ.get("PATH_INFO", "/").encode("latin-1").decode("utf-8", "replace"), safe="/~")
    url = f"http://{headers.get('host', environ.get('HTTP_HOST', ''))}{path}?{unsigned}"
    request = AWSRequest(method=environ["REQUEST_METHOD"], url=url, headers=headers)
    request.context["timestamp"] = values["X-Amz-Date"]
    signer = S3SigV4QueryAuth(CREDENTIALS, "s3", REGION, expires=expires)
    expected = signer.signature(signer.string_to_sign(request, signer.canonical_request(request)), request)
    if not hmac.compare_digest(expected, values["X-Amz-Signature"]):
        return "SignatureDoesNotMatch", "The request signature we calculated does not match the signature you provided."
    return None


def _header(environ: WSGIEnvironment, name: str) -> str | None:
    if name == "content-length":
        return environ.get("CONTENT_LENGTH") or None
    if name == "content-type":
        return environ.get("CONTENT_TYPE") or None
    value = environ.get("HTTP_" + name.upper().replace("-", "_"))
    return str(value) if value is not None else None


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m local_stack.s3", description=__doc__)
    return serve_side_server(parser, argv, "s3", start_s3)


if __name__ == "__main__":
    raise SystemExit(main())
