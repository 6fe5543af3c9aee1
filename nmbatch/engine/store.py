"""Where a cache keeps its bytes: a narrow interface with swappable backends.

The cache talks to a :class:`Store` in keys (``'items/0000000001-0000000001.1a2b3c4d.parquet'``)
and bytes. Every write is atomic (:func:`atomic_write`: a hidden temporary name, fsync,
rename), so a reader sees the old value or the new one, never half a file. Folders
that readers list (``items``, ``results/<table>``) are *versioned*: :meth:`Store.swap_folder`
replaces a folder's whole content in one step. :class:`DirectoryStore` is the real one;
:class:`MemoryStore` serves the predecessor's "run without a cache" mode and tests of the cache
logic. Capabilities are flags (``local_root``), not ``isinstance`` checks.
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
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

import zarr
import zarr.storage

from nmbatch.engine import faults
from nmbatch.engine.errors import CacheLockedError
from nmbatch.engine.layout import ARRAYS_KEY, LOCK_KEY

TEMP_SUFFIX = ".tmp"
VERSION_MARK = ".v"


def atomic_write(path: Path, data: bytes, sync: bool = True) -> None:
    """Write ``path`` under a hidden name, fsync it (unless ``sync`` is False), rename it.

    The temporary file is removed if anything fails (a full disk, a read-only one),
    so a failed write leaves nothing behind. Files whose name carries their checksum
    (a worker's staged outcome) skip the fsync: a process killed at any moment leaves
    them whole, and what a power cut might tear is found by its checksum and run again.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}{TEMP_SUFFIX}")
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
            if sync:
                fh.flush()
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


class Store(ABC):
    """Keyed, atomic byte storage plus a zarr store for arrays and a writer lock.

    Attributes
    ----------
    location : str
        Where it is, for messages.
    local_root : Path or None
        A folder workers can write into themselves (their staged outcomes), or None
        when only this process can reach the store.
    """

    location: str
    local_root: Path | None = None

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
        """Whether a key holds a value (or is a folder)."""

    @abstractmethod
    def rename(self, source: str, target: str) -> None:
        """Move a key or folder to ``target`` in one step, replacing a file there."""

    @abstractmethod
    def swap_folder(self, key: str, keep: Iterable[str], add: Mapping[str, bytes]) -> None:
        """Make folder ``key`` hold exactly ``keep`` (names already in it) and ``add``, at once."""

    @abstractmethod
    def zarr_store(self) -> zarr.abc.store.Store:
        """The zarr store that holds the arrays (one group per item)."""

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

    def _under(self, key: str) -> list[str]:
        return [k for k in self._data if k == key or k.startswith(key.rstrip("/") + "/")]

    def delete(self, key: str) -> None:
        for k in self._under(key):
            del self._data[k]
        if key == ARRAYS_KEY:
            self._zarr = zarr.storage.MemoryStore()

    def exists(self, key: str) -> bool:
        return bool(self._under(key))

    def rename(self, source: str, target: str) -> None:
        for k in self._under(source):
            self._data[target + k[len(source) :]] = self._data.pop(k)

    def swap_folder(self, key: str, keep: Iterable[str], add: Mapping[str, bytes]) -> None:
        kept = {f"{key}/{name}": self._data[f"{key}/{name}"] for name in keep}
        self.delete(key)
        self._data.update(kept)
        self._data.update({f"{key}/{name}": bytes(data) for name, data in add.items()})

    def zarr_store(self) -> zarr.abc.store.Store:
        return self._zarr


class DirectoryStore(Store):
    """Files under one folder; every write goes through :func:`atomic_write`.

    Hidden names (starting with ``.``) are skipped by :meth:`list` and by pyarrow's
    dataset discovery, so a file half-written at a crash is never read. A versioned
    folder ``a/b`` is a link to ``a/.b.v000007``; :meth:`swap_folder` builds
    ``.b.v000008`` (hard links to the files it keeps) and replaces the link.
    """

    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.location = str(self.root)
        self.local_root = self.root

    def path(self, key: str) -> Path:
        return self.root / key

    def read_bytes(self, key: str) -> bytes:
        try:
            return self.path(key).read_bytes()
        except (FileNotFoundError, NotADirectoryError):
            raise KeyError(key) from None

    def write_bytes(self, key: str, data: bytes) -> None:
        atomic_write(self.path(key), data)

    def list(self, prefix: str) -> list[str]:
        folder = self.path(prefix)
        if not folder.is_dir():
            return []
        prefix = prefix.rstrip("/")
        return sorted(
            f"{prefix}/{e.name}" for e in os.scandir(folder) if not e.name.startswith(".")
        )

    def delete(self, key: str) -> None:
        path = self.path(key)
        if path.is_symlink():
            target = path.resolve()
            path.unlink()
            shutil.rmtree(target, ignore_errors=True)
        elif path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)

    def exists(self, key: str) -> bool:
        return self.path(key).exists()

    def rename(self, source: str, target: str) -> None:
        destination = self.path(target)
        destination.parent.mkdir(parents=True, exist_ok=True)
        os.replace(self.path(source), destination)

    def ensure_folder(self, key: str) -> None:
        """Create the versioned folder ``key`` (a link to its first version) if it is missing."""
        link = self.path(key)
        if link.is_symlink() or link.is_dir():
            return
        link.parent.mkdir(parents=True, exist_ok=True)
        version = link.with_name(f".{link.name}{VERSION_MARK}000001")
        version.mkdir(exist_ok=True)
        _replace_link(link, version.name)

    def swap_folder(self, key: str, keep: Iterable[str], add: Mapping[str, bytes]) -> None:
        self.ensure_folder(key)
        link = self.path(key)
        current = link.resolve()
        number = int(current.name.rpartition(VERSION_MARK)[2]) + 1
        nxt = link.with_name(f".{link.name}{VERSION_MARK}{number:06d}")
        shutil.rmtree(nxt, ignore_errors=True)  # a version an interrupted swap left unfinished
        nxt.mkdir()
        for name in keep:
            os.link(current / name, nxt / name)
        for name, data in add.items():
            atomic_write(nxt / name, data)
        _fsync_dir(nxt)
        faults.checkpoint("swap-built")
        _replace_link(link, nxt.name)
        faults.checkpoint("swap-linked")
        shutil.rmtree(current, ignore_errors=True)

    def orphan_versions(self, key: str) -> list[Path]:
        """Versions of folder ``key`` its link does not point at (left by a crash)."""
        link = self.path(key)
        if not link.parent.is_dir():
            return []
        live = link.resolve() if link.is_symlink() else None
        stem = f".{link.name}{VERSION_MARK}"
        return [
            p
            for p in link.parent.iterdir()
            if p.name.startswith(stem) and p.name[len(stem) :].isdigit() and p != live
        ]

    def is_versioned(self, key: str) -> bool:
        return self.path(key).is_symlink()

    def zarr_store(self) -> zarr.abc.store.Store:
        return zarr.storage.LocalStore(self.path(ARRAYS_KEY))

    def remove_temp_files(self, skip: tuple[str, ...] = (ARRAYS_KEY,)) -> list[str]:
        """Delete hidden temporary files a crash left in the cache (not under ``skip``)."""
        removed = []
        for dirpath, dirnames, names in os.walk(self.root):
            if Path(dirpath) == self.root:
                dirnames[:] = [d for d in dirnames if d not in skip]
            for name in names:
                if name.startswith(".") and name.endswith(TEMP_SUFFIX):
                    path = Path(dirpath) / name
                    path.unlink(missing_ok=True)
                    removed.append(str(path.relative_to(self.root)))
        return removed

    @contextlib.contextmanager
    def lock(self, holder: dict) -> Iterator[None]:
        """An ``flock`` on ``.lock``: released by the kernel if the process dies, even by kill -9.

        ``flock`` is reliable on local disks; on network file systems (NFS, Lustre)
        it depends on the mount: see the README.
        """
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.path(LOCK_KEY), "a+") as fh:
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
                with contextlib.suppress(OSError):
                    fh.seek(0)
                    fh.truncate()
                fcntl.flock(fh, fcntl.LOCK_UN)

    def lock_holder(self) -> dict | None:
        path = self.path(LOCK_KEY)
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


def _replace_link(link: Path, target_name: str) -> None:
    """Point ``link`` at its sibling ``target_name`` in one step (symlink, then rename)."""
    tmp = link.with_name(f".{link.name}.{uuid.uuid4().hex[:8]}.link{TEMP_SUFFIX}")
    os.symlink(target_name, tmp)
    try:
        if link.is_dir() and not link.is_symlink():
            raise FileExistsError(f"{link} is a folder, not a versioned link")
        os.replace(tmp, link)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(link.parent)


def _fsync_dir(folder: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def lock_holder_info(command: str) -> dict:
    """What a run writes into the lock so a refused run can say who holds it."""
    return {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "command": command,
    }
