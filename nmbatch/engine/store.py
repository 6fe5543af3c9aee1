"""Where a cache keeps its bytes: a narrow interface with swappable backends.

The cache talks to a :class:`Store` in keys (``'items/00000001-00000001.parquet'``)
and bytes. Every write is atomic: a reader sees the old value or the new one,
never half a file. :class:`DirectoryStore` is the real one; :class:`MemoryStore`
serves the seed's "run without a cache" mode and tests of the cache logic.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import socket
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Iterator
from pathlib import Path

import zarr
import zarr.storage

from nmbatch.engine.errors import CacheLockedError

ARRAYS_KEY = "arrays.zarr"
LOCK_KEY = ".lock"


class Store(ABC):
    """Keyed, atomic byte storage plus a zarr store for arrays and a writer lock."""

    location: str

    @abstractmethod
    def read_bytes(self, key: str) -> bytes:
        """Return the value of ``key``; ``KeyError`` when absent."""

    @abstractmethod
    def write_bytes(self, key: str, data: bytes) -> None:
        """Write ``key`` atomically."""

    @abstractmethod
    def list(self, prefix: str) -> list[str]:
        """Keys directly under ``prefix`` (a folder-like path), sorted; hidden names excluded."""

    @abstractmethod
    def delete(self, key: str) -> None:
        """Remove a key or everything under a prefix; absent keys are fine."""

    @abstractmethod
    def exists(self, key: str) -> bool:
        """Whether a key holds a value."""

    @abstractmethod
    def zarr_store(self) -> zarr.abc.store.Store:
        """The zarr store that holds the arrays (one group per item)."""

    @property
    def array_path(self) -> str | None:
        """A path workers can open to write arrays themselves, or None (driver writes)."""
        return None

    @contextlib.contextmanager
    def lock(self, holder: dict) -> Iterator[None]:
        """Hold the exclusive writer lock; raise CacheLockedError if another run has it."""
        yield

    def lock_holder(self) -> dict | None:
        """Who holds the writer lock now, or None."""
        return None


class MemoryStore(Store):
    """Everything in a dict: nothing survives the process."""

    def __init__(self) -> None:
        self.location = "<memory>"
        self._data: dict[str, bytes] = {}
        self._zarr = zarr.storage.MemoryStore()

    def read_bytes(self, key: str) -> bytes:
        return self._data[key]

    def write_bytes(self, key: str, data: bytes) -> None:
        self._data[key] = bytes(data)

    def list(self, prefix: str) -> list[str]:
        prefix = prefix.rstrip("/") + "/"
        names = {k[len(prefix) :].split("/")[0] for k in self._data if k.startswith(prefix)}
        return sorted(prefix + n for n in names if not n.startswith("."))

    def delete(self, key: str) -> None:
        for k in [k for k in self._data if k == key or k.startswith(key.rstrip("/") + "/")]:
            del self._data[k]
        if key == ARRAYS_KEY:
            self._zarr = zarr.storage.MemoryStore()

    def exists(self, key: str) -> bool:
        return key in self._data

    def zarr_store(self) -> zarr.abc.store.Store:
        return self._zarr


class DirectoryStore(Store):
    """Files under one folder; writes go to a hidden temporary name, then ``os.replace``.

    Hidden names (starting with ``.``) are skipped by :meth:`list` and by
    pyarrow's dataset discovery, so a file half-written at a crash is never read;
    :meth:`remove_leftovers` deletes such files when a run opens the cache.
    """

    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.location = str(self.root)
        self._lock_file = None

    def _path(self, key: str) -> Path:
        return self.root / key

    def read_bytes(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError:
            raise KeyError(key) from None

    def write_bytes(self, key: str, data: bytes) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)

    def list(self, prefix: str) -> list[str]:
        folder = self._path(prefix)
        if not folder.is_dir():
            return []
        prefix = prefix.rstrip("/")
        return sorted(
            f"{prefix}/{e.name}" for e in os.scandir(folder) if not e.name.startswith(".")
        )

    def delete(self, key: str) -> None:
        path = self._path(key)
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)

    def exists(self, key: str) -> bool:
        return self._path(key).exists()

    def zarr_store(self) -> zarr.abc.store.Store:
        return zarr.storage.LocalStore(self._path(ARRAYS_KEY))

    @property
    def array_path(self) -> str | None:
        return str(self._path(ARRAYS_KEY))

    def remove_leftovers(self, prefixes: tuple[str, ...]) -> list[str]:
        """Delete hidden temporary files a crash left under ``prefixes``; return their keys."""
        removed = []
        for prefix in prefixes:
            folder = self._path(prefix)
            if not folder.is_dir():
                continue
            for entry in folder.rglob(".*.tmp"):
                entry.unlink(missing_ok=True)
                removed.append(str(entry.relative_to(self.root)))
        return removed

    @contextlib.contextmanager
    def lock(self, holder: dict) -> Iterator[None]:
        """An ``flock`` on ``.lock``: released by the kernel if the process dies, even by kill -9.

        ``flock`` is reliable on local disks; on network file systems (NFS, Lustre)
        it depends on the mount: see the README.
        """
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self._path(LOCK_KEY), "a+") as fh:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                other = self.lock_holder() or {}
                raise CacheLockedError(
                    f"cache {self.root} is in use by another run "
                    f"(pid {other.get('pid', '?')} on {other.get('host', '?')}, "
                    f"started {other.get('started', '?')}): "
                    "wait for it to finish, or use another --output"
                ) from None
            try:
                fh.seek(0)
                fh.truncate()
                fh.write(json.dumps(holder))
                fh.flush()
                yield
            finally:
                fh.seek(0)
                fh.truncate()
                fcntl.flock(fh, fcntl.LOCK_UN)

    def lock_holder(self) -> dict | None:
        path = self._path(LOCK_KEY)
        if not path.exists():
            return None
        with open(path) as fh:
            try:
                fcntl.flock(fh, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                try:
                    return json.loads(fh.read() or "{}")
                except json.JSONDecodeError:
                    return {}
            fcntl.flock(fh, fcntl.LOCK_UN)
        return None


def lock_holder_info(command: str) -> dict:
    """What a run writes into the lock so a refused run can say who holds it."""
    return {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "command": command,
    }
