"""Decode one image file to a square uint8 array. Imports only NumPy and Pillow: it runs in worker processes.

Every readable image comes out as (C, S, S) uint8: grayscale, CMYK, palette, 16-bit and
transparent images are converted to the dataset's mode, the short side is resized to S and the
centre square kept (the classic "resize 256" of ImageNet-style pipelines, done once).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
from PIL import Image

# Allow big photos, but keep Pillow's guard against decompression bombs at ~4x the default.
Image.MAX_IMAGE_PIXELS = 4 * 89_478_485


def _to_mode(img: Image.Image, mode: str) -> Image.Image:
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        # 16/32-bit gray: scale to 8 bits instead of clipping at 255.
        arr = np.asarray(img, dtype=np.float64)
        top = 65535.0 if img.mode.startswith("I;16") or arr.max() > 255 else 255.0
        img = Image.fromarray(np.clip(arr / top * 255.0 + 0.5, 0, 255).astype(np.uint8), "L")
    elif img.mode == "F":
        img = Image.fromarray(np.clip(np.asarray(img) * 255.0 + 0.5, 0, 255).astype(np.uint8), "L")
    if img.mode == "P" and "transparency" in img.info or img.mode in ("LA", "PA", "RGBA", "La"):
        # Composite transparency on white (what a viewer shows) instead of dropping alpha to black.
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(white, rgba)
    return img.convert(mode) if img.mode != mode else img


# Largest image decoded (after JPEG draft scaling): a 16-bit 12000×12000 PNG of 280 KB needs 3.7 GB.
MAX_PIXELS = 64 * 10**6


def decode_image(path: str, size: int, mode: str = "RGB") -> np.ndarray | str:
    """(C, size, size) uint8, or a short reason string when the file cannot be decoded.

    Args:
        mode: "RGB" (3 channels) or "L" (1 channel).
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # EXIF/ICC/palette warnings: the conversion below handles them
            with Image.open(path) as img:
                if img.format == "JPEG":
                    # Let libjpeg decode at 1/2, 1/4, 1/8 scale while the result stays ≥ size: 2-6x faster.
                    img.draft(mode if mode in ("RGB", "L") else None, (size, size))
                w, h = img.size
                if w * h > MAX_PIXELS:  # checked before decoding: a small file can expand to gigabytes
                    return f"{w}×{h} pixels is over the {MAX_PIXELS // 10**6}-megapixel limit; not decoded"
                img.load()
                img = _to_mode(img, mode)
                w, h = img.size
                side = min(w, h)
                box = ((w - side) / 2, (h - side) / 2, (w + side) / 2, (h + side) / 2)
                # Resize short side to `size` and centre-crop in one call; reducing_gap keeps downscales antialiased.
                img = img.resize((size, size), Image.Resampling.BILINEAR, box=box, reducing_gap=2.0)
                arr = np.asarray(img, dtype=np.uint8)
    except Exception as exc:  # truncated, zero bytes, not an image, bomb, ...: reported as a skip
        return f"{type(exc).__name__}: {exc}"[:200]
    if arr.ndim == 2:
        arr = arr[:, :, None]
    return np.ascontiguousarray(arr.transpose(2, 0, 1))  # (H, W, C) -> (C, H, W)


def decode_many(paths: Sequence[str], size: int, mode: str = "RGB") -> list[np.ndarray | str]:
    """``decode_image`` over a chunk of files (one task of the process pool)."""
    return [decode_image(p, size, mode) for p in paths]
