"""Reading a found file's bytes: a local path as it is, a remote URL in ranged requests.

Files are read in ranged requests (at most `BLOCK_BYTES` each), never held whole; a request that
fails is retried with backoff from the byte where it stopped, and every (re)open checks the file
still has the fingerprint it was listed with.
"""

from __future__ import annotations

import io
import logging
from typing import Any, BinaryIO

from .fingerprints import fingerprint
from .local import open_inside
from .remote import FileChanged, filesystem, fs_path, is_s3, with_retries
from .roots import is_url, public_url

log = logging.getLogger(__name__)

BLOCK_BYTES = 16 << 20  # one ranged request while streaming; also the memory a stream holds
RANGE_BYTES = 256 << 10  # one ranged request for scattered reads: a zip's directory, profile windows


class RemoteStream(io.RawIOBase):
    """A seekable, read-only view of a remote file, fetched in ranged requests; a failed request is retried in place.

    Read-ahead starts at RANGE_BYTES and doubles while reads follow each other, up to BLOCK_BYTES: a header
    costs a small request, a whole-file stream a few large ones. After a seek (a zip's directory, a profile
    window) the next read fetches just what it asks for. Every (re)open looks the file up again and, given
    the fingerprint it was listed with, fails with FileChanged rather than read another version.
    """

    def __init__(self, url: str, retries: int, expected: str | None = None):
        super().__init__()
        self._url, self._retries, self._expected = url, retries, expected
        self._file: Any = None
        self._size = 0
        self._position = 0
        self._block = RANGE_BYTES
        self._file = with_retries(self._open, url, retries, "opening")

    def _open(self) -> Any:
        fs = filesystem(self._url)
        options: dict[str, Any] = {"block_size": self._block, "cache_type": "readahead"}
        if is_s3(self._url):
            handle = fs.open(fs_path(self._url), "rb", **options)  # s3fs pins every read to this ETag
            info = handle.details
        else:
            info = fs.info(self._url)
            handle = fs.open(self._url, "rb", size=info.get("size"), **options)
        if self._expected and fingerprint(info) != self._expected:
            handle.close()
            raise FileChanged(f"{public_url(self._url)} changed since it was listed; run again to load its new content")
        self._size = int(info.get("size") or 0)
        if self._position:
            handle.seek(self._position)
        return handle

    def _read(self, size: int) -> bytes:
        if self._file is None:
            self._file = self._open()
        try:
            data = self._file.read(size)
        except BaseException:
            self._drop()
            raise
        self._grow(min(BLOCK_BYTES, max(RANGE_BYTES, self._block * 2)))
        return data

    def _grow(self, block: int) -> None:
        """Set the read-ahead of the open file (fsspec's readahead cache reads its `blocksize` on every fetch)."""
        self._block = block
        cache = getattr(self._file, "cache", None)
        if cache is not None and hasattr(cache, "blocksize"):
            cache.blocksize = block

    def _drop(self) -> None:
        handle, self._file = self._file, None
        if handle is not None:
            try:
                handle.close()
            except Exception:  # closing a broken connection may fail again; it is gone either way
                log.debug("closing %s failed", public_url(self._url), exc_info=True)

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        data = with_retries(lambda: self._read(len(buffer)), self._url, self._retries, "downloading")
        buffer[: len(data)] = data
        self._position += len(data)
        return len(data)

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: self._size}[whence]
        position = max(0, base + offset)
        if position != self._position:
            self._position = position
            self._grow(0)
            if self._file is not None:
                self._file.seek(position)
        return position

    def tell(self) -> int:
        return self._position

    def close(self) -> None:
        self._drop()
        super().close()


def open_location(location: str, retries: int, expected: str | None = None, root: str | None = None) -> BinaryIO:
    """A seekable byte stream of a local path or a remote URL (read in ranges); raises OSError or DownloadError.

    `expected` is the fingerprint a remote file was listed with: a file that no longer has it raises FileChanged.
    `root` is the folder a local file was listed in: a file that is no longer inside it raises OutsideFolder.
    """
    if not is_url(location):
        return open_inside(location, root) if root else open(location, "rb")
    return io.BufferedReader(RemoteStream(location, retries, expected), buffer_size=RANGE_BYTES)
