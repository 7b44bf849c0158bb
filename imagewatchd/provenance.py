"""What an image's header says about where it came from: camera, capture date, software, and a
JPEG's quality estimated from its quantisation tables. Pure: an opened Pillow image in (header
parsed, pixels not needed), a ``Provenance`` out.

The quality estimate is the usual one (as ImageMagick's and ``jpegquality``'s): the luminance
table is compared with the IJG standard table scaled for each quality 1..100, and the closest
wins. An encoder with its own tables (some cameras) gets the quality whose tables come closest.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from numpy.typing import NDArray
from PIL import Image

_MAKE, _MODEL, _SOFTWARE, _DATETIME = 0x010F, 0x0110, 0x0131, 0x0132
_EXIF_IFD, _DATETIME_ORIGINAL = 0x8769, 0x9003
TEXT_LIMIT = 64  # a header field longer than this is cut: it only ever names a device

# The IJG standard luminance quantisation table (JPEG Annex K), in natural order.
_STANDARD_LUMA = (
    16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55,
    14, 13, 16, 24, 40, 57, 69, 56, 14, 17, 22, 29, 51, 87, 80, 62,
    18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92,
    49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99,
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Provenance:
    camera: str | None = None  # "Make Model" from EXIF
    captured: str | None = None  # DateTimeOriginal as ISO 8601 (no zone: EXIF has none)
    software: str | None = None  # what last wrote the file, if it says
    jpeg_quality: int | None = None  # 1..100, estimated; None for other formats


def provenance(img: Image.Image) -> Provenance:
    """The provenance of an opened image; a broken EXIF block gives what could be read."""
    try:
        exif = img.getexif()
        inner = exif.get_ifd(_EXIF_IFD)
    except Exception:  # decoders' EXIF parsers raise anything on hostile input
        return Provenance(jpeg_quality=jpeg_quality(img))
    make, model = _text(exif.get(_MAKE)), _text(exif.get(_MODEL))
    camera = " ".join(dict.fromkeys(p for p in (make, model) if p)) or None
    if make and model and model.lower().startswith(make.lower()):
        camera = model  # "Canon" + "Canon EOS 5D" says Canon once
    return Provenance(
        camera=camera,
        captured=_date(inner.get(_DATETIME_ORIGINAL)),
        software=_text(exif.get(_SOFTWARE)),
        jpeg_quality=jpeg_quality(img),
    )


def jpeg_quality(img: Image.Image) -> int | None:
    """The IJG quality whose luminance table is closest to the image's, for a JPEG (the
    highest such quality on a tie)."""
    tables = getattr(img, "quantization", None)
    if img.format not in ("JPEG", "MPO") or not isinstance(tables, dict) or 0 not in tables:
        return None
    luma = np.asarray(list(tables[0]), dtype=np.int64)
    if luma.shape != (len(_STANDARD_LUMA),):
        return None
    distances = np.abs(_scaled_tables() - luma).sum(axis=1)  # quality 1..100
    return 100 - int(np.argmin(distances[::-1]))  # one array pass, not 6,400 Python steps


@lru_cache(maxsize=1)
def _scaled_tables() -> NDArray[np.int64]:
    """The standard table scaled for each quality 1..100 (IJG's rule), one row per quality."""
    quality = np.arange(1, 101)[:, None]
    scale = np.where(quality < 50, 5000 // quality, 200 - 2 * quality)
    table: NDArray[np.int64] = np.clip((np.asarray(_STANDARD_LUMA) * scale + 50) // 100, 1, 255)
    return table


def _text(value: object) -> str | None:
    if isinstance(value, bytes):
        value = value.decode("latin-1")
    if not isinstance(value, str):
        return None
    words = "".join(c if c.isprintable() else " " for c in value).split()  # no control codes
    text = " ".join(words)[:TEXT_LIMIT]
    return text or None


def _date(value: object) -> str | None:
    text = _text(value)
    if text is None:
        return None
    try:
        return dt.datetime.strptime(text[:19], "%Y:%m:%d %H:%M:%S").isoformat()
    except ValueError:
        return None
