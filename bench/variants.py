"""The variant kinds of the evaluation set: one function per kind, deterministic (seeded).

Each kind turns the displayed pixels of an original (EXIF orientation applied, transparency
on white, RGB) into a variant, and names the format it is saved in. ``KINDS`` lists them with
their class: ``benign`` (what a library or an upload pipeline does anyway), ``orientation``,
``border``, ``crop``, ``overlay`` (captions and watermarks), ``screenshot`` and ``recolour``
(its own category).
"""

from __future__ import annotations

import io
import math
import random
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pillow_heif
from PIL import Image, ImageDraw, ImageEnhance, ImageFilter, ImageFont, ImageOps

pillow_heif.register_heif_opener()
Image.MAX_IMAGE_PIXELS = None

# Variants are made from the displayed pixels shrunk to at most this long side (few originals
# are larger): it keeps the build within minutes. The reference stays the original file.
MAX_SIDE = 1600
Maker = Callable[[Image.Image, random.Random], Image.Image]


@dataclass(frozen=True)
class Kind:
    name: str
    klass: str  # benign, orientation, border, crop, overlay, screenshot, recolour
    make: Maker
    fmt: str = ""  # "" keeps the original's family (JPEG q95 or PNG); else see save()
    what: str = ""


def canonical(path: Path) -> Image.Image:
    """Displayed pixels as RGB: EXIF orientation applied, transparency composited on white."""
    with Image.open(path) as img:
        img.load()
        shown = ImageOps.exif_transpose(img)
    if shown.mode in ("RGBA", "LA", "PA") or "transparency" in shown.info:
        rgba = shown.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return shown.convert("RGB")


def working_copy(img: Image.Image) -> Image.Image:
    if max(img.size) <= MAX_SIDE:
        return img
    copy = img.copy()
    copy.thumbnail((MAX_SIDE, MAX_SIDE), Image.Resampling.LANCZOS)
    return copy


def seed_of(photo_id: str, kind: str) -> random.Random:
    return random.Random(zlib.crc32(f"{photo_id}/{kind}".encode()))


# --- benign ---------------------------------------------------------------------------------


def scaled(factor: float, odd: bool = False) -> Maker:
    def make(img: Image.Image, _: random.Random) -> Image.Image:
        w, h = (max(8, round(d * factor)) for d in img.size)
        if odd:  # non-round dimensions: force both odd
            w, h = w | 1, h | 1
        return img.resize((w, h), Image.Resampling.LANCZOS)

    return make


def same(img: Image.Image, _: random.Random) -> Image.Image:
    return img


def rotated_pixels(pixels: Image.Transpose) -> Maker:
    def make(img: Image.Image, _: random.Random) -> Image.Image:
        return img.transpose(pixels)

    return make


def brightness(factor: float) -> Maker:
    return lambda img, _: ImageEnhance.Brightness(img).enhance(factor)


def contrast(factor: float) -> Maker:
    return lambda img, _: ImageEnhance.Contrast(img).enhance(factor)


def blur(img: Image.Image, _: random.Random) -> Image.Image:
    return img.filter(ImageFilter.GaussianBlur(max(1.0, max(img.size) / 400)))


def noise(img: Image.Image, rng: random.Random) -> Image.Image:
    gen = np.random.default_rng(rng.getrandbits(32))
    pixels = np.asarray(img, dtype=np.float32) + gen.normal(0.0, 10.0, (*img.size[::-1], 3))
    return Image.fromarray(np.clip(pixels, 0, 255).round().astype(np.uint8))


def grey(img: Image.Image, _: random.Random) -> Image.Image:
    return img.convert("L")


def thumbnail(img: Image.Image, _: random.Random) -> Image.Image:
    thumb = img.copy()
    thumb.thumbnail((160, 160), Image.Resampling.LANCZOS)
    return thumb


def _fit(img: Image.Image, side: int) -> Image.Image:
    factor = side / max(img.size)
    if factor >= 1:
        return img
    size = (max(8, round(img.width * factor)), max(8, round(img.height * factor)))
    return img.resize(size, Image.Resampling.LANCZOS)


def _reencoded(img: Image.Image, fmt: str, **opts: object) -> Image.Image:
    buf = io.BytesIO()
    img.save(buf, fmt, **opts)
    buf.seek(0)
    with Image.open(buf) as out:
        return out.convert("RGB")


def social_chain(img: Image.Image, _: random.Random) -> Image.Image:
    """Posted, downloaded and re-posted: 1080 px JPEG q85, 720 px WebP q75, then JPEG q80."""
    first = _reencoded(_fit(img, 1080), "JPEG", quality=85, subsampling=2)
    return _reencoded(_fit(first, 720), "WEBP", quality=75)


# --- borders, crops -------------------------------------------------------------------------


def border(frac: float, colour: tuple[int, int, int] = (255, 255, 255)) -> Maker:
    def make(img: Image.Image, _: random.Random) -> Image.Image:
        w, h = img.size
        return ImageOps.expand(img, (round(w * frac), round(h * frac)) * 2, fill=colour)

    return make


def pad_square(img: Image.Image, _: random.Random) -> Image.Image:
    side = max(img.size)
    canvas = Image.new("RGB", (side, side), (0, 0, 0))
    canvas.paste(img, ((side - img.width) // 2, (side - img.height) // 2))
    return canvas


def letterbox(img: Image.Image, _: random.Random) -> Image.Image:
    """Into a 16:9 frame (9:16 for a portrait photo) with black bars, as a video player shows."""
    w, h = img.size
    aspect = 16 / 9 if w >= h else 9 / 16
    cw, ch = (w, round(w / aspect)) if w / h > aspect else (round(h * aspect), h)
    canvas = Image.new("RGB", (max(cw, w), max(ch, h)), (0, 0, 0))
    canvas.paste(img, ((canvas.width - w) // 2, (canvas.height - h) // 2))
    return canvas


def crop(frac: float) -> Maker:
    def make(img: Image.Image, _: random.Random) -> Image.Image:
        w, h = img.size
        dx, dy = round(w * frac), round(h * frac)
        return img.crop((dx, dy, w - dx, h - dy))

    return make


def rotate_crop(degrees: float) -> Maker:
    """Rotated, then cut to the largest centred rectangle of the same shape with no corners."""

    def make(img: Image.Image, _: random.Random) -> Image.Image:
        w, h = img.size
        c, s = math.cos(math.radians(degrees)), math.sin(math.radians(degrees))
        scale = min(w / (w * c + h * s), h / (w * s + h * c))
        turned = img.rotate(degrees, Image.Resampling.BICUBIC)
        cw, ch = int(w * scale), int(h * scale)
        left, top = (w - cw) // 2, (h - ch) // 2
        return turned.crop((left, top, left + cw, top + ch))

    return make


# --- overlays, screenshot, recolour ---------------------------------------------------------


def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=max(8, size))


def caption(img: Image.Image, _: random.Random) -> Image.Image:
    """A white bar (18% of the height) above the photo with a line of black text: a meme."""
    w, h = img.size
    bar = max(16, round(h * 0.18))
    canvas = Image.new("RGB", (w, h + bar), (255, 255, 255))
    canvas.paste(img, (0, bar))
    draw = ImageDraw.Draw(canvas)
    draw.text((w // 2, bar // 2), "when the photo is just right", fill=(0, 0, 0),
              font=_font(min(bar // 2, w // 16)), anchor="mm")  # fmt: skip
    return canvas


def corner_watermark(img: Image.Image, _: random.Random) -> Image.Image:
    """A semi-opaque label and logo box in the bottom-right corner (about 30% of the width)."""
    w, h = img.size
    layer = Image.new("RGBA", img.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(layer)
    size = max(8, round(min(w, h) * 0.06))
    font = _font(size)
    text = "(c) photo-site.example"
    tw = draw.textlength(text, font=font)
    x, y = w - tw - size, h - 2 * size
    draw.rectangle((x - size * 1.4, y - size * 0.3, x - size * 0.3, y + size * 0.9),
                   fill=(255, 255, 255, 170))  # fmt: skip
    draw.text((x + 1, y + 1), text, fill=(0, 0, 0, 120), font=font)
    draw.text((x, y), text, fill=(255, 255, 255, 200), font=font)
    return Image.alpha_composite(img.convert("RGBA"), layer).convert("RGB")


def diagonal_watermark(img: Image.Image, _: random.Random) -> Image.Image:
    """A large semi-transparent word across the diagonal, as stock-photo sites stamp."""
    w, h = img.size
    diag = math.hypot(w, h)
    layer = Image.new("RGBA", (round(diag), round(diag)), (0, 0, 0, 0))
    draw = ImageDraw.Draw(layer)
    draw.text((layer.width // 2, layer.height // 2), "PREVIEW", fill=(255, 255, 255, 110),
              font=_font(round(diag / 6)), anchor="mm", stroke_width=max(1, round(diag / 400)),
              stroke_fill=(0, 0, 0, 60))  # fmt: skip
    turned = layer.rotate(math.degrees(math.atan2(h, w)), Image.Resampling.BICUBIC)
    left, top = (turned.width - w) // 2, (turned.height - h) // 2
    stamp = turned.crop((left, top, left + w, top + h))
    return Image.alpha_composite(img.convert("RGBA"), stamp).convert("RGB")


def screenshot(img: Image.Image, rng: random.Random) -> Image.Image:
    """The photo shown in an image viewer's window: title bar, toolbar, side panel, status bar;
    the photo fitted into the view (about 60% of the screen) on a grey background."""
    sw, sh = 1440, 900
    screen = Image.new("RGB", (sw, sh), (236, 236, 236))
    draw = ImageDraw.Draw(screen)
    draw.rectangle((0, 0, sw, 36), fill=(48, 48, 52))
    for i, colour in enumerate(((237, 95, 87), (246, 190, 79), (98, 197, 84))):
        draw.ellipse((14 + 22 * i, 11, 28 + 22 * i, 25), fill=colour)
    draw.text((sw // 2, 18), "IMG_4031.jpg - Image Viewer", fill=(230, 230, 230),
              font=_font(15), anchor="mm")  # fmt: skip
    draw.rectangle((0, 36, sw, 84), fill=(250, 250, 250))
    for i in range(9):
        draw.rounded_rectangle((12 + 44 * i, 46, 44 + 44 * i, 76), 6, fill=(210, 210, 214))
    draw.rectangle((0, 84, 240, sh - 28), fill=(244, 244, 246))
    for i in range(14):
        width = rng.randint(90, 200)
        draw.rounded_rectangle((20, 104 + 34 * i, 20 + width, 118 + 34 * i), 4,
                               fill=(200, 200, 206))  # fmt: skip
    draw.rectangle((0, sh - 28, sw, sh), fill=(230, 230, 234))
    draw.text((12, sh - 14), f"{img.width} x {img.height}   100%", fill=(60, 60, 60),
              font=_font(13), anchor="lm")  # fmt: skip
    view = (240, 84, sw, sh - 28)
    draw.rectangle(view, fill=(64, 64, 68))
    shown = img.copy()
    shown.thumbnail((view[2] - view[0] - 48, view[3] - view[1] - 48), Image.Resampling.LANCZOS)
    left = view[0] + (view[2] - view[0] - shown.width) // 2
    top = view[1] + (view[3] - view[1] - shown.height) // 2
    screen.paste(shown, (left, top))
    return screen


def recolour(img: Image.Image, _: random.Random) -> Image.Image:
    """Hue turned by 120 degrees, saturation and value kept."""
    hsv = np.array(img.convert("HSV"))
    hsv[..., 0] = (hsv[..., 0].astype(np.uint16) + 85) % 256
    return Image.fromarray(hsv, "HSV").convert("RGB")


_T = Image.Transpose
KINDS: list[Kind] = [
    Kind("scale50", "benign", scaled(0.5), what="LANCZOS to 50%"),
    Kind("scale25", "benign", scaled(0.25), what="LANCZOS to 25%"),
    Kind("odd37", "benign", scaled(0.37, odd=True), what="0.37x, odd dimensions"),
    Kind("odd130", "benign", scaled(1.3, odd=True), what="1.3x, odd dimensions"),
    Kind("jpeg95", "benign", same, "jpeg95"),
    Kind("jpeg75", "benign", same, "jpeg75"),
    Kind("jpeg50", "benign", same, "jpeg50"),
    Kind("png", "benign", same, "png"),
    Kind("webp80", "benign", same, "webp80"),
    Kind("heic80", "benign", same, "heic80"),
    Kind("avif60", "benign", same, "avif60"),
    Kind("gif", "benign", same, "gif", "256-colour adaptive palette"),
    Kind("exif6", "benign", rotated_pixels(_T.ROTATE_90), "exif6", "pixels turned, EXIF 6"),
    Kind("exif8", "benign", rotated_pixels(_T.ROTATE_270), "exif8", "pixels turned, EXIF 8"),
    Kind("exif3", "benign", rotated_pixels(_T.ROTATE_180), "exif3", "pixels turned, EXIF 3"),
    Kind("bright10", "benign", brightness(1.10), what="brightness x1.10"),
    Kind("bright+25", "benign", brightness(1.25), what="brightness x1.25"),
    Kind("bright-25", "benign", brightness(0.75), what="brightness x0.75"),
    Kind("bright+30", "benign", brightness(1.30), what="brightness x1.30"),
    Kind("bright-30", "benign", brightness(0.70), what="brightness x0.70"),
    Kind("contrast+30", "benign", contrast(1.30), what="contrast x1.30"),
    Kind("contrast-30", "benign", contrast(0.70), what="contrast x0.70"),
    Kind("blur", "benign", blur, what="Gaussian blur, radius long side / 400"),
    Kind("noise", "benign", noise, "jpeg95", "Gaussian noise sigma 10 per channel"),
    Kind("grey", "benign", grey, what="greyscale"),
    Kind("thumb", "benign", thumbnail, "jpeg85", "160 px thumbnail, JPEG q85"),
    Kind("social", "benign", social_chain, "jpeg80", "1080px q85, 720px WebP q75, JPEG q80"),
    Kind("mirror", "orientation", rotated_pixels(_T.FLIP_LEFT_RIGHT), what="left-right flip"),
    Kind("rot90", "orientation", rotated_pixels(_T.ROTATE_90), what="pixels turned 90"),
    Kind("rot180", "orientation", rotated_pixels(_T.ROTATE_180), what="pixels turned 180"),
    Kind("rot270", "orientation", rotated_pixels(_T.ROTATE_270), what="pixels turned 270"),
    Kind("border4", "border", border(0.04), what="white border, 4% of each side"),
    Kind("square", "border", pad_square, what="padded to a square, black"),
    Kind("letterbox", "border", letterbox, what="in a 16:9 (9:16) frame, black bars"),
    Kind("crop2", "crop", crop(0.02), what="2% cut from every border"),
    Kind("crop5", "crop", crop(0.05), what="5% cut from every border"),
    Kind("crop10", "crop", crop(0.10), what="10% cut from every border"),
    Kind("rot3crop", "crop", rotate_crop(3.0), what="rotated 3 degrees, corners cut"),
    Kind("caption", "overlay", caption, what="white caption bar, 18% of the height"),
    Kind("wm_corner", "overlay", corner_watermark, what="label in the bottom-right corner"),
    Kind("wm_diagonal", "overlay", diagonal_watermark, what="large word across the diagonal"),
    Kind("screenshot", "screenshot", screenshot, "png", "in a viewer window, 1440x900"),
    Kind("recolour", "recolour", recolour, what="hue turned 120 degrees"),
]
_EXIF_TAG = 0x0112
# faster encoder settings (x265 at its defaults takes ~2.5 s for a 1600x1000 picture)
_FAST: dict[str, dict[str, object]] = {
    "avif": {"speed": 8},
    "heic": {"enc_params": {"preset": "ultrafast"}},
}


def save(img: Image.Image, dest: Path, stem: str, fmt: str, is_jpeg: bool) -> str:
    """Write one variant; returns its file name."""
    if not fmt:
        fmt = "jpeg95" if is_jpeg else "png"
    if fmt.startswith("jpeg") or fmt.startswith("exif"):
        opts: dict[str, object] = {"quality": int(fmt[4:]) if fmt.startswith("jpeg") else 95}
        if fmt.startswith("exif"):
            exif = Image.Exif()
            exif[_EXIF_TAG] = int(fmt[4:])
            opts["exif"] = exif
        name, out = f"{stem}.jpg", img
    elif fmt == "png":
        name, out, opts = f"{stem}.png", img, {"compress_level": 1}
    elif fmt == "gif":
        name, out, opts = f"{stem}.gif", img.convert("P", palette=Image.Palette.ADAPTIVE), {}
    else:  # webp80, heic80, avif60
        ext, quality = fmt[:4], int(fmt[4:])
        opts = {"quality": quality, **_FAST.get(ext, {})}
        name, out = f"{stem}.{ext}", img
    out.save(dest / name, **opts)  # type: ignore[arg-type]
    return name
