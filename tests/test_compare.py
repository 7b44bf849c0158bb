"""``compare A B`` decides as the Matcher does, and says why.

Real pictures made with Pillow (a copy, mirrored, rotated, bordered, captioned, cropped 5% and
10%, a corner watermark, a look-alike, another photo): A is added to a real store with
``known add`` and B checked with ``check``; A is scanned into a real library and B checked
against it. ``compare``'s outcome for each role must be what ``check`` says. Then hand-made
fingerprints around every threshold (regions, border readings, orientations, centre crops,
PDQ and its quality floor, the second stage, flat pictures) against the Matcher itself.
"""

from __future__ import annotations

import io
import json
import random
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from PIL import Image, ImageDraw, ImageOps

from imagewatchd import cli as cli_module
from imagewatchd.compare_report import compare_result
from imagewatchd.config import default_config
from imagewatchd.dihedral import NAMES
from imagewatchd.explain import explain
from imagewatchd.fingerprint import fingerprint_bytes
from imagewatchd.match import Matcher
from imagewatchd.models import (
    FileStat,
    Fingerprint,
    ListKind,
    Orientations,
    Role,
    Turned,
    VerdictKind,
)  # fmt: skip
from imagewatchd.rows import NewEntry
from imagewatchd.store import Store
from tests.conftest import Run, photo

THRESHOLDS = default_config().matching.thresholds
Cli = Callable[..., Run]


def variants(a: Image.Image, other: int) -> dict[str, Image.Image]:
    """What phones and evaders do to a picture, and two pictures that are not it."""
    w, h = a.size
    captioned = Image.new("RGB", (w, h + h // 6), "white")
    captioned.paste(a, (0, 0))
    ImageDraw.Draw(captioned).text((20, h + h // 20), "when you see it", fill="black")
    marked = a.copy()
    draw = ImageDraw.Draw(marked)
    draw.rectangle((w - 230, h - 70, w - 10, h - 10), fill="white")
    draw.text((w - 220, h - 50), "@somebody", fill="black")
    return {
        "copy": a,
        "mirrored": ImageOps.mirror(a),
        "rot90": a.transpose(Image.Transpose.ROTATE_90),
        "bordered": ImageOps.expand(a, border=round(0.04 * w), fill="white"),
        "captioned": captioned,
        "crop5": _cropped(a, 0.05),
        "crop10": _cropped(a, 0.10),
        "watermarked": marked,
        "lookalike": a.crop((round(w * 0.03), 0, w, h)).resize((w, h)),  # the next frame
        "other": photo(other, (w, h)),
    }


def _cropped(img: Image.Image, share: float) -> Image.Image:
    w, h = img.size
    dx, dy = round(w * share), round(h * share)
    return img.crop((dx, dy, w - dx, h - dy))


@pytest.fixture
def compared(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
             ) -> Callable[[Path, Path], dict[str, Any]]:  # fmt: skip
    """``imagewatchd compare --json A B``, run in this process (the CLI's own main)."""
    monkeypatch.setenv("IMAGEWATCHD_CONFIG", "")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg-config"))

    def run(a: Path, b: Path) -> dict[str, Any]:
        capsys.readouterr()
        assert cli_module.main(["compare", "--json", str(a), str(b)]) == 0
        result: dict[str, Any] = json.loads(capsys.readouterr().out)
        return result

    return run


@pytest.mark.parametrize("seed", [11, 12])
def test_compare_says_what_check_says_for_a_list_entry_and_a_library_photo(
    cli: Cli, tmp_path: Path, compared: Callable[[Path, Path], dict[str, Any]], seed: int
) -> None:
    listed = tmp_path / "lib" / "listed.png"
    listed.parent.mkdir()
    photo(seed, (800, 600)).save(listed)
    (tmp_path / "all").mkdir()
    copies = []
    for name, img in variants(photo(seed, (800, 600)), seed + 100).items():
        img.save(tmp_path / f"{name}.jpg", quality=88)
        img.save(tmp_path / "all" / f"{name}.jpg", quality=88)
        copies.append(tmp_path / f"{name}.jpg")
    lists_db = str(tmp_path / "lists.db")
    cli("--db", lists_db, "known", "add", "--create", "--list", "banned", str(listed), check=0)
    checked = cli("--db", lists_db, "check", "--json", *map(str, copies)).json_lines()
    library = _library(cli, tmp_path)
    turned = library("check", "--json", *(str(tmp_path / "all" / c.name) for c in copies))
    plain = library("check", "--json", *map(str, copies))
    ways: set[str | None] = set()
    for copy, as_entry, as_photo, as_all in zip(copies, checked, plain, turned, strict=True):
        result = compared(listed, copy)
        entry = result["as_list_entry"]
        assert entry["outcome"] == ("match" if as_entry["verdict"] == "known" else "no match")
        assert result["list_entry"] is (as_entry["verdict"] == "known"), copy.name
        if as_entry["matches"]:
            _same_evidence(as_entry["matches"][0], entry, copy.name)
        photo_outcome = {"duplicate": "duplicate", "similar": "similar", "clean": "not"}
        assert result["as_library_photo"]["outcome"] == photo_outcome[as_photo["verdict"]]
        assert result["library_duplicate"] is (as_photo["verdict"] == "duplicate")
        assert result["library_duplicate_turned"] is (as_all["verdict"] == "duplicate"), copy
        ways.add(entry["by"])
    assert {"hashes", "crop", "grid", None} <= ways  # every stage met, and a miss


def _same_evidence(match: dict[str, Any], entry: dict[str, Any], name: str) -> None:
    """The Matcher's evidence for its match is the one compare names."""
    by = "sha256" if match["exact"] else "grid" if match["grid"] is not None else (
        "pdq" if match["by_pdq"] else "crop" if match["region"] else "hashes"
    )  # fmt: skip
    assert entry["by"] == by, name
    assert entry["orientation"] == match["orientation"], name
    if by == "crop":
        assert entry["evidence"]["part"] == match["region"], name


def _library(cli: Cli, tmp: Path) -> Callable[..., list[dict[str, Any]]]:
    """A library holding the listed picture, scanned; and B checked against it from outside
    every watch (orientations: lists, the default) and from a watch with orientations: all."""
    config = tmp / "library.yaml"
    watches = [
        {"path": str(tmp / "lib"), "role": "library"},
        {"path": str(tmp / "all"), "role": "incoming", "orientations": "all"},
    ]
    config.write_text(yaml.safe_dump({"quarantine_dir": str(tmp / "q"), "watches": watches}))
    args = ("--config", str(config), "--db", str(tmp / "library.db"))
    cli(*args, "scan", str(tmp / "lib"), check=0)
    return lambda *more: cli(*args, *more).json_lines()


def test_compare_explains_each_stage_in_plain_lines(cli: Cli, tmp_path: Path) -> None:
    a = photo(13, (800, 600))
    a.save(tmp_path / "a.png")
    for name, img in variants(a, 113).items():
        img.save(tmp_path / f"{name}.jpg", quality=88)

    def lines(name: str) -> list[str]:
        return cli(
            "compare", str(tmp_path / "a.png"), str(tmp_path / name), check=0
        ).out.splitlines()[2:]

    bordered = lines("bordered.jpg")
    assert bordered[1] == f"{ENTRY}: match by dHash and pHash"
    assert bordered[2].startswith(
        "  evidence: the second as it is, without its borders or caption bar (32 px cut "
        "top/bottom/left/right): dHash "
    ), bordered
    assert bordered[-2] == "as a library photo: duplicate"
    mirrored = lines("mirrored.jpg")
    assert mirrored[2].startswith("  evidence: the second as the first mirrored, whole: dHash ")
    assert "(turned threshold 5)" in mirrored[2] and "(turned threshold 2)" in mirrored[2]
    assert mirrored[-2].startswith(
        "as a library photo: duplicate only where the watch has 'orientations: all'; elsewhere"
    )
    cropped = lines("crop5.jpg")
    assert cropped[1] == f"{ENTRY}: match by dHash and pHash of one of the first's centre crops"
    assert "against the first's centre crop crop5 (5% cut from each side)" in cropped[2]
    marked = lines("watermarked.jpg")
    assert marked[1].startswith(f"{ENTRY}: match by the second stage (watermarks)")
    assert any(line.startswith("  block grid: levels ") and line.endswith("they agree: a match")
               for line in marked), marked  # fmt: skip
    other = lines("other.jpg")
    assert other[1] == f"{ENTRY}: no match"
    assert other[2].startswith("  closest by dHash and pHash: the second ")
    assert " over)" in other[2]
    floors = "(floors 40 for an entry, 20 for a picture)"
    assert any(line.startswith("  PDQ, the second ") and floors in line for line in other)
    assert any("second stage (watermarks)" in line for line in other)
    assert other[-3] == "as a library photo: not a duplicate, not similar"
    assert other[-1].endswith("outside the similar band dHash 14, pHash 12")


ENTRY = "as a list entry made from the first (orientations on, the default for lists)"


def test_compare_json_keeps_its_keys_and_adds_each_roles_decision(cli: Cli, tmp_path: Path) -> None:
    a = photo(14, (800, 600))
    a.save(tmp_path / "a.png")
    ImageOps.expand(a, border=30, fill="black").save(tmp_path / "b.jpg", quality=90)
    result = json.loads(cli("compare", "--json", str(tmp_path / "a.png"), str(tmp_path / "b.jpg"),
                            check=0).out)  # fmt: skip
    old = {
        "identical", "region", "orientation", "dhash_distance", "phash_distance", "pdq_distance",
        "pdq_quality", "thresholds", "match", "pdq_match", "flat", "list_entry", "entry_region",
        "library_duplicate", "library_duplicate_turned", "orientations", "a", "b",
    }  # fmt: skip
    assert old <= result.keys()
    entry = result["as_list_entry"]
    assert (entry["outcome"], entry["by"], entry["orientation"]) == ("match", "hashes", "same")
    assert entry["evidence"]["region"] == "trimmed"
    assert entry["evidence"]["cut"] == {"top": 30, "bottom": 30, "left": 30, "right": 30}
    assert entry["pdq"]["floor"] == THRESHOLDS.pdq_quality
    assert entry["second_stage"]["applies"] is False
    assert result["as_library_photo"]["outcome"] == "duplicate"
    assert result["turned_thresholds"] == {"dhash": 5, "phash": 2}
    kinds = {(r["orientation"], r["region"], r["part"]) for r in result["readings"]}
    assert {
        ("same", "whole", "whole"),
        ("rot90", "whole", "whole"),
        ("same", "whole", "crop5"),
    } <= kinds


# -- hand-made fingerprints around every threshold, against the Matcher itself ----------------


def _fp(img: Image.Image, crops: bool = False) -> Fingerprint:
    out = io.BytesIO()
    img.save(out, "PNG")
    return fingerprint_bytes(out.getvalue(), crops=crops)


def _flip(value: int, bits: int, rng: random.Random, width: int = 64) -> int:
    for bit in rng.sample(range(width), bits):
        value ^= 1 << bit
    return value


def _near(rng: random.Random, dhash: int, phash: int, reach: int = 10) -> tuple[int, int]:
    return _flip(dhash, rng.randint(0, reach), rng), _flip(
        phash, 2 * rng.randint(0, reach // 2), rng
    )


def _query(a: Fingerprint, grids: list[bytes], rng: random.Random) -> Fingerprint:
    """A query near ``a`` in some of its readings: whole, regions, border readings, other
    orientations, PDQ (quality around the floor), block grid, flat or identical now and then."""
    reach = rng.choice((4, 8, 14, 22))
    dhash, phash = _near(rng, a.dhash, a.phash, reach)
    regions = tuple(_near(rng, a.dhash, a.phash) for _ in range(rng.randint(0, 2)))
    more = tuple(_near(rng, a.dhash, a.phash) for _ in range(rng.randint(0, 3)))
    names = rng.sample(NAMES[1:], rng.randint(0, 7))
    pdq = None if a.pdq is None else _flip(a.pdq, rng.randint(0, 60), rng, 256)
    turned = tuple(Turned(n, *_near(rng, a.dhash, a.phash), pdq if rng.random() < 0.2 else None)
                   for n in names)  # fmt: skip
    region_pdqs = (
        ()
        if a.pdq is None
        else tuple(
            (_flip(a.pdq, rng.randint(0, 60), rng, 256), rng.choice((10, 20, 60)))
            for _ in range(rng.choice((0, 0, 1, 2)))
        )
    )
    crop = rng.choice(a.crops) if a.crops and rng.random() < 0.3 else None
    if crop:
        regions = (*regions, _near(rng, crop[1], crop[2], 6))
    return Fingerprint(
        a.sha256 if rng.random() < 0.05 else f"q{rng.random()}", dhash, phash, 800, 600, "JPEG",
        rng.random() < 0.05, pdq, rng.choice((20, 49, 50, 100)), regions=regions,
        turned=turned, grid=rng.choice(grids), more_regions=more, region_pdqs=region_pdqs,
    )  # fmt: skip


@pytest.fixture(params=[21, 22, "flat"])
def first(request: pytest.FixtureRequest) -> Fingerprint:
    if request.param == "flat":
        return _fp(Image.new("RGB", (800, 600), (90, 120, 200)), crops=True)
    return _fp(photo(request.param, (800, 600)), crops=True)


@pytest.fixture
def as_entry(first: Fingerprint, tmp_path: Path) -> Iterator[Matcher]:
    """A store with ``first`` as its only list entry, as ``known add`` makes it."""
    with Store(tmp_path / "lists.db") as store:
        list_id = store.create_list("banned", ListKind.BLOCK, "", 1.0)
        store.add_entries(list_id, [NewEntry(
            first.sha256, first.dhash, first.phash, flat=first.flat, pdq=first.pdq,
            pdq_quality=first.pdq_quality, regions=first.crops, grid=first.grid,
        )], 1.0)  # fmt: skip
        yield Matcher.load(store, THRESHOLDS)


@pytest.fixture
def as_photo(first: Fingerprint, tmp_path: Path) -> Iterator[Matcher]:
    """A store with ``first`` as its only library photo."""
    with Store(tmp_path / "library.db") as store:
        matcher = Matcher.load(store, THRESHOLDS)
        path = tmp_path / "lib" / "first.png"
        path.parent.mkdir()
        path.write_bytes(b"stands in for the picture")
        file_id = store.save_file(str(path), FileStat(1, 2, 3, 4), Role.LIBRARY, first, 1.0)
        matcher.add_library_file(file_id, first)
        yield matcher


def test_hand_made_queries_are_decided_as_the_matcher_decides(
    first: Fingerprint, as_entry: Matcher, as_photo: Matcher
) -> None:
    rng = random.Random(8)
    grids = [first.grid, b"", _fp(photo(99, (800, 600))).grid, _watermarked_grid()]
    ways: set[str | None] = set()
    for _ in range(400):
        query = _query(first, grids, rng)
        e = explain(first, query, THRESHOLDS, None)
        # a PDQ that matched was gated at its own quality (the whole's or its region's)
        assert all(p.quality >= THRESHOLDS.pdq_query_quality for p in e.pdq if p.matched)
        verdict = as_entry.match(query)
        assert (verdict.kind is VerdictKind.KNOWN) is (e.as_entry.outcome == "match"), query
        if verdict.matches:
            (m,) = verdict.matches
            by = "sha256" if m.exact else "grid" if m.grid is not None else (
                "pdq" if m.by_pdq else "crop" if m.region else "hashes"
            )  # fmt: skip
            assert (e.as_entry.by, e.as_entry.orientation) == (by, m.orientation), query
            assert m.region == (e.as_entry.evidence.part if by == "crop" and e.as_entry.evidence
                                else None)  # fmt: skip
        for setting, decision in ((Orientations.LISTS, e.as_photo),
                                  (Orientations.ALL, e.as_photo_turned)):  # fmt: skip
            kind = as_photo.match(query, orientations=setting).kind
            assert kind.value == {"not": "clean"}.get(decision.outcome, decision.outcome), query
        ways.add(e.as_entry.by)
    expected = {"sha256", None} if first.flat else {"sha256", "hashes", "crop", "pdq", "grid", None}
    assert ways == expected


def _watermarked_grid() -> bytes:
    marked = photo(21, (800, 600))
    ImageDraw.Draw(marked).rectangle((570, 530, 790, 590), fill="white")
    return _fp(marked).grid


def test_identical_bytes_decide_both_roles_flat_or_not(first: Fingerprint) -> None:
    """compare_result, the JSON without the pictures' own, for two fingerprints."""
    result = json.loads(json.dumps(compare_result(first, first, THRESHOLDS)))
    assert result["identical"] is True and result["list_entry"] is True
    assert result["as_list_entry"]["by"] == result["as_library_photo"]["by"] == "sha256"
    assert result["flat"] is first.flat
