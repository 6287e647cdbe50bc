"""File writing for every layer (batch, render, commands): atomic writes and deletes that never
follow symbolic links. Nothing here knows about results; it only moves bytes safely."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any


def current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write via a temporary file in the same folder and rename: no half-written files."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o666 & ~current_umask())  # mkstemp makes 0600: give what open() would
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    """Write text (UTF-8) atomically."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: Path, doc: Any) -> None:
    """Write `doc` as strict JSON (no NaN), laid out by readable_json, atomically."""
    atomic_write_text(path, readable_json(doc) + "\n")


def readable_json(doc: Any, indent: int = 2) -> str:
    """Strict JSON (NaN and ±inf refused, as json.dumps(allow_nan=False)) laid out for reading:
    objects and arrays one entry per line, except the innermost two levels, which go on one line
    (a series of numbers, an array of such series, an object of them: one metric's series by
    statistic). The same document as json.dumps(doc, indent=2); the series are written by
    json's C encoder (a result's summary.json holds ~10^6 numbers, which json's pure-Python
    indenting encoder writes one per line and several times slower). How deep an array nests is
    told by its first entry: a layout choice only, anything deeper later on is written inline."""
    one = json.JSONEncoder(allow_nan=False, separators=(", ", ": ")).encode

    def key(k: Any) -> str:  # json's own key rules (str, int, float, bool, None; else TypeError)
        return one(k) if isinstance(k, str) else one({k: 0})[1:-4]

    def walk(value: Any, level: int) -> tuple[int, str]:
        """(how deep value nests, its text at this indentation level)"""
        if isinstance(value, (list, tuple)):
            first = value[0] if value else None
            if not isinstance(first, (dict, list, tuple)):
                return 1, one(value)
            if isinstance(first, (list, tuple)) and not (first and isinstance(first[0], (dict, list, tuple))):
                return 2, one(value)
            items = [walk(v, level + 1) for v in value]
            depth = 1 + max(d for d, _ in items)
            if depth <= 2:
                return depth, "[" + ", ".join(t for _, t in items) + "]"
            pad = "\n" + " " * (indent * (level + 1))
            return depth, "[" + ",".join(pad + t for _, t in items) + "\n" + " " * (indent * level) + "]"
        if isinstance(value, dict):
            if not value:
                return 1, "{}"
            items = [(key(k), *walk(v, level + 1)) for k, v in value.items()]
            depth = 1 + max(d for _, d, _ in items)
            if depth <= 2:
                return depth, "{" + ", ".join(f"{k}: {t}" for k, _, t in items) + "}"
            pad = "\n" + " " * (indent * (level + 1))
            return depth, "{" + ",".join(f"{pad}{k}: {t}" for k, _, t in items) + "\n" + " " * (indent * level) + "}"
        return 0, one(value)

    return walk(doc, 0)[1]


def is_real_dir(path: Path) -> bool:
    """A folder that is not a symbolic link (deleting inside a link would delete elsewhere)."""
    return Path(path).is_dir() and not Path(path).is_symlink()


def remove_file(path: Path) -> None:
    """Delete one file (a symbolic link itself, never its target); nothing when it is absent."""
    p = Path(path)
    if p.is_symlink() or p.is_file():
        p.unlink(missing_ok=True)


def remove_matching(folder: Path, pattern: str) -> int:
    """Delete the regular files matching `pattern` directly in `folder` (not through a link to a
    folder, and links themselves only as links). Returns how many were removed."""
    if not is_real_dir(folder):
        return 0
    n = 0
    for f in Path(folder).glob(pattern):
        if f.is_symlink() or f.is_file():
            f.unlink(missing_ok=True)
            n += 1
    return n


def is_inside(root: Path, path: Path) -> bool:
    """Whether `path` (its links resolved) lies inside `root` (its links resolved): what a name or
    a path read from a file must satisfy before anything is written, deleted or read there."""
    try:
        return Path(path).resolve().is_relative_to(Path(root).resolve())
    except (OSError, RuntimeError, ValueError):  # a link loop, a NUL byte
        return False


def link_below(root: Path, path: Path, removed: frozenset[Path] = frozenset()) -> Path | None:
    """The first part of `path` below `root` that is a symbolic link or is there but not a folder
    (writing through it would write elsewhere, or fail late); None when every part is a real
    folder or not made yet. `root` itself is the user's choice and is not checked. A link in
    `removed` (one that will be removed as a link before anything is written) counts as not there."""
    root, path = Path(root), Path(path)
    try:
        rel = path.relative_to(root)
    except ValueError:
        return path
    p = root
    for part in rel.parts:
        p = p / part
        if p.is_symlink() and p in removed:
            return None
        if p.is_symlink() or (p.exists() and not p.is_dir()):
            return p
        if not p.exists():
            return None
    return None


def is_regular_file(path: Path) -> bool:
    """A regular file, its name not a link (a FIFO, a device or a folder at a path bncli reads
    would hang or fail; a link could lead anywhere)."""
    import stat

    try:
        return stat.S_ISREG(os.lstat(path).st_mode)
    except (OSError, ValueError):
        return False


MAX_DOCUMENT_BYTES = 1 << 30  # a result document (summary.json, batch.json) larger than this is not bncli's


class NotReadable(ValueError):
    """A path that is not a regular file, or holds more bytes than a file of its kind can."""


def read_bounded(path: Path, max_bytes: int) -> bytes:
    """The bytes of a regular file (its name may be a link), at most `max_bytes`: a named pipe,
    /dev/zero or another device is refused before it is opened (reading it would block forever
    or never end), and a larger file after max_bytes + 1 bytes. NotReadable says which."""
    import stat

    if not stat.S_ISREG(os.stat(path).st_mode):
        raise NotReadable("not a regular file (a pipe, a device or a folder)")
    with open(path, "rb") as f:
        data = f.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise NotReadable(f"larger than {max_bytes >> 20} MiB")
    return data


def remove_empty_dir(path: Path) -> bool:
    """Remove a real, empty folder (never a link's target); True when removed."""
    p = Path(path)
    if is_real_dir(p) and not any(p.iterdir()):
        p.rmdir()
        return True
    return False


LOCK_NAME = ".bncli.lock"


class FolderLock:
    """An exclusive lock on an output folder for as long as a command writes into it: a second
    bncli writing into the same folder at the same time is refused at once (flock, released by
    the kernel when the process ends, so a killed run leaves no stale lock)."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self._fd: int | None = None

    def __enter__(self) -> FolderLock:
        from bncli.errors import UsageError

        try:
            import fcntl
        except ImportError:  # Windows: no flock; nothing to hold
            return self
        path = self.folder / LOCK_NAME
        if path.is_symlink():
            raise UsageError(f"--out: {path} is a symbolic link; remove it")
        fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            # the holder before us removes the file as it ends: a lock on a removed file is no lock
            if os.stat(path, follow_symlinks=False).st_ino != os.fstat(fd).st_ino:
                raise OSError("the lock file was replaced")
        except OSError:
            os.close(fd)
            raise UsageError(f"--out: {self.folder} is in use by another bncli command (it holds "
                             f"{LOCK_NAME}); wait for it, or give another folder") from None
        self._fd = fd
        return self

    def __exit__(self, *exc: object) -> None:
        if self._fd is not None:
            try:  # removed while still held (nothing left behind in the results), then released
                (self.folder / LOCK_NAME).unlink(missing_ok=True)
            except OSError:
                pass
            os.close(self._fd)
            self._fd = None
