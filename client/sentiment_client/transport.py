"""The HTTP exchange behind an interface: one POST in, one answer (any status) out, or a TransportError when
no answer came. Tests replace it with a fake; the client's logic never sees urllib."""

from __future__ import annotations

import http.client
import socket
import urllib.error
import urllib.request
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Protocol
from urllib.parse import urlsplit


@dataclass(frozen=True, slots=True)
class HttpResponse:
    status: int
    body: bytes = b""
    #: Header names in lower case.
    headers: Mapping[str, str] = field(default_factory=dict)

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())


class TransportError(Exception):
    """No HTTP answer: the connection was refused, dropped or timed out."""

    def __init__(self, reason: str, *, refused: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        #: Nothing to talk to: nothing listens at the address (the local stack is not running, a wrong port), or
        #: the host name does not resolve.
        self.refused = refused


class Transport(Protocol):
    def post(self, url: str, body: bytes, headers: Mapping[str, str], timeout_s: float) -> HttpResponse:
        """Sends one POST; answers every HTTP status as an HttpResponse, raises TransportError otherwise."""
        ...


def is_local(url: str) -> bool:
    """A URL on the loopback interface (the local stack)."""
    host = (urlsplit(url).hostname or "").lower()
    return host in {"localhost", "::1"} or host.startswith("127.")


class UrllibTransport:
    """urllib.request: proxies from the environment for remote URLs (HTTPS_PROXY ...), none for loopback."""

    def __init__(self) -> None:
        self._remote = urllib.request.build_opener()
        self._loopback = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def post(self, url: str, body: bytes, headers: Mapping[str, str], timeout_s: float) -> HttpResponse:
        return self.send("POST", url, body, headers, timeout_s)

    def send(
        self, method: str, url: str, body: bytes | None, headers: Mapping[str, str], timeout_s: float
    ) -> HttpResponse:
        """Any method (the job mode's GET and PUT, to the API and to presigned S3 URLs)."""
        if urlsplit(url).scheme not in {"http", "https"}:
            raise ValueError(f"not an http(s) URL: {url}")
        request = urllib.request.Request(url, data=body, headers=dict(headers), method=method)  # noqa: S310 - scheme checked
        opener = self._loopback if is_local(url) else self._remote
        try:
            with opener.open(request, timeout=timeout_s) as answer:
                return HttpResponse(answer.status, answer.read(), _lower(answer.headers.items()))
        except urllib.error.HTTPError as error:  # a non-2xx answer is an answer
            with error:
                return HttpResponse(error.code, error.read(), _lower(error.headers.items()))
        except urllib.error.URLError as error:  # connecting failed (refused, DNS, TLS)
            reason = error.reason
            if isinstance(reason, ConnectionRefusedError):
                raise TransportError("connection refused", refused=True) from None
            if isinstance(reason, socket.gaierror):
                raise TransportError(f"the host name does not resolve: {reason}", refused=True) from None
            raise TransportError(str(reason)) from None
        except TimeoutError:
            raise TransportError(f"no answer within {timeout_s:g} s") from None
        except (OSError, http.client.HTTPException) as error:  # dropped or reset mid-exchange
            raise TransportError(f"connection lost ({type(error).__name__}: {error})".replace(": )", ")")) from None


def _lower(items: Iterable[tuple[str, str]]) -> dict[str, str]:
    return {name.lower(): value for name, value in items}
