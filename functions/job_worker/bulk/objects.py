"""A job's objects in the jobs bucket: read whole, read as a stream, written whole, or written in parts
(a multipart upload, so that a result of any size is written with bounded memory)."""

from __future__ import annotations

import io
from typing import IO, Any

READ_BUFFER_BYTES = 1024 * 1024
#: Parts of a multipart upload (S3: at least 5 MiB each but the last, at most 10,000 parts).
PART_BYTES = 8 * 1024 * 1024


class Bucket:
    def __init__(self, client: Any, name: str) -> None:
        self._client = client
        self.name = name

    def stream(self, key: str) -> tuple[IO[bytes], int]:
        """The object as a buffered stream (botocore's body has no readline of its own: io's fallback reads one
        byte per call, 0.2 MB/s measured; buffered, a JSON Lines file reads at disk speed), and its size."""
        answer = self._client.get_object(Bucket=self.name, Key=key)
        return io.BufferedReader(answer["Body"], READ_BUFFER_BYTES), int(answer["ContentLength"])

    def read(self, key: str) -> bytes:
        return bytes(self._client.get_object(Bucket=self.name, Key=key)["Body"].read())

    def write(self, key: str, body: bytes, content_type: str = "application/octet-stream") -> None:
        self._client.put_object(Bucket=self.name, Key=key, Body=body, ContentType=content_type)

    def delete(self, key: str) -> None:
        self._client.delete_object(Bucket=self.name, Key=key)

    def writer(self, key: str, content_type: str) -> PartWriter:
        return PartWriter(self._client, self.name, key, content_type)


class PartWriter:
    """Bytes appended in order, uploaded PART_BYTES at a time; ``close`` completes the object (a small one
    with one PutObject), ``abort`` drops the parts. Use as a context manager: an error aborts."""

    def __init__(self, client: Any, bucket: str, key: str, content_type: str) -> None:
        self._client, self._bucket, self._key, self._content_type = client, bucket, key, content_type
        self._buffer = bytearray()
        self._upload_id: str | None = None
        self._parts: list[dict[str, Any]] = []
        self.bytes_written = 0

    def write(self, data: bytes) -> None:
        self._buffer += data
        self.bytes_written += len(data)
        while len(self._buffer) >= PART_BYTES:
            self._upload_part(bytes(self._buffer[:PART_BYTES]))
            del self._buffer[:PART_BYTES]

    def _upload_part(self, data: bytes) -> None:
        if self._upload_id is None:
            created = self._client.create_multipart_upload(
                Bucket=self._bucket, Key=self._key, ContentType=self._content_type
            )
            self._upload_id = created["UploadId"]
        number = len(self._parts) + 1
        answer = self._client.upload_part(
            Bucket=self._bucket, Key=self._key, UploadId=self._upload_id, PartNumber=number, Body=data
        )
        self._parts.append({"PartNumber": number, "ETag": answer["ETag"]})

    def close(self) -> None:
        if self._upload_id is None:
            self._client.put_object(
                Bucket=self._bucket, Key=self._key, Body=bytes(self._buffer), ContentType=self._content_type
            )
            return
        if self._buffer:
            self._upload_part(bytes(self._buffer))
            self._buffer.clear()
        self._client.complete_multipart_upload(
            Bucket=self._bucket, Key=self._key, UploadId=self._upload_id, MultipartUpload={"Parts": self._parts}
        )

    def abort(self) -> None:
        if self._upload_id is not None:
            self._client.abort_multipart_upload(Bucket=self._bucket, Key=self._key, UploadId=self._upload_id)

    def __enter__(self) -> PartWriter:
        return self

    def __exit__(self, kind: Any, error: Any, traceback: Any) -> None:
        if kind is None:
            self.close()
        else:
            self.abort()
