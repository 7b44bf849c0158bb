"""Fingerprints: canonicalisation makes variants of one picture agree; bad input is named."""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path

import imagehash
import numpy as np
import pillow_heif
import pytest
from PIL import Image, ImageFilter

from imagewatchd import dihedral, fingerprint, pdq, regionhashes
from imagewatchd.errors import FingerprintError
from imagewatchd.fingerprint import fingerprint_bytes, fingerprint_file
from imagewatchd.hashindex import hamming
from imagewatchd.models import Fingerprint
from tests.conftest import MakeImage, photo


def encode(img: Image.Image, fmt: str, **params: object) -> bytes:
    out = io.BytesIO()
    img.save(out, fmt, **params)
    return out.getvalue()


def close(a: Fingerprint, b: Fingerprint, limit: int = 4) -> bool:
    return hamming(a.dhash, b.dhash) <= limit and hamming(a.phash, b.phash) <= limit


@pytest.fixture(scope="module")
def original() -> Fingerprint:
    return fingerprint_bytes(encode(photo(7, (1600, 1200)), "PNG"))


@pytest.mark.parametrize(
    ("fmt", "params"),
    [("JPEG", {"quality": 95}), ("JPEG", {"quality": 50}), ("WEBP", {"quality": 80}),
     ("BMP", {}), ("TIFF", {}), ("GIF", {}), ("HEIF", {"quality": 80}), ("AVIF", {"quality": 80})],
)  # fmt: skip
def test_reencoded_variants_stay_close(
    original: Fingerprint, fmt: str, params: dict[str, object]
) -> None:
    fp = fingerprint_bytes(encode(photo(7, (1600, 1200)), fmt, **params))
    assert fp.format == fmt
    assert (fp.width, fp.height) == (1600, 1200)
    assert close(fp, original), (fp, original)


def test_rescaled_variants_stay_close(original: Fingerprint) -> None:
    for size in ((800, 600), (400, 300), (333, 251)):
        fp = fingerprint_bytes(encode(photo(7, (1600, 1200)).resize(size), "JPEG", quality=85))
        assert close(fp, original), size


def test_exif_orientation_is_applied(original: Fingerprint) -> None:
    rotated = photo(7, (1600, 1200)).transpose(Image.Transpose.ROTATE_90)  # stored sideways
    exif = Image.Exif()
    exif[0x0112] = 6  # display rotated 90° clockwise: undoes the rotation above
    fp = fingerprint_bytes(encode(rotated, "JPEG", quality=90, exif=exif))
    assert (fp.width, fp.height) == (1600, 1200)
    assert close(fp, original)
    plain = fingerprint_bytes(encode(rotated, "JPEG", quality=90))
    assert not close(plain, original)


def test_different_photos_are_far_apart(original: Fingerprint) -> None:
    other = fingerprint_bytes(encode(photo(8, (1600, 1200)), "PNG"))
    assert hamming(other.dhash, original.dhash) > 16 or hamming(other.phash, original.phash) > 16


def test_transparency_is_composited_onto_white() -> None:
    base = photo(3).convert("RGBA")
    pixels = np.asarray(base).copy()
    pixels[:, :200, 3] = 0  # left strip fully transparent
    transparent = Image.fromarray(pixels, "RGBA")
    on_white = Image.new("RGB", base.size, "white")
    on_white.paste(transparent, mask=transparent)
    a = fingerprint_bytes(encode(transparent, "PNG"))
    b = fingerprint_bytes(encode(on_white, "PNG"))
    assert close(a, b, limit=2)


def test_palette_cmyk_and_greyscale_modes() -> None:
    reference = fingerprint_bytes(encode(photo(4), "PNG"))
    for img in (photo(4).convert("P"), photo(4).convert("CMYK"), photo(4).convert("L")):
        fmt = "JPEG" if img.mode == "CMYK" else "PNG"
        assert close(
            fingerprint_bytes(encode(img, fmt, **({"quality": 95} if fmt == "JPEG" else {}))),
            reference,
            limit=6,
        ), img.mode


def test_sixteen_bit_greyscale_uses_the_full_range() -> None:
    grey8 = np.asarray(photo(5).convert("L"), dtype=np.uint16)
    img16 = Image.fromarray(grey8 * 257)
    assert img16.mode == "I;16"
    fp16 = fingerprint_bytes(encode(img16, "PNG"))
    fp8 = fingerprint_bytes(encode(photo(5).convert("L"), "PNG"))
    assert not fp16.flat
    assert close(fp16, fp8, limit=2)


def test_animation_uses_the_first_frame() -> None:
    frames = [photo(10), photo(11), photo(12)]
    out = io.BytesIO()
    frames[0].save(out, "GIF", save_all=True, append_images=frames[1:], duration=100)
    animated = fingerprint_bytes(out.getvalue())
    first = fingerprint_bytes(encode(frames[0], "GIF"))
    second = fingerprint_bytes(encode(frames[1], "GIF"))
    assert close(animated, first, limit=1)
    assert not close(animated, second)


def test_flat_images_are_detected() -> None:
    for img in (
        Image.new("RGB", (300, 200), "red"),
        Image.new("L", (2000, 3000), 250),
        Image.fromarray(np.random.default_rng(1).normal(240, 1.0, (400, 300)).astype(np.uint8)),
    ):
        fp = fingerprint_bytes(encode(img, "PNG"))
        assert fp.flat, img
    assert not fingerprint_bytes(encode(photo(1), "PNG")).flat


def test_a_gradient_is_a_picture_not_a_flat_image() -> None:
    """A page lit from one side: dHash all ones, yet real structure that pHash tells apart."""
    x = np.linspace(60, 200, 640)[None, :].repeat(480, axis=0)
    text = np.random.default_rng(3).random((480, 640)) < 0.02  # sparse dark marks
    page = Image.fromarray(np.where(text, x - 50, x).astype(np.uint8))
    fp = fingerprint_bytes(encode(page, "PNG"))
    assert fp.dhash.bit_count() >= 62
    assert not fp.flat


def paper(seed: int, size: tuple[int, int] = (800, 600)) -> Image.Image:
    """A fine-grained, low-contrast paper texture, as a scanned sheet or a wallpaper is."""
    rng = np.random.default_rng(seed)
    coarse = Image.fromarray((rng.random((6, 8)) * 255).astype(np.uint8))
    blotches = np.asarray(coarse.resize(size, Image.Resampling.BICUBIC), dtype=np.float64)
    noise = np.clip(128 + rng.normal(0, 40, (size[1], size[0])), 0, 255).astype(np.uint8)
    grain = Image.fromarray(noise).filter(ImageFilter.GaussianBlur(1.2))
    pixels = 215 + (blotches - 128) * 0.02 + (np.asarray(grain, dtype=np.float64) - 128) * 0.35
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


def test_a_low_contrast_texture_is_structure_and_matches_its_copies() -> None:
    """Its 32x32 thumbnail hardly varies (the old flat rule), yet its grain is hashable."""
    sheet = paper(0)
    thumb = np.asarray(sheet.resize((32, 32), Image.Resampling.BOX), dtype=np.float64)
    assert thumb.std() < 3.0
    original = fingerprint_bytes(encode(sheet, "PNG"))
    assert not original.flat
    assert close(original, fingerprint_bytes(encode(sheet, "JPEG", quality=85)))
    as_jpeg = encode(sheet, "JPEG", quality=90)
    with Image.open(io.BytesIO(as_jpeg)) as decoded:  # the JPEG converted to PNG (drafted)
        assert close(fingerprint_bytes(as_jpeg), fingerprint_bytes(encode(decoded, "PNG")))
    others = [fingerprint_bytes(encode(paper(seed), "PNG")) for seed in (1, 2, 3)]
    assert not any(close(original, other, limit=8) for other in others)


def test_shading_without_structure_is_flat() -> None:
    """A vignetted blank page, a clean gradient and a ruled page: nothing to tell them apart."""
    y, x = np.mgrid[0:480, 0:640]
    vignette = 230 - 40 * (((y - 240) / 480) ** 2 + ((x - 320) / 640) ** 2)
    ramp = x / 640 * 255
    ruled = np.where((y // 24) % 2 == 0, 250, 240)
    for pixels in (vignette, ramp, ruled, 255 - ramp):
        img = Image.fromarray(pixels.astype(np.uint8))
        assert fingerprint_bytes(encode(img, "PNG")).flat
        assert fingerprint_bytes(encode(img, "JPEG", quality=60)).flat


def test_heic_is_read_via_pillow_heif() -> None:
    assert pillow_heif.__version__
    fp = fingerprint_bytes(encode(photo(7, (1600, 1200)), "HEIF", quality=90))
    assert fp.format == "HEIF"


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "empty file"),
        (b"just some text, not a picture\n", "not an image in a supported format"),
        (b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\n", "not an image"),
    ],
)
def test_bad_bytes_are_named_errors(data: bytes, reason: str) -> None:
    with pytest.raises(FingerprintError, match=reason):
        fingerprint_bytes(data)


def test_truncated_and_corrupt_files(tmp_path: Path) -> None:
    whole = encode(photo(2, (800, 600)), "JPEG", quality=90)
    (tmp_path / "truncated.jpg").write_bytes(whole[: len(whole) // 2])
    (tmp_path / "corrupt.png").write_bytes(encode(photo(2), "PNG")[:100] + b"\0" * 500)
    for name in ("truncated.jpg", "corrupt.png"):
        with pytest.raises(FingerprintError) as info:
            fingerprint_file(tmp_path / name)
        assert name in str(info.value)
        assert "cannot decode" in info.value.reason


def test_decompression_bomb_is_refused_before_decoding() -> None:
    bomb = encode(Image.new("1", (20000, 20000)), "PNG")  # tiny file, 400 Mpx
    assert len(bomb) < 200_000
    with pytest.raises(FingerprintError, match="decompression bomb"):
        fingerprint_bytes(bomb)
    with pytest.raises(FingerprintError, match="decompression bomb"):
        fingerprint_bytes(encode(photo(1), "PNG"), max_pixels=1000)


def test_files_that_are_not_regular_or_readable(tmp_path: Path, make_image: MakeImage) -> None:
    real = make_image("real.png")
    (tmp_path / "link.png").symlink_to(real)
    with pytest.raises(FingerprintError, match="symlink"):
        fingerprint_file(tmp_path / "link.png")
    with pytest.raises(FingerprintError, match="no such file"):
        fingerprint_file(tmp_path / "gone.png")
    with pytest.raises(FingerprintError, match=r"directory|not a regular file"):
        fingerprint_file(tmp_path)
    fifo = tmp_path / "fifo.png"
    os.mkfifo(fifo)
    with pytest.raises(FingerprintError, match="not a regular file"):
        fingerprint_file(fifo)


def test_sha256_is_of_the_bytes(make_image: MakeImage) -> None:
    path = make_image("a.png")
    stat, fp = fingerprint_file(path)
    assert fp.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert stat.size == path.stat().st_size
    assert stat.inode == path.stat().st_ino


@pytest.mark.parametrize(
    ("size", "fmt", "working"),
    [((1632, 1224), "JPEG", (408, 306)), ((4000, 3000), "JPEG", (500, 375)),
     ((640, 480), "JPEG", (640, 480)), ((1600, 1200), "PNG", (400, 300)),
     ((200, 120), "PNG", (200, 120))],
)  # fmt: skip
def test_hashes_are_imagehash_of_the_small_working_image(
    size: tuple[int, int], fmt: str, working: tuple[int, int]
) -> None:
    """dHash and pHash are imagehash's of the working image, bit for bit, though made from
    resizes shared with the turned hashes; each turned PDQ is the turned image's."""
    data = encode(photo(31, size), fmt)
    decoded = fingerprint._decode(data, fingerprint.DEFAULT_MAX_PIXELS, 1 << 30, colours=False)
    assert decoded.grey.size == working
    fp = fingerprint_bytes(data, memory_bytes=1 << 30)
    assert f"{fp.dhash:016x}" == str(imagehash.dhash(decoded.grey))
    assert f"{fp.phash:016x}" == str(imagehash.phash(decoded.grey))
    pixels = np.asarray(decoded.grey)
    expected = [pdq.pdq(dihedral.undo(turn, pixels))[0] for turn in dihedral.TURNS[1:]]
    assert [t.pdq for t in fp.turned] == expected


def test_phash_is_imagehash_on_ties_too() -> None:
    """Ruled and symmetric pictures put DCT coefficients right at the median: still equal."""
    stripes = np.tile(np.repeat(np.array([0, 255], dtype=np.uint8), 8), (256, 16))[:, :256]
    for img in (Image.fromarray(stripes), Image.fromarray(stripes.T), photo(3).convert("L")):
        thumbs = dihedral.thumbnails(np.asarray(img.convert("L")))
        assert f"{regionhashes.phash(thumbs.square):016x}" == str(imagehash.phash(img))
        assert f"{dihedral.dhash(thumbs.wide):016x}" == str(imagehash.dhash(img))
