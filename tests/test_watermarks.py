"""Watermarks: a listed picture stamped with a word across its diagonal is still known (found at
a wider radius, confirmed by the block grids), while a shifted view of it, a look-alike, is not."""

from __future__ import annotations

import io
import math
from collections.abc import Callable
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from imagewatchd import blockgrid
from imagewatchd.decoding import Settings, fingerprint_path
from imagewatchd.decoding.pool import WorkerPool
from imagewatchd.fingerprint import fingerprint_bytes
from imagewatchd.hashindex import hamming
from imagewatchd.match import Matcher
from imagewatchd.models import ListKind, Thresholds, VerdictKind
from imagewatchd.rows import NewEntry
from imagewatchd.store import Store
from tests.conftest import Run, photo

THRESHOLDS = Thresholds(dhash=6, phash=4)
SIZE = (800, 600)
SEED = 48  # stamped, its pHash moves 6 bits and its PDQ 32: beyond both thresholds


def _stamped(img: Image.Image) -> Image.Image:
    """A large semi-transparent word across the diagonal, as stock-photo sites stamp."""
    w, h = img.size
    diag = math.hypot(w, h)
    layer = Image.new("RGBA", (round(diag), round(diag)), (0, 0, 0, 0))
    ImageDraw.Draw(layer).text(
        (layer.width // 2, layer.height // 2), "PREVIEW", fill=(255, 255, 255, 110),
        font=ImageFont.load_default(size=round(diag / 6)), anchor="mm", stroke_width=2,
        stroke_fill=(0, 0, 0, 60),
    )  # fmt: skip
    turned = layer.rotate(math.degrees(math.atan2(h, w)), Image.Resampling.BICUBIC)
    left, top = (turned.width - w) // 2, (turned.height - h) // 2
    stamp = turned.crop((left, top, left + w, top + h))
    return Image.alpha_composite(img.convert("RGBA"), stamp).convert("RGB")


def _shifted(img: Image.Image, share: float) -> Image.Image:
    """The same scene with the camera moved sideways: the next shot of a burst."""
    cut = round(img.width * share)
    return img.crop((cut, 0, img.width, img.height)).resize(img.size)


def _png(img: Image.Image) -> bytes:
    out = io.BytesIO()
    img.save(out, "PNG")
    return out.getvalue()


def test_a_watermarked_copy_of_a_listed_picture_is_known_by_its_grid(
    cli: Callable[..., Run], tmp_path: Path
) -> None:
    picture = photo(SEED, SIZE)
    picture.save(tmp_path / "banned.png")
    cli("known", "add", "--create", "--list", "banned", str(tmp_path / "banned.png"), check=0)
    copy = tmp_path / "stamped.jpg"
    _stamped(picture).save(copy, quality=90)
    lines = cli("check", str(copy), check=1).out.splitlines()
    assert lines[0] == f"{copy}: known", lines
    assert "beyond the thresholds but confirmed by the block grid" in lines[1], lines
    (found,) = cli("check", "--json", str(copy), check=1).json_lines()
    assert found["matches"][0]["grid"] >= blockgrid.LEVELS
    burst = tmp_path / "next-shot.jpg"
    _shifted(picture, 0.06).save(burst, quality=90)
    assert cli("check", str(burst), check=0).out.strip() == f"{burst}: clean"


def test_the_look_alike_is_within_the_wider_radius_and_refused_by_the_grid() -> None:
    original = fingerprint_bytes(_png(photo(SEED, SIZE)))
    stamped = fingerprint_bytes(_png(_stamped(photo(SEED, SIZE))))
    burst = fingerprint_bytes(_png(_shifted(photo(SEED, SIZE), 0.06)))
    assert hamming(original.phash, stamped.phash) > THRESHOLDS.phash  # a miss without the grid
    assert hamming(original.dhash, burst.dhash) <= 20 and hamming(original.phash, burst.phash) <= 22
    assert blockgrid.agrees(original.grid, stamped.grid)
    assert not blockgrid.agrees(original.grid, burst.grid)


def test_an_entry_without_a_grid_is_not_matched_beyond_the_thresholds(tmp_path: Path) -> None:
    """Imported hashes have no pixels, hence no grid: only the thresholds count for them."""
    original = fingerprint_bytes(_png(photo(SEED, SIZE)))
    stamped = fingerprint_bytes(_png(_stamped(photo(SEED, SIZE))))
    with Store(tmp_path / "t.db") as store:
        list_id = store.create_list("banned", ListKind.BLOCK, "", 1.0)
        store.add_entries(list_id, [NewEntry(None, original.dhash, original.phash)], 1.0)
        matcher = Matcher.load(store, THRESHOLDS)
        assert matcher.match(stamped).kind is VerdictKind.CLEAN


def test_inverted_or_featureless_grids_never_agree() -> None:
    picture = photo(SEED, SIZE).convert("L")
    grid = blockgrid.grid_of(picture)
    inverted = blockgrid.grid_of(Image.eval(picture, lambda v: 255 - v))
    assert blockgrid.agreement(grid, inverted) == (0.0, 0.0)
    faint = bytes(128 + (i % 2) for i in range(blockgrid.SIZE))  # a blank sheet's grain
    assert blockgrid.structure(faint) < blockgrid.STRUCTURE
    assert blockgrid.agreement(faint, faint) == (0.0, 0.0)
    assert blockgrid.agreement(grid, grid) == (1.0, 1.0)


def test_the_decoding_worker_sends_the_grid(tmp_path: Path) -> None:
    path = tmp_path / "banned.png"
    photo(SEED, SIZE).save(path)
    decoder = WorkerPool(Settings(timeout=30.0, workers=1))
    try:
        fp = fingerprint_path(decoder, path)[1]
    finally:
        decoder.close()
    assert fp.grid == fingerprint_bytes(path.read_bytes()).grid
    assert len(fp.grid) == blockgrid.SIZE


def test_grids_compared_in_one_pass_agree_with_one_at_a_time() -> None:
    picture = photo(SEED, SIZE)
    query = blockgrid.grid_of(_stamped(picture).convert("L"))
    looks = (picture, _shifted(picture, 0.06), photo(SEED + 1, SIZE), picture.rotate(180))
    stored = [blockgrid.grid_of(img.convert("L")) for img in looks]
    stored += [bytes(blockgrid.SIZE), b"short"]  # featureless, malformed
    many = blockgrid.agreement_many(stored, query)
    for grid, (levels, edges) in zip(stored, many, strict=True):
        one = blockgrid.agreement(grid, query, early=True)
        assert abs(one[0] - levels) < 1e-9 and abs(one[1] - edges) < 1e-9
    agreed = [levels >= blockgrid.LEVELS and edges >= blockgrid.EDGES for levels, edges in many]
    assert agreed == [True, False, False, False, False, False]


def test_matching_watermarks_false_turns_the_second_stage_off(
    cli: Callable[..., Run], tmp_path: Path
) -> None:
    """An operator who needs the lookup's time more than watermarked copies turns the stage
    off: the copy is then clean, and compare says the stage is off; true is the default."""
    picture = photo(SEED, SIZE)
    picture.save(tmp_path / "banned.png")
    cli("known", "add", "--create", "--list", "banned", str(tmp_path / "banned.png"), check=0)
    copy = tmp_path / "stamped.jpg"
    _stamped(picture).save(copy, quality=90)
    for value, verdict in (("true", "known"), ("false", "clean")):
        conf = tmp_path / f"watermarks-{value}.yaml"
        conf.write_text(f"matching:\n  watermarks: {value}\n")
        found = cli("--config", str(conf), "check", str(copy)).out.splitlines()
        assert found[0] == f"{copy}: {verdict}", found
        said = cli("--config", str(conf), "compare", str(tmp_path / "banned.png"), str(copy)).out
        assert ("second stage (watermarks): off (matching.watermarks: false)" in said) is (
            value == "false"
        ), said
    assert cli("check", str(copy), check=1).out.startswith(f"{copy}: known")
