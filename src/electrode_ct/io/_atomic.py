"""Write-to-temporary-then-rename, so an interrupted write never leaves a partial output."""

from __future__ import annotations

import errno
import os
import re
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from electrode_ct.errors import OutputError

# errors of the file system rather than of the data: reported as one line naming the file
_DISK_ERRORS = {errno.ENOSPC: "the disk is full", errno.EFBIG: "the file size limit was reached",
                errno.EDQUOT: "the disk quota is exceeded", errno.EROFS: "the folder is read-only",
                errno.EACCES: "permission denied", errno.EPERM: "permission denied"}
_TEMP_NAME = re.compile(r"^\..+\.[0-9a-f]{8}\.tmp(\..*)?$")


def output_error(path: str | os.PathLike[str], exc: OSError) -> OutputError:
    """The one-line :class:`OutputError` for a failed write of ``path``."""
    why = _DISK_ERRORS.get(exc.errno or -1, exc.strerror or str(exc))
    return OutputError(f"{path}: cannot write ({why}); nothing was written there")


def is_disk_error(exc: BaseException) -> bool:
    """Whether ``exc`` is a file-system failure (full disk, read-only, permissions)."""
    return isinstance(exc, OSError) and exc.errno in _DISK_ERRORS


@contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary sibling path; rename it to ``path`` when the block succeeds.

    The temporary file or folder is removed when the block raises (including
    ``KeyboardInterrupt``). Works for files and for folder outputs such as Zarr stores.
    A full disk, a file-size limit or a read-only folder raise :class:`OutputError`
    naming ``path``. A process killed outright (SIGKILL) can leave the temporary behind;
    :func:`remove_temporaries` clears such leftovers.

    Parameters
    ----------
    path : path-like
        Final destination.

    Yields
    ------
    pathlib.Path
        A temporary path in the same folder, with the same suffix.
    """
    final = Path(path)
    tmp = final.with_name(f".{final.stem}.{uuid.uuid4().hex[:8]}.tmp{final.suffix}")
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        yield tmp
        if final.is_dir() and not final.is_symlink():
            shutil.rmtree(final)
        os.replace(tmp, final)
    except BaseException as exc:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        elif tmp.exists():
            tmp.unlink()
        cause = next((e for e in (exc, exc.__cause__, exc.__context__) if is_disk_error(e)),
                     None)
        if isinstance(cause, OSError):
            raise output_error(final, cause) from exc
        raise


def remove_temporaries(folder: str | os.PathLike[str]) -> list[Path]:
    """Remove the temporaries that :func:`atomic_path` left in ``folder`` (recursively)
    when a process was killed mid-write; returns what was removed.

    Call it only while no other process writes to ``folder`` (the pipeline runner holds
    its lock).
    """
    removed = []
    for p in sorted(Path(folder).rglob(".*.tmp*"), reverse=True):
        if _TEMP_NAME.match(p.name) and p.exists():
            shutil.rmtree(p) if p.is_dir() else p.unlink()
            removed.append(p)
    return removed
