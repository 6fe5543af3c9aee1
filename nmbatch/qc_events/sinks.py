"""Where events go: a folder or an S3 bucket, behind one small sink with an atomic write.

A destination is a folder path or ``s3://bucket/prefix``. An event's key
(``prod/log-pass-qc-...json``) becomes ``<folder>/<key>`` or the object
``<prefix>/<key>`` in the bucket. S3 goes through boto3 with the standard AWS
settings (credentials, region, profile, ``AWS_ENDPOINT_URL`` /
``AWS_ENDPOINT_URL_S3``); ``--s3-endpoint`` overrides the endpoint.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from abc import ABC, abstractmethod
from pathlib import Path

from nmbatch.engine.errors import ConfigError
from nmbatch.engine.job import worker_resource

S3_SCHEME = "s3://"


class SinkError(Exception):
    """An event could not be written; the message is the sink's own."""


class EventSink(ABC):
    """Somewhere events are written, one object per key."""

    @abstractmethod
    def describe(self) -> str:
        """The destination, as a user gave it (for the summary)."""

    @abstractmethod
    def location(self, key: str) -> str:
        """Where the object of ``key`` is (a path or an ``s3://`` URI)."""

    @abstractmethod
    def write(self, key: str, body: bytes) -> str:
        """Write the whole object or nothing, replacing one of the same key; its location.

        Raises SinkError with the sink's message (missing bucket, access denied, disk full).
        """


class FolderSink(EventSink):
    """Events as files under a folder; each written under a temporary name and renamed."""

    def __init__(self, root: Path):
        self.root = Path(root).expanduser().resolve()

    def describe(self) -> str:
        return str(self.root)

    def _path(self, key: str) -> Path:
        parts = key.split("/")
        if any(part in ("", ".", "..") for part in parts):
            raise SinkError(f"event key {key!r} would leave the folder {self.root}")
        return self.root.joinpath(*parts)

    def location(self, key: str) -> str:
        return str(self._path(key))

    def write(self, key: str, body: bytes) -> str:
        path = self._path(key)
        temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex[:12]}.tmp")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except FileExistsError:
            raise SinkError(f"{path.parent}: a file is there, not a folder") from None
        except OSError as exc:
            raise SinkError(f"{path.parent}: {exc.strerror or exc}") from None
        try:
            with open(temporary, "wb") as f:
                f.write(body)
            os.replace(temporary, path)
        except OSError as exc:
            with contextlib.suppress(OSError):  # never hide the write's error behind the clean-up's
                temporary.unlink(missing_ok=True)
            raise SinkError(f"{path}: {exc.strerror or exc}") from None
        return str(path)


class S3Sink(EventSink):
    """Events as objects in an S3 bucket (any S3-compatible server), through boto3."""

    def __init__(self, bucket: str, prefix: str = "", endpoint_url: str | None = None):
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.endpoint_url = endpoint_url or None

    def describe(self) -> str:
        where = f"{S3_SCHEME}{self.bucket}/{self.prefix}".rstrip("/")
        return f"{where} (endpoint {self.endpoint_url})" if self.endpoint_url else where

    def _object_key(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def location(self, key: str) -> str:
        return f"{S3_SCHEME}{self.bucket}/{self._object_key(key)}"

    def _client(self):
        """One boto3 client per worker process and endpoint (clients are thread-safe)."""

        def make():
            import boto3
            from botocore.config import Config

            config = Config(
                retries={"max_attempts": 3, "mode": "standard"}, connect_timeout=5, read_timeout=30
            )
            return boto3.client("s3", endpoint_url=self.endpoint_url, config=config)

        return worker_resource(f"qc_events.s3:{self.endpoint_url}", make)

    def write(self, key: str, body: bytes) -> str:
        from botocore.exceptions import BotoCoreError, ClientError

        location = self.location(key)
        try:
            self._client().put_object(
                Bucket=self.bucket,
                Key=self._object_key(key),
                Body=body,
                ContentType="application/json",
            )
        except ClientError as exc:
            error = exc.response.get("Error", {})
            code, message = error.get("Code", "error"), error.get("Message", str(exc))
            raise SinkError(f"{location}: {code}: {message}") from None
        except BotoCoreError as exc:
            raise SinkError(f"{location}: {exc}") from None
        return location


def open_sink(destination: str, s3_endpoint: str | None = None) -> EventSink:
    """The sink of a destination: ``s3://bucket[/prefix]`` or a folder path."""
    if destination.startswith(S3_SCHEME):
        bucket, _, prefix = destination[len(S3_SCHEME) :].partition("/")
        if not bucket:
            raise ConfigError(f"sink {destination!r}: no bucket name (s3://bucket/prefix)")
        return S3Sink(bucket, prefix, s3_endpoint)
    if "://" in destination:
        raise ConfigError(f"sink {destination!r}: only folders and s3:// are supported")
    return FolderSink(Path(destination))
