"""Writing files safely: atomically (temp file + ``os.replace``), never over an input, text that survives Excel."""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from collections.abc import Iterable
from pathlib import Path

from evtrack.errors import EvtrackError

#: Leading characters that make Excel/LibreOffice treat a cell as a formula (OWASP "CSV injection").
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def neutralise_cell(value: str) -> str:
    """Prefix a cell that a spreadsheet would run as a formula with a single quote (OWASP's advice).

    A lone ``-`` (the Windows "no value" marker) and plain negative numbers are left alone: they are data.
    """
    if value.startswith(FORMULA_PREFIXES) and value != "-":
        if value[0] in "+-":
            try:
                float(value)
            except ValueError:
                return "'" + value
            return value
        return "'" + value
    return value


def check_not_input(output: Path, inputs: Iterable[Path]) -> None:
    """Refuse to write over one of the files being read."""
    try:
        target = output.resolve()
    except OSError:
        return
    for path in inputs:
        with contextlib.suppress(OSError):
            if path.resolve() == target:
                raise EvtrackError(f"refusing to overwrite input file {output}")


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that a crash leaves either the old file or the new one, never half.

    ``mkstemp`` creates the temporary file 0600; the result gets the mode any program's ``open()`` would give it:
    an existing file's own mode, else 0666 less the umask (0644 under the usual 022).
    """
    path = Path(path)
    if path.is_dir():
        raise EvtrackError(f"{path}: is a directory, not a file")
    directory = path.parent if str(path.parent) else Path(".")
    if not directory.exists():
        raise EvtrackError(f"{path}: folder {directory} does not exist")
    mode = _mode_for(path)
    handle, temp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    try:
        os.chmod(temp_name, mode)
        with os.fdopen(handle, "wb") as temp:
            temp.write(data)
            temp.flush()
            os.fsync(temp.fileno())
        os.replace(temp_name, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp_name)
        raise


def _mode_for(path: Path) -> int:
    """The permission bits a plain ``open(path, "w")`` would leave: the file's own, or 0666 less the umask."""
    try:
        return stat.S_IMODE(path.stat().st_mode)
    except OSError:
        return creation_mode()


def creation_mode(*, directory: bool = False) -> int:
    """The mode a new file (0666) or folder (0777) gets under the current umask; ``mkstemp``/``mkdtemp`` give
    0600/0700 instead, so what they create is chmod-ed to this before it takes the output's name."""
    umask = os.umask(0)  # reading the umask means setting it; put it straight back
    os.umask(umask)
    return (0o777 if directory else 0o666) & ~umask
