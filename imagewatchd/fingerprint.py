"""Fingerprint stage: bytes of one image → sha256, dHash, pHash, PDQ and dimensions.

Pure: it reads the file and nothing else. Every image is canonicalised before hashing (EXIF
orientation applied, transparency composited onto white, first frame, colour mode converted),
and decoded at reduced scale where the format allows, since the hashes need only tiny images.
PDQ is computed from the decoded image before it is shrunk further: a JPEG's reduced-scale
decode changes its PDQ by a few bits at most (docs/BENCHMARKS.md, "Issue 8: PDQ").
"""

from __future__ import annotations

import errno
import hashlib
import io
import os
import stat
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pillow_heif
from numpy.typing import NDArray
from PIL import Image, UnidentifiedImageError

from imagewatchd import blockgrid, dihedral, pdq, regionhashes
from imagewatchd.colours import signature
from imagewatchd.decodecost import decode_bytes, jpeg_coefficient_bytes
from imagewatchd.errors import FingerprintError
from imagewatchd.models import FileStat, Fingerprint
from imagewatchd.pdq import Flipped
from imagewatchd.provenance import Provenance, provenance
from imagewatchd.regionhashes import FLAT_PHASH_BITS

pillow_heif.register_heif_opener()
# Our own pixel limit (checked right after the header is read) replaces Pillow's global one,
# which only warns below twice its limit.
Image.MAX_IMAGE_PIXELS = None

# Only these decoders are ever tried: a file is opened by what it is, not by its name, and the
# long tail of Pillow plugins (EPS, FITS, PSD…) is attack surface we have no use for.
ALLOWED_FORMATS = ("JPEG", "PNG", "GIF", "WEBP", "TIFF", "BMP", "HEIF", "AVIF")
DEFAULT_MAX_PIXELS = 178_956_970  # twice Pillow's default warning limit: ~13,000 x 13,000
DEFAULT_MAX_BYTES = 512 * 1024 * 1024
# What decoding and canonicalising one image may take (imagewatchd/decodecost.py).
DEFAULT_MEMORY_BYTES = 128 << 20

# Images are shrunk (JPEG at decode time) until the short side is about this many pixels; the
# hashes then resample to 9x8 (dHash) and 32x32 (pHash), so nothing they use is lost.
WORKING_SIZE = 256

# Whether an image has structure to hash is decided by structure, not by variance: PDQ's
# quality score (the summed neighbour differences of its 64x64 image, each truncated to whole
# percents of full scale, so noise and smooth shading count for nothing) must reach
# FLAT_QUALITY. A solid colour, a blank page, a vignette or a smooth gradient scores 0; every
# photo and variant of the evaluation set, low-contrast paper scans included, scores >= 8
# (docs/BENCHMARKS.md, "Issue 8: borders, crops, structure"). A pHash with almost all bits
# equal (ties at the median: a ruled page, a clean linear gradient) is no structure either.
# Flat images match by sha256 only: their hashes are noise or the same for all of them.
FLAT_QUALITY = 5
FLAT_BITS = 2  # for imported hashes, which come without pixels: see flat_hash

_ORIENTATION_TAG = 0x0112
_TRANSPOSE: dict[int, Image.Transpose] = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
_ORIENT_ARRAY: dict[int, Callable[[NDArray[np.uint8]], NDArray[np.uint8]]] = {
    2: lambda a: a[:, ::-1],
    3: lambda a: a[::-1, ::-1],
    4: lambda a: a[::-1],
    5: lambda a: a.T,
    6: lambda a: np.rot90(a, -1),
    7: lambda a: a[::-1, ::-1].T,
    8: lambda a: np.rot90(a, 1),
}  # the same turns as _TRANSPOSE, on arrays
_BACKGROUND = 255  # transparency is composited onto white
OVER_MEMORY = "over the memory limit"


@dataclass(frozen=True, slots=True)
class Limits:
    """What one file may cost to fingerprint: pixels, memory to decode it, bytes to read."""

    max_pixels: int = DEFAULT_MAX_PIXELS
    memory_bytes: int = DEFAULT_MEMORY_BYTES
    max_bytes: int = DEFAULT_MAX_BYTES


def open_path(path: Path) -> int:
    """A read-only fd of the regular file at ``path``; a symlink (last component) is refused."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        raise FingerprintError(path, _os_reason(exc)) from exc
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise FingerprintError(path, "not a regular file")
    except BaseException:
        os.close(fd)
        raise
    return fd


def read_fd(fd: int, max_bytes: int = DEFAULT_MAX_BYTES) -> tuple[FileStat, bytes]:
    """Read a regular file whole from an open fd (from offset 0), and the stat it was read at."""
    try:
        before = os.fstat(fd)
        if not stat.S_ISREG(before.st_mode):
            raise FingerprintError("<fd>", "not a regular file")
        if before.st_size > max_bytes:
            raise FingerprintError("<fd>", f"file too large ({before.st_size} bytes)")
        chunks = []
        offset = 0
        while chunk := os.pread(fd, max(before.st_size - offset, 0) + 1, offset):
            chunks.append(chunk)
            offset += len(chunk)
            if offset > max_bytes:
                raise FingerprintError("<fd>", f"file too large (over {max_bytes} bytes)")
        data = b"".join(chunks)
        after = os.fstat(fd)
    except OSError as exc:
        raise FingerprintError("<fd>", _os_reason(exc)) from exc
    if (after.st_size, after.st_mtime_ns) != (before.st_size, before.st_mtime_ns) or len(
        data
    ) != after.st_size:
        raise FingerprintError("<fd>", "file changed while being read")
    return FileStat.of(after), data


def fingerprint_fd(
    fd: int, limits: Limits = Limits(), *, crops: bool = False, colours: bool = True
) -> tuple[FileStat, Fingerprint]:
    """Fingerprint the open file ``fd``; any problem is a ``FingerprintError`` with its reason."""
    file_stat, data = read_fd(fd, limits.max_bytes)
    fp = fingerprint_bytes(
        data, limits.max_pixels, limits.memory_bytes, crops=crops, colours=colours
    )
    return file_stat, fp


def fingerprint_file(
    path: Path, limits: Limits = Limits(), *, crops: bool = False
) -> tuple[FileStat, Fingerprint]:
    """Fingerprint the file at ``path`` in this process; errors name the path."""
    fd = open_path(path)
    try:
        return fingerprint_fd(fd, limits, crops=crops)
    except FingerprintError as exc:
        raise FingerprintError(path, exc.reason) from exc
    finally:
        os.close(fd)


def fingerprint_bytes(
    data: bytes,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    memory_bytes: int = DEFAULT_MEMORY_BYTES,
    *,
    crops: bool = False,
    colours: bool = True,
) -> Fingerprint:
    """Fingerprint an encoded image held in memory; ``crops``: with its centre crops' hashes
    (for a list entry: 4 ms more on a 12-megapixel JPEG, so only ``known add`` asks);
    ``colours``: with the colour signature (every file's, stored with it: a JPEG's chroma
    costs 5-10% more, docs/BENCHMARKS.md, "Issue 8: colours stored with files"); without it,
    ``Fingerprint.colours`` is None (not computed)."""
    sha256 = hashlib.sha256(data).hexdigest()
    if not data:
        raise FingerprintError("<bytes>", "empty file")
    decoded = _decode(data, max_pixels, memory_bytes, colours=crops or colours)
    pixels = decoded.pixels
    thumbs = dihedral.thumbnails(pixels)  # the resizes imagehash would make, made once
    dhash = dihedral.dhash(thumbs.wide)
    phash = regionhashes.phash(thumbs.square)
    flat = is_flat(decoded.pdq_quality, phash)
    parts = regionhashes.of(pixels, flat=flat)  # searched too; more_regions at turned thresholds
    return Fingerprint(
        sha256, dhash, phash, decoded.width, decoded.height, decoded.format, flat,
        pdq=decoded.pdq, pdq_quality=decoded.pdq_quality, regions=parts.regions,
        turned=() if flat else dihedral.turned(pixels, thumbs, decoded.smalls),  # turned copies'
        provenance=decoded.provenance,  # stored for list entries:
        crops=regionhashes.crop_hashes(pixels) if crops and not flat else (),
        grid=b"" if flat else blockgrid.grid_of(decoded.grey),  # verifies wider candidates
        more_regions=parts.more_regions,
        colours=(b"" if flat else decoded.colours) if crops or colours else None,  # colours.py
        region_pdqs=parts.pdqs,  # PDQ without the bars
    )  # fmt: skip


def working_image(data: bytes, limits: Limits = Limits()) -> NDArray[np.uint8]:
    """The small canonical greyscale image the hashes of ``data`` are made from: ``compare``
    finds where its regions lie (``boxed_hashes``)."""
    return _decode(data, limits.max_pixels, limits.memory_bytes, colours=False).pixels


@dataclass(frozen=True, slots=True)
class _Decoded:
    grey: Image.Image  # small, canonical, oriented
    pixels: NDArray[np.uint8]  # the same, as an array
    width: int  # the oriented size of the image
    height: int
    format: str
    pdq: int
    pdq_quality: int
    provenance: Provenance
    smalls: Flipped | None  # PDQ's filtered flips of ``pixels``, when PDQ came from them
    colours: bytes  # the colour signature (imagewatchd/colours.py; none for a grey picture)


def _decode(data: bytes, max_pixels: int, memory_bytes: int, *, colours: bool) -> _Decoded:
    """Decode to a small canonical greyscale image, and PDQ from the decoded image; with
    ``colours``, the colour signature too."""
    try:
        with Image.open(io.BytesIO(data), formats=ALLOWED_FORMATS) as img:
            fmt = img.format or "unknown"
            width, height = img.size
            if width * height > max_pixels:
                raise FingerprintError(
                    "<bytes>",
                    f"decompression bomb: {width}x{height} pixels exceeds the limit "
                    f"of {max_pixels}",
                )
            coefficients = jpeg_coefficient_bytes(img)
            if fmt in ("JPEG", "MPO"):  # JPEG's Y channel is exactly Pillow's "L" luma; its
                mode = "YCbCr" if colours else "L"  # chroma: the colours
                img.draft(mode, (WORKING_SIZE, WORKING_SIZE))
            _check_memory(coefficients + decode_bytes(img, len(data)), memory_bytes)
            orientation = _orientation(img)  # only now: a PNG's EXIF may follow its pixels,
            img.load()  # so Pillow decodes the whole image to look for it
            found = provenance(img)  # camera, capture date, JPEG quality: the keep policy's
            grey, hues = _to_grey(img, colours=colours)
        grey, pixels, pdq_hash, quality, smalls = _working(grey, orientation)
        if orientation in _TRANSPOSE and orientation >= 5:
            width, height = height, width
    except FingerprintError:
        raise
    except UnidentifiedImageError as exc:
        raise FingerprintError("<bytes>", "not an image in a supported format") from exc
    except Image.DecompressionBombError as exc:
        raise FingerprintError("<bytes>", f"decompression bomb: {exc}") from exc
    except MemoryError as exc:
        raise FingerprintError("<bytes>", OVER_MEMORY) from exc
    except Exception as exc:  # decoders raise anything: OSError, SyntaxError, ValueError…
        raise FingerprintError("<bytes>", f"cannot decode {_describe(exc)}") from exc
    return _Decoded(grey, pixels, width, height, fmt, pdq_hash, quality, found, smalls, hues)


def _working(grey: Image.Image, orientation: int) -> tuple[
    Image.Image, NDArray[np.uint8], int, int, Flipped | None
]:  # fmt: skip
    """The working image (turned by ``orientation``, shrunk), its pixels, PDQ and quality of
    the decoded image, and PDQ's filtered flips of the working image if PDQ came from them."""
    if _factor(grey.size) >= 2 or not _filtered(grey.size):  # PDQ of the larger image
        pdq_hash, quality = _pdq(grey, orientation)
        grey = _shrink(_turn(grey, orientation))
        return grey, np.asarray(grey), pdq_hash, quality, None
    grey = _turn(grey, orientation)  # not shrunk: PDQ's input is the working image,
    pixels = np.asarray(grey)  # so its own PDQ is the unflipped one of the turned hashes'
    smalls = pdq.flipped(pixels)
    return grey, pixels, *pdq.from_small(smalls[False, False]), smalls


def _turn(grey: Image.Image, orientation: int) -> Image.Image:
    """As if the pixels had been turned: before shrinking."""
    return grey.transpose(_TRANSPOSE[orientation]) if orientation in _TRANSPOSE else grey


def _filtered(size: tuple[int, int]) -> bool:
    """Whether PDQ filters an image of this size (``pdq.pdq``: not a tiny or a 64x64 one)."""
    return min(size) >= pdq.MIN_DIMENSION and size != (64, 64)


def _pdq(grey: Image.Image, orientation: int) -> tuple[int, int]:
    """PDQ of the decoded image, turned by its EXIF orientation (a numpy view, no copy)."""
    pixels = np.asarray(grey)
    turn = _ORIENT_ARRAY.get(orientation)
    return pdq.pdq(turn(pixels) if turn else pixels)


def _check_memory(needed: int, limit: int) -> None:
    if needed > limit:
        raise FingerprintError(
            "<bytes>", f"{OVER_MEMORY} (decoding needs about {needed >> 20} MiB, "
            f"the limit is {limit >> 20} MiB)",
        )  # fmt: skip


def _orientation(img: Image.Image) -> int:
    try:
        value = img.getexif().get(_ORIENTATION_TAG, 1)
    except Exception:  # a broken EXIF block must not make the picture unreadable
        return 1
    return value if isinstance(value, int) else 1


def _to_grey(img: Image.Image, *, colours: bool) -> tuple[Image.Image, bytes]:
    """Convert any mode to 8-bit greyscale, compositing transparency onto white; and, with
    ``colours``, the colour signature of the picture (imagewatchd/colours.py)."""
    mode = img.mode
    if mode in ("I", "I;16", "I;16L", "I;16B", "I;16N", "F"):
        return _stretch_to_l(img), b""
    if mode == "YCbCr":  # a JPEG drafted as it is stored: Y is its luma
        return img.getchannel(0), signature(img) if colours else b""
    if mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
    elif mode in ("CMYK", "YCbCr", "LAB", "HSV", "1"):
        img = img.convert("RGB")
    elif mode in ("RGBa", "La", "PA"):
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA"):  # one copy at a time: see decodecost._CANON_BYTES
        rgba = img if img.mode == "RGBA" else img.convert("RGBA")
        background = Image.new("RGBA", img.size, (_BACKGROUND,) * 3 + (255,))
        img = Image.alpha_composite(background, rgba)
        del rgba, background
    return img.convert("L"), signature(img) if colours else b""


def _stretch_to_l(img: Image.Image) -> Image.Image:
    """High-bit-depth grey → 8 bits. The hashes ignore brightness scale, so min-max suffices."""
    pixels = np.array(img, dtype=np.float64)  # in place from here on: one float copy at most
    low, high = float(pixels.min()), float(pixels.max())
    pixels -= low
    pixels *= 255.0 / (high - low) if high > low else 0.0
    np.round(pixels, out=pixels)
    return Image.fromarray(pixels.astype(np.uint8))


def _factor(size: tuple[int, int]) -> int:
    return min(size) // WORKING_SIZE


def _shrink(img: Image.Image) -> Image.Image:
    factor = _factor(img.size)
    return img.reduce(factor) if factor >= 2 else img


def is_flat(pdq_quality: int, phash: int) -> bool:
    """No hashable structure: see FLAT_QUALITY."""
    bits = phash.bit_count()
    return pdq_quality < FLAT_QUALITY or not FLAT_PHASH_BITS <= bits <= 64 - FLAT_PHASH_BITS


def flat_hash(dhash: int) -> bool:
    """An imported dHash with (almost) no bits set, or unset, may be a flat image's: such
    entries match identical files only, since no pixels are at hand to tell."""
    bits = dhash.bit_count()
    return bits <= FLAT_BITS or bits >= 64 - FLAT_BITS


def hex64(value: int) -> str:
    return f"{value:016x}"


def _describe(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return f"({text})"


_OS_REASONS = {
    errno.ENOENT: "no such file (it vanished?)",
    errno.EACCES: "permission denied",
    errno.EPERM: "permission denied",
    errno.ELOOP: "is a symlink (not followed)",
    errno.EISDIR: "is a directory",
    errno.EIO: "input/output error",
}


def _os_reason(exc: OSError) -> str:
    return _OS_REASONS.get(exc.errno or 0, exc.strerror or str(exc))
