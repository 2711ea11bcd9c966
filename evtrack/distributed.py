"""Ingest on a Dask cluster: workers hash and read files, the client writes the store.

Only :func:`scan_file` runs on the workers. It hashes a file and, unless the store already has that digest, reads
it with :func:`evtrack.reading.read_file`; what comes back over the network is the small normalised event table
(Arrow batches), the file's stats and its coverage, never the file's bytes. The client feeds those results through
:meth:`evtrack.store.Store.ingest`, the same code a local ingest uses, one transaction per file. A worker that dies
mid-task loses nothing: the scheduler runs the task again elsewhere, and since workers never write, a task that
ran twice still adds each event once.

Inputs may be local paths (which every worker must see at the same path: a share mounted alike everywhere) or
fsspec URLs (``s3://``, ``abfs://``, ``gs://``, ... when the matching fsspec package is installed on the client
and the workers). A URL is copied by the worker into a temporary file, hashed on the way, and read from there:
``read_file`` and both parsing engines take a path (python-evtx memory-maps it), and a local copy reads at disk
speed after one sequential download.

``dask`` is optional (``pip install 'evtrack[dask]'``); this module imports it only when a cluster is asked for.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any, cast

from evtrack.errors import ConfigError
from evtrack.reading import Inputs, expand_inputs, read_file
from evtrack.scanning import ScannedFile
from evtrack.sources.base import ReadIssue, ReadPlan

if TYPE_CHECKING:
    from evtrack.reading import FileResult

DASK_HINT = "--executor dask needs: pip install 'evtrack[dask]'"
#: Retries of a task that raised (a flaky share, a timeout); a lost worker is rescheduled by Dask on its own.
DEFAULT_RETRIES = 2
_BLOCK = 1 << 20
_GLOB_CHARS = frozenset("*?[")

#: What a worker sends back: (sha256 or None, the read result or None, an error or None).
ScanTuple = tuple["str | None", "FileResult | None", "str | None"]
ScanTask = Callable[[str, str, bool, frozenset[str], ReadPlan], ScanTuple]


def is_url(location: str) -> bool:
    """``scheme://...`` with a scheme of two letters or more (``C:\\`` and ``\\\\server\\share`` are paths)."""
    scheme, sep, _ = location.partition("://")
    return bool(sep) and len(scheme) > 1 and scheme.replace("+", "").replace("-", "").isalnum()


class _UrlPath(PurePosixPath):
    """A URL where evtrack expects a path: prints as typed (a path would fold ``s3://`` into ``s3:/``)."""

    _url: str

    def __str__(self) -> str:
        return self._url

    def __repr__(self) -> str:
        return f"UrlPath({self._url!r})"


def url_path(url: str) -> Path:
    """The URL as the ``Path`` that stats, issues and the store record (only ever formatted with ``str``)."""
    path = _UrlPath(url.split("://", 1)[1])
    path._url = url
    return cast(Path, path)


def _filesystem(url: str) -> tuple[Any, str]:
    try:
        from fsspec.core import url_to_fs
    except ImportError:
        raise ConfigError(f"{url}: reading URLs needs fsspec (pip install 'evtrack[dask]')") from None
    try:
        return cast("tuple[Any, str]", url_to_fs(url))
    except (ImportError, ValueError) as exc:  # fsspec: "Install s3fs to access S3"
        raise ConfigError(f"{url}: {exc}") from None


def expand_locations(arguments: Sequence[str | Path]) -> Inputs:
    """Like :func:`evtrack.reading.expand_inputs`, and fsspec URLs too (a folder or a glob is listed here, on the
    client: listing moves names, not bytes)."""
    local = [argument for argument in arguments if not is_url(str(argument))]
    result = expand_inputs(local)
    files, errors, scanned = list(result.files), list(result.errors), set(result.from_directories)
    seen = {str(path) for path in files}
    for argument in (str(a) for a in arguments if is_url(str(a))):
        fs, root = _filesystem(argument)
        protocol = argument.split("://", 1)[0]
        try:
            if _GLOB_CHARS & set(root):
                found, from_directory = sorted(fs.glob(root)), False
            elif fs.isdir(root):
                found, from_directory = sorted(fs.find(root)), True
            elif fs.exists(root):
                found, from_directory = [root], False
            else:
                errors.append(ReadIssue(url_path(argument), "input", "no such file or directory", 0))
                continue
        except OSError as exc:
            errors.append(ReadIssue(url_path(argument), "input", f"cannot list: {exc}", 0))
            continue
        if not found:
            errors.append(ReadIssue(url_path(argument), "input", "no file matches this pattern", 0))
        for name in found:
            url = name if is_url(name) else f"{protocol}://{name}"
            if url in seen:
                continue
            seen.add(url)
            path = url_path(url)
            files.append(path)
            if from_directory:
                scanned.add(path)
    return Inputs(tuple(files), tuple(errors), frozenset(scanned))


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(_BLOCK), b""):
            digest.update(block)
    return digest.hexdigest()


def _relabel_source(result: FileResult, location: str) -> None:
    """Rows read from a temporary copy name the URL they came from."""
    import pyarrow as pa

    for index, batch in enumerate(result.batches):
        column = batch.schema.get_field_index("source")
        result.batches[index] = batch.set_column(column, "source", pa.array([location] * batch.num_rows, pa.string()))


def scan_file(location: str, engine: str, verify_checksums: bool, known: frozenset[str],
              plan: ReadPlan) -> ScanTuple:
    """The worker's task: hash one file and, unless its digest is in ``known``, read it with the client's read
    ``plan`` (it pickles: workers never build their own). Never writes anything."""
    if not is_url(location):
        path = Path(location)
        try:
            digest = _sha256(path)
        except OSError as exc:
            return None, None, f"cannot read: {exc.strerror or exc}"
        if digest in known:
            return digest, None, None
        return digest, read_file(path, engine, verify_checksums, plan=plan), None
    fs, remote = _filesystem(location)
    with tempfile.TemporaryDirectory(prefix="evtrack-") as folder:
        local = Path(folder) / "input"
        hasher = hashlib.sha256()
        try:
            with fs.open(remote, "rb") as source, local.open("wb") as target:
                for block in iter(lambda: source.read(_BLOCK), b""):
                    hasher.update(block)
                    target.write(block)
        except OSError as exc:
            return None, None, f"cannot read: {exc}"
        digest = hasher.hexdigest()
        if digest in known:
            return digest, None, None
        result = read_file(local, engine, verify_checksums, plan=plan)
    _relabel_source(result, location)
    return digest, result, None


def _relabel(result: FileResult, path: Path) -> FileResult:
    """Stats and issues name the input as the client knows it (not the worker's temporary copy)."""
    result.stats.path = path
    result.stats.issues = [replace(issue, path=path) for issue in result.stats.issues]
    return result


class DaskScanner:
    """A :class:`evtrack.scanning.FileScanner` that runs :func:`scan_file` as one Dask task per file.

    Results are collected in input order (each released on the workers once taken), so the store ends up the
    same as after a local ingest. A task that raises is retried ``retries`` times and then reported as a failed
    file; the others go on.
    """

    def __init__(self, client: Any, *, retries: int = DEFAULT_RETRIES, task: ScanTask = scan_file) -> None:
        self.client = client
        self.retries = retries
        self.task = task

    def expand(self, arguments: Sequence[str | Path]) -> Inputs:
        return expand_locations(arguments)

    def scan(self, files: Sequence[Path], *, engine: str, verify_checksums: bool, stored: frozenset[str],
             plan: ReadPlan) -> Iterator[ScannedFile]:
        if not files:
            return
        (known,) = self.client.scatter([stored], broadcast=True, hash=False)  # a set alone scatters its items
        futures = [
            self.client.submit(self.task, str(path), engine, verify_checksums, known, plan, retries=self.retries,
                               pure=False, key=f"evtrack-scan-{index}-{os.urandom(4).hex()}")
            for index, path in enumerate(files)
        ]
        taken = 0
        try:
            for path, future in zip(files, futures, strict=True):
                taken += 1
                try:
                    digest, result, error = future.result()
                except Exception as exc:  # raised on the worker after every retry, or the worker kept dying
                    yield ScannedFile(path, None, error=f"failed on the cluster: {type(exc).__name__}: {exc}")
                    continue
                finally:
                    future.release()
                yield ScannedFile(path, digest, None if result is None else _relabel(result, path), error)
        finally:
            for future in futures[taken:]:
                future.cancel()
            known.release()


@contextlib.contextmanager
def dask_client(scheduler: str | None = None, *, workers: int | None = None) -> Iterator[Any]:
    """A client of the cluster at ``scheduler`` (``tcp://host:8786``), or of a local cluster of ``workers``
    single-threaded processes (default: one per core) that is shut down on exit."""
    import importlib

    try:
        distributed: Any = importlib.import_module("dask.distributed")  # optional and untyped: Any on purpose
    except ImportError:
        raise ConfigError(DASK_HINT) from None
    if scheduler:
        try:
            client = distributed.Client(scheduler, timeout="30s")
        except OSError as exc:
            raise ConfigError(f"cannot reach the Dask scheduler at {scheduler}: {exc}") from None
        with client:
            yield client
        return
    from evtrack.reading import default_jobs

    with distributed.LocalCluster(n_workers=workers or default_jobs(), threads_per_worker=1, processes=True,
                                  dashboard_address=":0") as cluster, distributed.Client(cluster) as client:
        yield client

