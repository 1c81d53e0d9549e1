"""Reading and writing row files (JSONL, plus JSON and Parquet for input) with clear errors.

Every problem in a data file is reported as ``<file>:<line>: <what is wrong>`` so that a broken
line in a 10,000-row file can be found at once. All errors are :class:`DataError`.
"""
from __future__ import annotations

import errno
import hashlib
import json
import math
import os
import re
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Iterable


class DataError(ValueError):
    """A data file is missing, malformed, or lacks a required field."""


class WriteError(OSError):
    """A record of a run could not be written (full disk, read-only file system...): the message
    names the path and the cause; the write's temporary files are already removed."""


def _errno_of(exc: BaseException, path: Path) -> int | None:
    """The OS error behind ``exc``: its errno, one quoted in the message of a library that wraps it
    (safetensors: ``os error 28``), or, for a library's bare "write failed" / "unexpected pos", a
    full or read-only file system found at ``path``. None: not an I/O failure."""
    if isinstance(exc, OSError) and exc.errno:
        return exc.errno
    quoted = re.search(r"(?:os error|code:) ?(\d+)", str(exc))
    if quoted:
        return int(quoted.group(1))
    folder = next((p for p in [path, *path.parents] if p.exists()), Path("/"))
    stats = os.statvfs(folder)
    if stats.f_flag & os.ST_RDONLY:
        return errno.EROFS
    return errno.ENOSPC if stats.f_bavail * stats.f_frsize < 16 << 20 else None


def file_sha256(path: str | Path) -> str:
    """The sha256 of a file's bytes (hex), read in 1 MB blocks."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


@contextmanager
def guarded_write(path: str | Path, *temporaries: Path):
    """Run a write of ``path``: on any failure (or Ctrl-C) its ``temporaries`` are removed; an I/O
    failure becomes a :class:`WriteError` "cannot write PATH: No space left on device (ENOSPC)"."""
    try:
        yield
    except BaseException as exc:
        code = _errno_of(exc, Path(path)) if isinstance(exc, Exception) else None
        for tmp in temporaries:
            _remove(Path(tmp))
        if code is None or isinstance(exc, WriteError):
            raise
        cause = f"{os.strerror(code)} ({errno.errorcode.get(code, code)})"
        error = WriteError(f"cannot write {path}: {cause}")
        error.errno = code
        raise error from exc


def read_jsonl(path: str | Path) -> list[dict]:
    """Read a JSONL file: one JSON object per line; blank lines are skipped.

    Raises :class:`DataError` for a missing file, a line that is not valid JSON, or a line whose
    value is not an object; the message names the file and the 1-based line number.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    rows: list[dict] = []
    with path.open("rb") as f:
        for lineno, raw in enumerate(f, start=1):
            try:
                line = raw.decode("utf-8-sig" if lineno == 1 else "utf-8")  # a BOM may open the file
            except UnicodeDecodeError as e:
                raise DataError(f"{path}:{lineno}: not valid UTF-8 ({e.reason})") from None
            if not line.strip():
                continue
            try:
                value = json.loads(line)
            except json.JSONDecodeError as e:
                raise DataError(f"{path}:{lineno}: invalid JSON ({e.msg} at column {e.colno})") from None
            if not isinstance(value, dict):
                raise DataError(f"{path}:{lineno}: expected a JSON object, got {type(value).__name__}")
            rows.append(value)
    return rows


def finite(value):
    """``value`` with every non-finite float (inf, nan) replaced by None: JSON has no such numbers
    (``json.dumps`` would write ``Infinity``/``NaN``, which JSON readers reject)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite(v) for v in value]
    return value


def _dump(row: dict) -> str:
    """One JSONL line (UTF-8 kept as is, no trailing newline; non-finite numbers as null)."""
    return json.dumps(finite(row), ensure_ascii=False, allow_nan=False)


def write_jsonl(path: str | Path, rows: Iterable[dict]) -> None:
    """Write ``rows`` to ``path`` as JSONL, replacing the file and creating parent folders.

    The rows go to a temporary file that is then renamed over ``path``, so a crash leaves either
    the old file or the new one, never a half-written one.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with guarded_write(path, tmp):
        with tmp.open("w", encoding="utf-8") as f:
            for row in rows:
                f.write(_dump(row) + "\n")
        os.replace(tmp, path)


def write_json_atomic(path: str | Path, value) -> None:
    """Write ``value`` as indented JSON to ``path`` via a temporary file and a rename (never torn)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    text = json.dumps(finite(value), indent=2, ensure_ascii=False, default=str, allow_nan=False) + "\n"
    with guarded_write(path, tmp):
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)


def read_jsonl_log(path: str | Path) -> list[dict]:
    """Rows of an append-only JSONL log that a crash may have cut: an unreadable LAST line (torn
    mid-write) is dropped; an unreadable line elsewhere is a :class:`DataError` naming it. A
    missing file is an empty log."""
    path = Path(path)
    if not path.is_file():
        return []
    lines = path.read_text(encoding="utf-8", errors="replace").split("\n")
    rows: list[dict] = []
    for lineno, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            if not isinstance(row, dict):
                raise ValueError("not an object")
        except ValueError as e:
            if lineno == len(lines):  # the last line has no newline: a torn write
                break
            raise DataError(f"{path}:{lineno}: unreadable log line ({e})") from None
        rows.append(row)
    return rows


def append_jsonl(path: str | Path, *rows: dict) -> None:
    """Append ``rows`` as lines to ``path`` (created with its folders if needed), whole: a failed
    write (full disk) cuts the file back to where it was and raises :class:`WriteError`."""
    path = Path(path)
    data = "".join(_dump(row) + "\n" for row in rows).encode("utf-8")
    with guarded_write(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            size = os.lseek(fd, 0, os.SEEK_END)
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view):]
            except OSError:
                os.ftruncate(fd, size)
                raise
        finally:
            os.close(fd)


def require_fields(rows: list[dict], fields: Iterable[str], path: str | Path) -> None:
    """Check that every row has every field (present and not null).

    Raises :class:`DataError` ``<path>:<row index + 1>: missing field '<name>'`` for the first gap.
    """
    fields = list(fields)
    for i, row in enumerate(rows):
        for name in fields:
            if row.get(name) is None:
                raise DataError(f"{path}:{i + 1}: missing field {name!r} (required: {', '.join(fields)})")


def read_rows(path: str | Path) -> list[dict]:
    """Read rows from ``.jsonl`` (see :func:`read_jsonl`), ``.json`` (a list of objects) or
    ``.parquet`` (needs the optional ``pyarrow`` package)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".jsonl", ".json", ".parquet"):
        kind = suffix or "(none)"
        raise DataError(f"{path}: unsupported file type {kind!r}; use .jsonl, .json or .parquet")
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    if suffix == ".jsonl":
        return read_jsonl(path)
    if suffix == ".parquet":
        try:
            import pyarrow.parquet as pq
        except ImportError:
            raise DataError(f"{path}: reading .parquet files needs pyarrow (pip install pyarrow)") from None
        try:
            return pq.read_table(path).to_pylist()
        except (OSError, ValueError) as e:  # pyarrow's ArrowInvalid is a ValueError
            raise DataError(f"{path}: not a readable Parquet file ({str(e).strip().splitlines()[0]})") from None
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = raw[:e.start].count(b"\n") + 1
        raise DataError(f"{path}:{line}: not valid UTF-8 ({e.reason} at byte {e.start})") from None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        raise DataError(f"{path}:{e.lineno}: invalid JSON ({e.msg} at column {e.colno})") from None
    if not isinstance(value, list):
        raise DataError(f"{path}: expected a JSON list of objects, got {type(value).__name__}")
    for i, row in enumerate(value):
        if not isinstance(row, dict):
            raise DataError(f"{path}: item {i + 1} is a {type(row).__name__}, expected an object")
    return value
