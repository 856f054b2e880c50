"""Raw usage of a retired month, kept as a file before its rows are dropped.

One gzip'd CSV per month (`usage_hours-YYYY-MM.csv.gz`, columns org_id, instance_id, hour,
minute_mask; hour is hours since the Unix epoch, bit m of the mask is minute m of that hour) and
a manifest beside it (`usage_hours-YYYY-MM.json`: rows, minutes, SHA-256, size). The file is
written under a temporary name, read back and checked against the database's own count of rows
and minutes, synced to disk and only then renamed and given its manifest: a month whose manifest
exists is safe to drop. Point `USAGE_ARCHIVE_DIR` at durable storage (a volume, or a bucket
mounted as one); `docs/scaling.md` says how to restore a month.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import IO, cast


@dataclass(frozen=True)
class ArchivedMonth:
    period: str
    file: str
    rows: int
    minutes: int
    sha256: str
    bytes: int
    archived_at: str


class ArchiveMismatch(Exception):
    """The archive read back does not hold what the database holds: nothing may be dropped."""


class UsageArchive:
    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def _data(self, period_key: str) -> Path:
        return self.directory / f"usage_hours-{period_key}.csv.gz"

    def _manifest(self, period_key: str) -> Path:
        return self.directory / f"usage_hours-{period_key}.json"

    def archived(self, period_key: str) -> ArchivedMonth | None:
        """The month's manifest, if it was archived completely."""
        try:
            return ArchivedMonth(**json.loads(self._manifest(period_key).read_text()))
        except FileNotFoundError:
            return None

    def write(
        self,
        period_key: str,
        *,
        rows: int,
        minutes: int,
        copy_out: Callable[[IO[bytes]], None],
        now: datetime,
    ) -> ArchivedMonth:
        """Archive a month: `copy_out` writes its CSV; `rows` and `minutes` are what the
        database counts for it. Raises ArchiveMismatch when the file read back differs."""
        self.directory.mkdir(parents=True, exist_ok=True)
        data = self._data(period_key)
        partial = data.with_name(f".{data.name}.partial")
        with open(partial, "wb") as raw:
            with gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as zipped:
                copy_out(cast(IO[bytes], zipped))
            raw.flush()
            os.fsync(raw.fileno())
        found_rows, found_minutes, digest = _read_back(partial)
        if (found_rows, found_minutes) != (rows, minutes):
            partial.unlink(missing_ok=True)
            raise ArchiveMismatch(
                f"{period_key}: archive holds {found_rows} rows / {found_minutes} minutes, "
                f"the database {rows} / {minutes}"
            )
        os.replace(partial, data)
        record = ArchivedMonth(
            period=period_key,
            file=data.name,
            rows=rows,
            minutes=minutes,
            sha256=digest,
            bytes=data.stat().st_size,
            archived_at=now.isoformat(),
        )
        manifest = self._manifest(period_key)
        partial_manifest = manifest.with_name(f".{manifest.name}.partial")
        with open(partial_manifest, "w", encoding="utf-8") as out:
            out.write(json.dumps(asdict(record), indent=2) + "\n")
            out.flush()
            os.fsync(out.fileno())
        os.replace(partial_manifest, manifest)
        _sync_directory(self.directory)
        return record


def _read_back(path: Path) -> tuple[int, int, str]:
    digest = hashlib.sha256()
    with open(path, "rb") as raw:
        for block in iter(lambda: raw.read(1 << 20), b""):
            digest.update(block)
    rows = minutes = 0
    with gzip.open(path, "rb") as zipped:
        for record in csv.reader(io.TextIOWrapper(zipped, encoding="utf-8", newline="")):
            rows += 1
            minutes += int(record[3]).bit_count()
    return rows, minutes, digest.hexdigest()


def _sync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
