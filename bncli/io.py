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
    atomic_write_text(path, json.dumps(doc, indent=2, allow_nan=False) + "\n")


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
