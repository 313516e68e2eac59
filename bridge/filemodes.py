"""Who may read the files the bridge writes: the SQLite database and its ``-wal``/``-shm``
files (reporters' identities, password hashes), the cookie-signing key and the recaps.

They are created (and, when found wider, set) to 0600; ``[files] group_read = true``
makes that 0640, for a deployment whose backup or report reader runs as another user of
the service's group. A secrets file that others can read or write is refused.
"""

from __future__ import annotations

import contextlib
import os
import stat
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

PRIVATE = 0o600
GROUP_READ = 0o640


class FilesSettings(BaseModel):
    """``[files]``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    #: Let the service's group read the database, keys and recaps (0640, not 0600).
    group_read: bool = False


def file_mode(settings: Any) -> int:
    """The mode for the deployment's files (raises ConfigError naming ``files.<key>``)."""
    return GROUP_READ if settings.section_as("files", FilesSettings).group_read else PRIVATE


def set_mode(path: str | os.PathLike[str], mode: int) -> None:
    """Give an existing file of ours exactly ``mode``; a file of another owner (or one that
    is gone) is left alone: that is the operator's choice, not ours to undo."""
    with contextlib.suppress(FileNotFoundError, PermissionError):
        st = os.stat(path)
        if st.st_uid == os.geteuid() and stat.S_IMODE(st.st_mode) != mode:
            os.chmod(path, mode)


def create_file(path: str | os.PathLike[str], mode: int) -> None:
    """Create ``path`` empty with ``mode`` unless it exists (whatever the umask)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    except FileExistsError:
        return
    os.close(fd)
    os.chmod(path, mode)  # the umask may have taken the group bit away


def open_to_others(path: str | os.PathLike[str]) -> str | None:
    """Why a secrets file is not private enough, or None. Group read is allowed (the
    service's group reads a root-owned secrets file); others reading or anyone but the
    owner writing is not."""
    mode = stat.S_IMODE(Path(path).stat().st_mode)
    if mode & (stat.S_IROTH | stat.S_IWOTH | stat.S_IWGRP):
        return (f"{path} is mode {mode:04o}: others may read or change it; "
                f"run `chmod 600 {path}` (or 640 for the service's group)")
    return None
