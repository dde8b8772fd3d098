"""Files: atomic writes (temp file in the same folder, fsync, rename), folders made as `mkdir -p` does or claimed
under a unique name, JSON reading with one-line errors, and the cache folder (FLOPs tables, decoded images).

A reader never sees a half-written file, and a failed write leaves the previous file as it was.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from edgenas.errors import EdgeNASError


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write `data` to `path` so that the file is either the old one or the whole new one."""
    path = Path(path)
    if not path.parent.is_dir():
        raise EdgeNASError(f"cannot write {path}: folder {path.parent} does not exist")
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:  # a read-only folder fails here, before any byte is written
        raise EdgeNASError(f"cannot write {path}: {exc.strerror or exc}; the previous file, if any, is "
                           "unchanged") from None
    try:
        os.chmod(tmp, _file_mode(path))  # mkstemp makes 0600; keep the mode a plain write would give
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise EdgeNASError(f"cannot write {path}: {exc.strerror or exc}; the previous file, if any, is "
                               "unchanged") from None
        raise
    return path


def _file_mode(path: Path) -> int:
    try:
        return path.stat().st_mode & 0o777
    except OSError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


def make_folder(path: str | os.PathLike) -> Path:
    """Create `path` and any missing parents, as `mkdir -p` does; a failure is one `EdgeNASError` naming it."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise EdgeNASError(f"cannot create folder {path}: {exc.strerror or exc}") from None
    return path


def claim_folder(base: str | os.PathLike) -> Path:
    """Create a new, empty folder named `base`, else `base-2`, `base-3`, ...: the first name no one holds.

    Each try is one atomic mkdir, so two processes that chose the same name in the same second get two folders.
    """
    base = Path(base)
    make_folder(base.parent)
    for number in range(1, 10_000):
        path = base if number == 1 else base.with_name(f"{base.name}-{number}")
        try:
            path.mkdir()
        except FileExistsError:
            continue
        except OSError as exc:
            raise EdgeNASError(f"cannot create folder {path}: {exc.strerror or exc}") from None
        return path
    raise EdgeNASError(f"cannot create folder {base}: 9,999 folders of that name exist already")


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write_bytes(path, text.encode())


def write_json(path: str | os.PathLike, data: Any) -> Path:
    return atomic_write_text(path, json.dumps(data, indent=2) + "\n")


def read_json(path: str | os.PathLike, what: str = "file") -> Any:
    """Parse a JSON file; a missing, unreadable or malformed file is an `EdgeNASError` naming it."""
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise EdgeNASError(f"{what} {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise EdgeNASError(f"cannot read {what} {path}: {getattr(exc, 'strerror', None) or exc}") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise EdgeNASError(f"{what} {path} is not valid JSON: {exc.msg} at line {exc.lineno} column "
                           f"{exc.colno}") from None


def cache_dir() -> Path:
    """Where FLOPs tables are cached: $EDGENAS_CACHE_DIR, else $XDG_CACHE_HOME/edgenas, else ~/.cache/edgenas."""
    if os.environ.get("EDGENAS_CACHE_DIR"):
        return Path(os.environ["EDGENAS_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "edgenas"
