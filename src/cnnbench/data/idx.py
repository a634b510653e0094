"""IDX files (the MNIST family): read with every header field checked, and write (for tests and tools).

An IDX file is two zero bytes, a type code, a rank byte, ``rank`` big-endian uint32 dimensions,
then the items. Every way a file can be wrong (truncated gzip, wrong magic, wrong rank, a header
that promises more bytes than the file holds) becomes one ``DataError`` naming the file and the
expected vs. actual value.
"""

from __future__ import annotations

import gzip
import struct
import zlib
from pathlib import Path

import numpy as np

from cnnbench.errors import DataError
from cnnbench.utils.io import atomic_write_bytes

# type code -> big-endian dtype
_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
_CODES = {np.dtype(v).newbyteorder("=").str.lstrip("<>|="): k for k, v in _DTYPES.items()}


def read_bytes(path: str | Path) -> bytes:
    """The file's bytes, gunzipped when the name ends in ``.gz``.

    Raises:
        DataError: the gzip stream is truncated or corrupt, or the file cannot be read.
    """
    path = Path(path)
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as f:
                return f.read()
        return path.read_bytes()
    except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise DataError(
            f"{path}: the gzip data is truncated or corrupt ({exc}); delete it and fetch it again"
        ) from None
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc.strerror or exc})") from None


def parse_idx(data: bytes, path: str | Path = "<bytes>", rank: int | None = None) -> np.ndarray:
    """Parse IDX bytes into an array of the header's shape (native byte order).

    Args:
        path: named in error messages.
        rank: expected number of dimensions (3 for images, 1 for labels); None accepts any.

    Raises:
        DataError: naming ``path`` and the expected vs. actual magic, rank or size.
    """
    if len(data) < 4:
        raise DataError(f"{path}: {len(data)} bytes is too short for an IDX header (expected at least 4)")
    zero, code, ndim = data[:2], data[2], data[3]
    if zero != b"\x00\x00" or code not in _DTYPES:
        magic = int.from_bytes(data[:4], "big")
        raise DataError(
            f"{path}: not an IDX file — magic number 0x{magic:08x}, expected 0x0000TTRR with type TT in "
            f"{{{', '.join(f'{c:02x}' for c in _DTYPES)}}} (e.g. 0x00000803 for images, 0x00000801 for labels)"
        )
    if rank is not None and ndim != rank:
        raise DataError(f"{path}: IDX rank {ndim}, expected {rank} ({'images' if rank == 3 else 'labels'})")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataError(f"{path}: header of rank {ndim} needs {header} bytes, the file holds {len(data)}")
    dims = struct.unpack(f">{ndim}I", data[4:header])
    dtype = np.dtype(_DTYPES[code])
    expected = int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
    actual = len(data) - header
    if actual != expected:
        shape = "×".join(map(str, dims))
        what = "truncated" if actual < expected else "has extra bytes"
        raise DataError(
            f"{path}: header says {shape} items = {expected:,} bytes of data, the file holds {actual:,} ({what})"
        )
    array = np.frombuffer(data, dtype=dtype, offset=header).reshape(dims)
    return array.astype(dtype.newbyteorder("="), copy=False)


def read_idx(path: str | Path, rank: int | None = None) -> np.ndarray:
    """Read an IDX file (``.gz`` or raw); see ``parse_idx``."""
    return parse_idx(read_bytes(path), path, rank)


def read_idx_pair(images_path: str | Path, labels_path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Images (N, 1, H, W) uint8 and labels (N,) int64 from an IDX images/labels pair.

    Raises:
        DataError: a malformed file, non-uint8 items, or different item counts in the two files.
    """
    images = read_idx(images_path, rank=3)
    labels = read_idx(labels_path, rank=1)
    for path, arr in ((images_path, images), (labels_path, labels)):
        if arr.dtype != np.uint8:
            raise DataError(f"{path}: IDX items are {arr.dtype}, expected unsigned bytes (type code 0x08)")
    if len(images) != len(labels):
        raise DataError(
            f"{images_path} holds {len(images):,} images but {labels_path} holds {len(labels):,} labels; "
            "expected the same count (a pair from different releases?)"
        )
    return images[:, None, :, :], labels.astype(np.int64)


def encode_idx(array: np.ndarray) -> bytes:
    """IDX bytes for ``array`` (any shape; dtype uint8, int8, int16, int32, float32 or float64)."""
    array = np.asarray(array)
    key = array.dtype.newbyteorder("=").str.lstrip("<>|=")
    if key not in _CODES:
        raise DataError(f"cannot write dtype {array.dtype} as IDX; expected one of uint8, int8, int16, int32, float")
    code = _CODES[key]
    header = bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(np.dtype(_DTYPES[code]), copy=False).tobytes()


def write_idx(path: str | Path, array: np.ndarray) -> Path:
    """Write ``array`` as an IDX file (gzipped when ``path`` ends in ``.gz``), atomically."""
    path = Path(path)
    data = encode_idx(array)
    if path.suffix == ".gz":
        data = gzip.compress(data, compresslevel=6, mtime=0)
    atomic_write_bytes(path, data)
    return path
