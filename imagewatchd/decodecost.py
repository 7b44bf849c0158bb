"""How much memory decoding one image will take, from its header alone, before any pixel.

An image of 13,000 x 13,000 pixels fits in a 0.5 MB PNG and needs over 2 GB to decode and
canonicalise as RGBA, so the fingerprint stage refuses what is over its budget before decoding
(``over the memory limit``). The figures are upper bounds of the peak: the decoded image, what
the decoder keeps beside it, and what ``fingerprint._to_grey`` allocates while converting to
grey. ``tests/test_decoding.py`` checks them against the peak a real decode reaches.
"""

from __future__ import annotations

import math

from PIL import Image

# Peak bytes per pixel while the image is decoded and converted to grey, by decoded mode:
# the image itself plus every copy ``_to_grey`` holds at once (RGB: 3 + the grey 1; RGBA:
# 4 + the white background 4 + the composite 4 + the grey 1; 16-bit: 2 + numpy's bytes copy 2 +
# float64 8).
_CANON_BYTES = {
    "1": 5, "L": 2, "P": 5, "RGB": 4, "RGBX": 8, "CMYK": 8, "YCbCr": 7, "LAB": 7, "HSV": 7,
    "RGBA": 13, "RGBa": 17, "LA": 17, "La": 17, "PA": 17,
    "I;16": 12, "I;16L": 12, "I;16B": 12, "I;16N": 12, "I": 16, "F": 16,
}  # fmt: skip
_TRANSPARENT_PALETTE = 14  # P with a transparent colour: 1 + RGBA 4 + background 4 + result 4 + 1
_UNKNOWN_MODE = 17
# Decoders that fill buffers of their own before Pillow copies into the image (WebP: libwebp's
# animation decoder keeps two RGBA canvases, even for a still picture).
_DECODER_BUFFER = {"WEBP": 12, "HEIF": 4, "AVIF": 4, "TIFF": 4}
# PDQ reads the grey image through a numpy copy (1 byte a pixel) and converts one band of
# about height / 64 rows at a time to float32 (4 / 64 bytes a pixel): 17/16 on top of the rest.
_PDQ_SIXTEENTHS = 17
_FIXED = 8 << 20  # decoder state, line buffers, the small working image and its hashes


def decode_bytes(img: Image.Image, file_size: int) -> int:
    """Peak memory to decode and canonicalise ``img`` at its current (drafted) size and mode."""
    per_pixel = _CANON_BYTES.get(img.mode, _UNKNOWN_MODE)
    if img.mode == "P" and "transparency" in img.info:
        per_pixel = _TRANSPARENT_PALETTE
    per_pixel += _DECODER_BUFFER.get(img.format or "", 0)
    width, height = img.size
    pixels = width * height
    return pixels * per_pixel + pixels * _PDQ_SIXTEENTHS // 16 + file_size + _FIXED


def jpeg_coefficient_bytes(img: Image.Image) -> int:
    """A progressive JPEG is decoded from every DCT coefficient of the full-size image, held at
    once (2 bytes each) whatever the draft scale: the one JPEG that a draft does not make cheap.
    Call before ``draft``, which changes the size to the reduced one."""
    if img.format not in ("JPEG", "MPO") or not img.info.get("progressive"):
        return 0
    layers = getattr(img, "layer", None) or [("", 1, 1, 0)] * len(img.getbands())
    h_max = max(int(layer[1]) for layer in layers)
    v_max = max(int(layer[2]) for layer in layers)
    width, height = img.size
    total = 0
    for _, h, v, _ in layers:
        blocks_wide = math.ceil(math.ceil(width * int(h) / h_max) / 8)
        blocks_high = math.ceil(math.ceil(height * int(v) / v_max) / 8)
        total += blocks_wide * blocks_high * 64 * 2
    return total
