"""Atomic writes, so that an artifact exists only once it is complete.

Every artifact is written to a temporary sibling and renamed into place; a folder artifact
(a saved model) is renamed as a whole. A crash therefore leaves either nothing or a finished
artifact, and "does the final path exist" is the only test a stage needs to skip work.
"""

import fcntl
import hashlib
import json
import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np


def _tmp_sibling(path: Path) -> Path:
    return path.with_name(f".{path.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}")


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp_sibling(path)
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def atomic_write_json(path: str | Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def atomic_save_npy(path: str | Path, array: np.ndarray) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp_sibling(path)
    with open(tmp, "wb") as fh:
        np.save(fh, array)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def link_or_copy(source: str | Path, path: str | Path) -> None:
    """Hard-link `path` to `source` (artifacts are never modified in place); copy where links are impossible."""
    try:
        os.link(source, path)
    except OSError:
        shutil.copy2(source, path)


def atomic_link(source: str | Path, path: str | Path) -> None:
    """`link_or_copy`, atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp_sibling(path)
    link_or_copy(source, tmp)
    os.replace(tmp, path)
    _fsync_dir(path.parent)


@contextmanager
def atomic_dir(path: str | Path) -> Iterator[Path]:
    """Yield a temporary folder; on success it replaces `path` in one rename, on error it is removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp_sibling(path)
    tmp.mkdir()
    try:
        yield tmp
        if path.exists():
            shutil.rmtree(path)
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def clean_temporaries(root: str | Path) -> int:
    """Remove temporaries a killed process left behind; return how many."""
    removed = 0
    for tmp in Path(root).rglob(".*.tmp-*"):
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            tmp.unlink(missing_ok=True)
        removed += 1
    return removed


class DiskSpaceError(RuntimeError):
    """Not enough free disk for the artifacts a stage is about to write."""


def require_free_space(folder: str | Path, needed_bytes: int, what: str) -> None:
    """Raise DiskSpaceError, before anything is written, when `folder`'s disk has less than `needed_bytes` free."""
    folder = Path(folder)
    probe = folder
    while not probe.exists():
        probe = probe.parent
    free = shutil.disk_usage(probe).free
    if free < needed_bytes:
        raise DiskSpaceError(f"{folder}: {what} needs about {needed_bytes / 2**20:,.0f} MiB but the disk has "
                             f"{free / 2**20:,.0f} MiB free; free some space or set run.output_dir elsewhere")


@contextmanager
def file_lock(path: str | Path) -> Iterator[None]:
    """An exclusive lock on `path` (created if needed) for the duration; the OS releases it if the process dies,
    so a killed holder never leaves it stuck."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


class RunLocked(RuntimeError):
    """Another process is writing this run folder."""


_HELD: set[Path] = set()  # run folders whose writer lock this process holds


@contextmanager
def writer_lock(root: str | Path, keep_if: str = "") -> Iterator[None]:
    """Be the one writer of run folder `root` for the duration, or raise `RunLocked` naming the other process.

    Re-entrant within a process (run_all holds it while its stages run); the OS releases it when the holder
    exits or is killed, so a crashed run never leaves its folder locked. A folder this call created is removed
    again when the work fails before the file `keep_if` (a path in it) exists: a recipe whose data is refused
    leaves no run folder behind.
    """
    root = Path(root).resolve()
    if root in _HELD:
        yield
        return
    created = not root.exists()
    root.mkdir(parents=True, exist_ok=True)
    try:
        with _held(root):
            yield
    except BaseException:
        if created and keep_if and not (root / keep_if).exists():
            shutil.rmtree(root, ignore_errors=True)
        raise


@contextmanager
def _held(root: Path) -> Iterator[None]:
    with open(root / ".writer.lock", "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            raise RunLocked(f"run folder {root} is being written by {holder}; expected one writer at a time (wait "
                            f"for it, or stop it: its finished work is kept)") from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"process {os.getpid()}")
        handle.flush()
        _HELD.add(root)
        try:
            yield
        finally:
            _HELD.discard(root)


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
