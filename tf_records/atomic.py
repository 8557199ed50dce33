"""Write-to-temporary-then-rename, so no half-written file ever carries its final name."""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

__all__ = ["atomic_path", "write_bytes", "write_json", "remove_leftovers", "TMP_MARK"]

TMP_MARK = ".tmp-"


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, *, fsync: bool = True, keep_suffix: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it to ``path`` on success.

    With ``fsync`` the data reaches the disk before the rename (safe against power
    loss, not only against a killed process); caches that can be recomputed skip it.
    With ``keep_suffix`` the temporary name ends in the same suffix (``model.tmp-42.keras``),
    for writers that insist on it.

    On an exception the temporary file is removed and ``path`` is left untouched.
    Temporary names contain ``.tmp-`` and the process id, so leftovers of a killed
    process are recognisable (see :func:`remove_leftovers`).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if keep_suffix:
        tmp = path.with_name(f"{path.stem}{TMP_MARK}{os.getpid()}{path.suffix}")
    else:
        tmp = path.with_name(f"{path.name}{TMP_MARK}{os.getpid()}")
    try:
        yield tmp
        if fsync and tmp.is_file():
            with open(tmp, "rb+") as f:
                os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)


def write_bytes(path: str | os.PathLike, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_json(path: str | os.PathLike, obj: Any) -> None:
    """Write ``obj`` as indented, key-ordered JSON (stable bytes for equal objects)."""
    write_bytes(path, (json.dumps(obj, indent=1, sort_keys=True, allow_nan=False) + "\n").encode())


def remove_leftovers(directory: str | os.PathLike) -> list[Path]:
    """Delete temporary files a killed writer left below ``directory``; return them."""
    found = [p for p in Path(directory).rglob(f"*{TMP_MARK}*") if p.is_file()]
    for p in found:
        p.unlink()
    return found
