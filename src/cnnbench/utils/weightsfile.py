"""What kind of file a weights path holds, judged from its first bytes (no torch needed).

``torch.load`` meets an empty file with ``EOFError:`` and a text file with ``KeyError: 101`` (the
byte 'e' read as a pickle opcode): true, but no help to the person who passed the wrong file. The
first bytes tell a ``torch.save`` file (a zip archive, or a pickle in the legacy format) and a
``.safetensors`` file (an 8-byte header length, then a JSON header) from anything else.
"""

from __future__ import annotations

import os
from pathlib import Path

TORCH_SAVE_MAGIC = (b"PK\x03\x04", b"\x80")  # zip (torch >= 1.6), or a pickle (the legacy format)
EXPECTED = "expected a state_dict saved by torch.save (.pt, .pth, .bin) or a .safetensors file"


def weights_file_problem(path: str | os.PathLike[str]) -> str | None:
    """Why ``path`` cannot be a weights file (``"it is empty"``, ``"it is text, not ..."``), or None when
    its first bytes look like one (it may still be damaged further in: its reader says so)."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            head = f.read(16)
            size = os.fstat(f.fileno()).st_size
    except IsADirectoryError:
        return "it is a directory, not a file"
    except OSError as exc:
        return f"it cannot be read ({exc.strerror or exc})"
    if not head:
        return "it is empty (0 bytes)"
    if head.startswith(TORCH_SAVE_MAGIC):
        return None
    if len(head) >= 9:
        header_len = int.from_bytes(head[:8], "little")
        if head[8:9] == b"{" and 8 + header_len <= size:  # safetensors: u64 length, then a JSON header
            return None
    kind = "text" if _looks_like_text(head) else "not a weights file"
    return f"it is {kind} ({size:,} bytes starting {head[:12]!r})"


def _looks_like_text(head: bytes) -> bool:
    try:
        head.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return all(32 <= b < 127 or b in (9, 10, 13) for b in head)
