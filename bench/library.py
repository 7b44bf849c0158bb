"""Which copy a duplicate group keeps (issue 10): a photo library built from the evaluation set's
real photographs and the copies people really accumulate, ranked by the keep policy and, side by
side in the same run, by the former rule (most pixels, then largest file).

Every original becomes a camera original: its own EXIF where its package ships one (60 of 325
photos do), else plausible camera EXIF written here (a camera make and model, a capture date).
Its copies, chosen at random (seeded) from what phones, messengers and tools make:

- ``copy``: the same bytes under another name (either one may be kept);
- ``messenger``: EXIF stripped, long side 1280, JPEG quality 70 (a chat app's re-encode);
- ``thumbnail``: long side 320, EXIF kept, quality 85;
- ``heic``: the same pixels as HEIC, EXIF kept (a phone's or a converter's copy);
- ``webp``: the same pixels as WebP quality 80, EXIF stripped (a download);
- ``export``: the same pixels, EXIF kept, quality 90, written by an editor (Software tag);
- ``upscaled``: 1.5 times the pixels, EXIF stripped, quality 85 (an upscaler's output);
- ``screenshot``: a PNG of the photo at 80 % with a 24-pixel grey frame (a viewer's window).

    .venv/bin/python bench/library.py [--groups 325] [--seed 1] [--out /tmp/iw-library] [--reuse]

Modification times are random (the original is not always the oldest file). Prints a Markdown
report: keeper accuracy per rule, per kind of copy that won wrongly, on each half of the groups
(split by a hash of the group folder's name: rules are worked out on the first half, checked on
the held-out second), and every miss of the keep policy. ``--reuse`` ranks the library ``--out``
holds already. Needs bench/data (``bench/dataset.py``).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import sys
import zlib
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pillow_heif
from PIL import Image, ImageOps

from imagewatchd.keep import Copy, rank
from imagewatchd.provenance import provenance

pillow_heif.register_heif_opener()

DATA = Path(__file__).parent / "data" / "originals"
CAMERAS = [("Canon", "Canon EOS 80D"), ("NIKON CORPORATION", "NIKON D7500"),
           ("SONY", "ILCE-7M3"), ("Apple", "iPhone 13"), ("samsung", "SM-G991B"),
           ("FUJIFILM", "X-T30")]  # fmt: skip
EDITORS = ["Adobe Photoshop Lightroom Classic 12.0 (Windows)", "GIMP 2.10.34", "darktable 4.4.2"]
KINDS = ("copy", "messenger", "thumbnail", "heic", "webp", "export", "upscaled", "screenshot")


@dataclass(frozen=True, slots=True)
class Member:
    path: Path
    kind: str  # "original" or one of KINDS


def camera_exif(img: Image.Image, rng: random.Random) -> bytes:
    """The original's own EXIF if it names a camera, else a plausible camera's."""
    exif = img.getexif()
    exif.pop(0x0112, None)  # the copies are written with the pixels already turned upright
    if exif.get(0x010F) or exif.get(0x0110):
        return exif.tobytes()
    make, model = rng.choice(CAMERAS)
    exif[0x010F], exif[0x0110] = make, model
    when = f"20{rng.randint(10, 24):02d}:{rng.randint(1, 12):02d}:{rng.randint(1, 28):02d}"
    exif.get_ifd(0x8769)[0x9003] = f"{when} {rng.randint(6, 20):02d}:{rng.randint(0, 59):02d}:00"
    return exif.tobytes()


def write_original(src: Path, dest: Path, rng: random.Random) -> tuple[Image.Image, bytes]:
    """A camera original: JPEG as the package ships it (EXIF added if missing), else JPEG 95."""
    with Image.open(src) as img:
        own_camera = img.format == "JPEG" and bool(img.getexif().get(0x010F))
        pixels = ImageOps.exif_transpose(img).convert("RGB")  # before the EXIF is edited
        exif = camera_exif(img, rng)
        if own_camera:
            shutil.copyfile(src, dest)  # the package's own camera file, untouched
        else:
            pixels.save(dest, "JPEG", quality=rng.choice([92, 95, 97]), exif=exif)
    return pixels, exif


def _scaled(img: Image.Image, long_side: int) -> Image.Image:
    factor = long_side / max(img.size)
    if factor >= 1:
        return img
    return img.resize(
        (round(img.width * factor), round(img.height * factor)), Image.Resampling.LANCZOS
    )


Maker = Callable[[Path, Image.Image, bytes, Path, random.Random], Path]


def _copy(out: Path, img: Image.Image, exif: bytes, original: Path, rng: random.Random) -> Path:
    shutil.copyfile(original, out.with_suffix(".jpg"))
    return out.with_suffix(".jpg")


def _messenger(out: Path, img: Image.Image, exif: bytes, _: Path, rng: random.Random) -> Path:
    _scaled(img, 1280).save(out.with_suffix(".jpg"), "JPEG", quality=70)
    return out.with_suffix(".jpg")


def _thumbnail(out: Path, img: Image.Image, exif: bytes, _: Path, rng: random.Random) -> Path:
    _scaled(img, 320).save(out.with_suffix(".jpg"), "JPEG", quality=85, exif=exif)
    return out.with_suffix(".jpg")


def _heic(out: Path, img: Image.Image, exif: bytes, _: Path, rng: random.Random) -> Path:
    img.save(out.with_suffix(".heic"), "HEIF", quality=80, exif=exif)
    return out.with_suffix(".heic")


def _webp(out: Path, img: Image.Image, exif: bytes, _: Path, rng: random.Random) -> Path:
    img.save(out.with_suffix(".webp"), "WEBP", quality=80)
    return out.with_suffix(".webp")


def _export(out: Path, img: Image.Image, exif: bytes, _: Path, rng: random.Random) -> Path:
    edited = Image.Exif()
    edited.load(exif)
    edited[0x0131] = rng.choice(EDITORS)
    img.save(out.with_suffix(".jpg"), "JPEG", quality=90, exif=edited.tobytes())
    return out.with_suffix(".jpg")


def _upscaled(out: Path, img: Image.Image, exif: bytes, _: Path, rng: random.Random) -> Path:
    bigger = img.resize((img.width * 3 // 2, img.height * 3 // 2), Image.Resampling.LANCZOS)
    bigger.save(out.with_suffix(".jpg"), "JPEG", quality=85)
    return out.with_suffix(".jpg")


def _screenshot(out: Path, img: Image.Image, exif: bytes, _: Path, rng: random.Random) -> Path:
    shot = img.resize((img.width * 4 // 5, img.height * 4 // 5), Image.Resampling.LANCZOS)
    ImageOps.expand(shot, 24, (60, 60, 60)).save(out.with_suffix(".png"), "PNG")
    return out.with_suffix(".png")


MAKERS: dict[str, Maker] = {
    "copy": _copy, "messenger": _messenger, "thumbnail": _thumbnail, "heic": _heic,
    "webp": _webp, "export": _export, "upscaled": _upscaled, "screenshot": _screenshot,
}  # fmt: skip


def build(out: Path, groups: int, seed: int) -> list[list[Member]]:
    manifest = json.loads((DATA / "manifest.json").read_text())
    photos = [e for e in manifest if e["category"] == "photo"][:groups]
    rng = random.Random(seed)
    library = []
    for n, entry in enumerate(photos):
        folder = out / f"{n:03d}"
        folder.mkdir(parents=True)
        original = folder / f"IMG_{1000 + n}.jpg"
        img, exif = write_original(DATA / entry["file"], original, rng)
        members = [Member(original, "original")]
        for kind in rng.sample(KINDS, rng.randint(2, 5)):
            path = MAKERS[kind](folder / f"{kind}-{rng.randrange(10**6)}", img, exif, original, rng)
            members.append(Member(path, kind))
        for member in members:  # copies are not always younger: the order must not tell
            stamp = rng.uniform(1.5e9, 1.7e9)
            os.utime(member.path, (stamp, stamp))
        library.append(members)
    return library


def copy_of(path: Path) -> Copy:
    with Image.open(path) as img:
        info = path.stat()
        return Copy(
            str(path), img.width, img.height, img.format or "?", info.st_size,
            info.st_mtime_ns, provenance(img),
        )  # fmt: skip


def former_rule(copies: list[Copy]) -> Copy:
    return min(copies, key=lambda c: (-c.pixels, -c.size, c.path))


def half(members: list[Member]) -> int:
    """0 (tuning) or 1 (held out): by a hash of the group's folder name."""
    return zlib.crc32(members[0].path.parent.name.encode()) % 2


def built(out: Path) -> list[list[Member]]:
    """A library ``build`` wrote before (``--reuse``): the kind is in each file's name."""
    groups = []
    for folder in sorted(p for p in out.iterdir() if p.is_dir()):
        files = sorted(folder.iterdir(), key=lambda p: not p.name.startswith("IMG_"))
        kinds = ["original" if p.name.startswith("IMG_") else p.name.split("-")[0] for p in files]
        groups.append([Member(p, k) for p, k in zip(files, kinds, strict=True)])
    return groups


Tally = dict[str, list[int]]  # rule -> right per half


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--groups", type=int, default=325)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", type=Path, default=Path("/tmp/iw-library"))
    parser.add_argument("--reuse", action="store_true", help="the library --out holds already")
    args = parser.parse_args(argv)
    if args.reuse:
        library = built(args.out)
    else:
        shutil.rmtree(args.out, ignore_errors=True)
        library = build(args.out, args.groups, args.seed)
    right: Tally = {"keep policy": [0, 0], "former rule": [0, 0]}
    wrong_kind: dict[str, Counter[str]] = {name: Counter() for name in right}
    misses = []
    for members in library:
        kinds = {str(m.path): m.kind for m in members}
        copies = [copy_of(m.path) for m in members]
        ranked = rank(copies)
        for name, keeper in (("keep policy", ranked[0].copy), ("former rule", former_rule(copies))):
            kind = kinds[keeper.path]
            if kind in ("original", "copy"):
                right[name][half(members)] += 1
            else:
                wrong_kind[name][kind] += 1
                if name == "keep policy":
                    misses.append((keeper.path, kind, half(members), ranked[1].reason))
    _report(library, right, wrong_kind, args.seed)
    print("\nMisses of the keep policy (the keeper, its kind, its half, why it beat the next):\n")
    for path, kind, part, reason in misses:
        print(f"- `{Path(path).relative_to(args.out)}` ({kind}, half {part}): {reason}")
    return 0


def _report(
    library: list[list[Member]], right: Tally, wrong_kind: dict[str, Counter[str]], seed: int
) -> None:
    total = len(library)
    halves = [sum(half(m) == h for m in library) for h in (0, 1)]
    print(f"# Keep policy on {total} groups ({sum(map(len, library))} files), seed {seed}\n")
    print("| rule | original kept: tuning half | held-out half | all | kept instead |")
    print("|---|---|---|---|---|")
    for name, count in right.items():
        instead = ", ".join(f"{k} {v}" for k, v in wrong_kind[name].most_common()) or "-"
        cells = [
            f"{c}/{n} ({100 * c / max(n, 1):.1f}%)" for c, n in zip(count, halves, strict=True)
        ]
        both = sum(count)
        print(f"| {name} | {cells[0]} | {cells[1]} | {both}/{total} ({100 * both / total:.1f}%) "
              f"| {instead} |")  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
