"""The local S3 (moto's server) checks presigned URLs as S3 does: the signature over the method, key, query and
signed headers, and the expiry; SDK calls signed in headers pass as they are."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import requests
from botocore.config import Config
from local_stack.s3 import start_s3
from local_stack.servers import local_client, start_serving, stop_serving, url_of


@pytest.fixture
def s3() -> Iterator[tuple[object, list[float]]]:
    now = [time.time()]
    server = start_s3(clock=lambda: now[0])
    threads = start_serving([server])
    client = local_client("s3", url_of(server), Config(signature_version="s3v4"))
    if "jobs" not in [b["Name"] for b in client.list_buckets()["Buckets"]]:
        client.create_bucket(Bucket="jobs")
    yield client, now
    stop_serving([server], threads)


def put_url(client: object, size: int, ttl: int = 900, key: str = "jobs/abc/input") -> str:
    params = {"Bucket": "jobs", "Key": key, "ContentType": "text/csv", "ContentLength": size}
    return client.generate_presigned_url("put_object", Params=params, ExpiresIn=ttl)  # type: ignore[attr-defined]


def test_a_presigned_put_of_the_signed_size_and_type_is_stored(s3: tuple[object, list[float]]) -> None:
    client, _ = s3
    answer = requests.put(put_url(client, 5), data=b"hello", headers={"Content-Type": "text/csv"}, timeout=10)
    assert answer.status_code == 200
    assert client.get_object(Bucket="jobs", Key="jobs/abc/input")["Body"].read() == b"hello"  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ("size", "SignatureDoesNotMatch"),
        ("type", "SignatureDoesNotMatch"),
        ("key", "SignatureDoesNotMatch"),
        ("expiry", "SignatureDoesNotMatch"),
        ("signature", "SignatureDoesNotMatch"),
        ("no-type", "SignatureDoesNotMatch"),
    ],
)
def test_a_tampered_request_is_refused(s3: tuple[object, list[float]], change: str, code: str) -> None:
    client, _ = s3
    key = f"jobs/{change}/input"  # moto's backend is one per process: every case its own key
    url, data, headers = put_url(client, 5, key=key), b"hello", {"Content-Type": "text/csv"}
    if change == "size":
        data = b"hello!"
    elif change == "type":
        headers = {"Content-Type": "text/plain"}
    elif change == "key":
        url, key = url.replace(f"/{key}?", "/jobs/other/input?"), "jobs/other/input"
    elif change == "expiry":
        url = url.replace("X-Amz-Expires=900", "X-Amz-Expires=9000")
    elif change == "signature":
        url = url[:-1] + ("0" if url[-1] != "0" else "1")
    elif change == "no-type":
        headers = {}
    answer = requests.put(url, data=data, headers=headers, timeout=10)
    assert answer.status_code == 403 and f"<Code>{code}</Code>".encode() in answer.content
    assert "Contents" not in client.list_objects_v2(Bucket="jobs", Prefix=key)  # type: ignore[attr-defined]


def test_an_expired_url_is_refused(s3: tuple[object, list[float]]) -> None:
    client, now = s3
    url = put_url(client, 5, ttl=60)
    now[0] += 61
    answer = requests.put(url, data=b"hello", headers={"Content-Type": "text/csv"}, timeout=10)
    assert answer.status_code == 403 and b"Request has expired" in answer.content
