"""``fs/walk``: a bounded breadth-first listing of a directory tree, as the reference does it.

Rules (measured against codex 0.169.0):

- Breadth first; the entries of one directory in byte order of their names. The root itself
  is not an entry. A root that is not a directory (or a symlink to one, unless
  ``followDirectorySymlinks``) gives no entries; a missing root is an error (-32004).
- Only regular files (``"file"``) and directories (``"directory"``) are entries. Symlinks are
  skipped, except symlinks to directories with ``followDirectorySymlinks`` (listed as
  directories; each directory is descended at most once, which also stops link loops).
- ``maxDepth`` 0 lists the root's children only; depth n also reads directories n levels down.
  Reaching it does not set ``truncated``.
- Every name read counts against ``maxEntries`` (also skipped ones and ones that fail); the walk
  stops with ``truncated`` at the first name beyond it. Every directory read, the root included,
  counts against ``maxDirectories``; a directory left unread because of it sets ``truncated``.
- ``pruneHiddenDirectories`` lists directories whose name starts with ``.`` but does not enter
  them. A name that cannot be examined, or a directory that cannot be read, becomes an
  ``errors`` item ``{path, message}`` and the walk goes on.
"""

from __future__ import annotations

import os
import stat
from collections import deque

from exec_server_protocol import format_path_uri
from exec_server_protocol.fs import WalkEntry, WalkError, WalkResult

from ._errors import os_error_text

__all__ = ["walk"]


def walk(
    root: str,
    *,
    max_depth: int,
    max_entries: int,
    max_directories: int,
    follow_directory_symlinks: bool,
    prune_hidden_directories: bool,
) -> WalkResult:
    """Walk ``root`` (limits already validated: entries and directories ≥ 1, depth ≥ 0)."""
    root_st = os.lstat(root)
    if stat.S_ISLNK(root_st.st_mode) and follow_directory_symlinks:
        try:
            root_st = os.stat(root)
        except OSError:
            return WalkResult(entries=[], errors=[], truncated=False)
    if not stat.S_ISDIR(root_st.st_mode):
        return WalkResult(entries=[], errors=[], truncated=False)

    entries: list[WalkEntry] = []
    errors: list[WalkError] = []
    visited = {(root_st.st_dev, root_st.st_ino)}
    queue: deque[tuple[str, int]] = deque([(root, 0)])
    directories_read = 0
    names_seen = 0
    while queue:
        directory, depth = queue.popleft()
        if directories_read >= max_directories:
            return WalkResult(entries=entries, errors=errors, truncated=True)
        directories_read += 1
        try:
            names = sorted(os.listdir(os.fsencode(directory)))
        except OSError as exc:
            errors.append(WalkError(path=format_path_uri(directory), message=os_error_text(exc)))
            continue
        for raw_name in names:
            names_seen += 1
            if names_seen > max_entries:
                return WalkResult(entries=entries, errors=errors, truncated=True)
            name = os.fsdecode(raw_name)
            child = os.path.join(directory, name)
            try:
                st = os.lstat(child)
                if stat.S_ISLNK(st.st_mode):
                    if not follow_directory_symlinks:
                        continue
                    try:
                        st = os.stat(child)
                    except OSError:
                        continue  # dangling or looping link: nothing to list
                    if not stat.S_ISDIR(st.st_mode):
                        continue
            except OSError as exc:
                errors.append(WalkError(path=format_path_uri(child), message=os_error_text(exc)))
                continue
            if stat.S_ISREG(st.st_mode):
                entries.append(WalkEntry(path=format_path_uri(child), kind="file"))
            elif stat.S_ISDIR(st.st_mode):
                entries.append(WalkEntry(path=format_path_uri(child), kind="directory"))
                if depth >= max_depth or (prune_hidden_directories and name.startswith(".")):
                    continue
                key = (st.st_dev, st.st_ino)
                if key not in visited:
                    visited.add(key)
                    queue.append((child, depth + 1))
    return WalkResult(entries=entries, errors=errors, truncated=False)
