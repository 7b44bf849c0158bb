"""A picture's thumbnail: its bytes in, a small JPEG out (at most ``SIZE`` pixels a side).

Pure, like ``fingerprint.py``, and run where fingerprints are made: in a decoding worker, under
the same limits (the pixel count is checked before anything is decoded, the memory a decode
needs is estimated first, JPEGs are decoded at reduced scale). The picture is shown as people
see it: turned by its EXIF orientation, its first frame, transparency on white.
"""

from __future__ import annotations

import io

from PIL import Image, ImageOps, UnidentifiedImageError

from imagewatchd.decodecost import decode_bytes, jpeg_coefficient_bytes
from imagewatchd.errors import FingerprintError
from imagewatchd.fingerprint import ALLOWED_FORMATS, OVER_MEMORY

SIZE = 256
MAX_BYTES = 40_000  # a reply message carries it (base64 in JSON) with room to spare
QUALITIES = (80, 60, 40, 25)


def thumbnail_bytes(data: bytes, max_pixels: int, memory_bytes: int) -> bytes:
    """The JPEG thumbnail of an image file's bytes; a ``FingerprintError`` says why not."""
    try:
        with Image.open(io.BytesIO(data), formats=ALLOWED_FORMATS) as img:
            width, height = img.size
            if width * height > max_pixels:
                raise FingerprintError(
                    "<bytes>", f"decompression bomb: {width}x{height} pixels exceeds the limit "
                    f"of {max_pixels}",
                )  # fmt: skip
            coefficients = jpeg_coefficient_bytes(img)  # before draft: the full size's
            if img.format in ("JPEG", "MPO"):
                img.draft("RGB", (SIZE, SIZE))
            if coefficients + decode_bytes(img, len(data)) > memory_bytes:
                raise FingerprintError("<bytes>", OVER_MEMORY)
            small = _small(img)
    except FingerprintError:
        raise
    except UnidentifiedImageError as exc:
        raise FingerprintError("<bytes>", "not an image in a supported format") from exc
    except MemoryError as exc:
        raise FingerprintError("<bytes>", OVER_MEMORY) from exc
    except Exception as exc:  # decoders raise anything
        raise FingerprintError("<bytes>", f"cannot decode ({type(exc).__name__})") from exc
    return _jpeg(small)


def _small(img: Image.Image) -> Image.Image:
    img.load()
    turned = ImageOps.exif_transpose(img) or img
    if turned.mode in ("RGBA", "LA", "PA") or "transparency" in turned.info:
        rgba = turned.convert("RGBA")
        flat = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        flat.alpha_composite(rgba)
        turned = flat
    rgb = turned.convert("RGB")
    rgb.thumbnail((SIZE, SIZE), Image.Resampling.LANCZOS)
    return rgb


def _jpeg(img: Image.Image) -> bytes:
    """Smaller quality until it fits a reply (a noisy picture compresses badly)."""
    data = b""
    for quality in QUALITIES:
        out = io.BytesIO()
        img.save(out, "JPEG", quality=quality, optimize=True)
        data = out.getvalue()
        if len(data) <= MAX_BYTES:
            return data
    img.thumbnail((SIZE // 2, SIZE // 2))
    out = io.BytesIO()
    img.save(out, "JPEG", quality=QUALITIES[-1])
    return out.getvalue()
