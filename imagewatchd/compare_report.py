"""How ``compare``'s explanation (imagewatchd/explain.py) reads: lines for a moderator, JSON.

The JSON keeps the keys ``compare --json`` has always had (the whole pictures' distances in
their closest orientation, ``list_entry``, ``library_duplicate``…), now decided by the whole
rule, and adds each role's decision (``as_list_entry``, ``as_library_photo``), every reading
compared (``readings``), PDQ and the second stage.
"""

from __future__ import annotations

from imagewatchd import blockgrid, colours, verify
from imagewatchd.explain import (
    WHOLE,
    Boxes,
    Colours,
    Decision,
    Explanation,
    Grid,
    Pdq,
    Reading,
    explain,
)  # fmt: skip
from imagewatchd.models import SAME, Fingerprint, Thresholds
from imagewatchd.regions import CROPS
from imagewatchd.report import thresholds_json

ENTRY = "as a list entry made from the first (orientations on, the default for lists)"
BY = {
    "sha256": "match by identical bytes (sha256)",
    "hashes": "match by dHash and pHash",
    "crop": "match by dHash and pHash of one of the first's centre crops",
    "pdq": "match by PDQ",
    "grid": "match by the second stage (watermarks): beyond the thresholds, confirmed by the "
    "block grid",
}
SHARES = dict(CROPS)


def compare_result(
    a: Fingerprint, b: Fingerprint, t: Thresholds, where: Boxes | None = None
) -> dict[str, object]:
    """``compare --json`` for two fingerprints (``where``: the second's region boxes)."""
    return compare_json(explain(a, b, t, where), t)


# -- JSON -------------------------------------------------------------------------------------


def compare_json(e: Explanation, t: Thresholds) -> dict[str, object]:
    views = [_view(e, pdq) for pdq in e.pdq]  # the whole pictures, orientation by orientation
    best = min(views, key=lambda v: (not (v["match"] or v["pdq_match"]), v["margin"]))
    entry, photo, turned = e.as_entry, e.as_photo, e.as_photo_turned
    return {
        "identical": e.identical,
        "region": WHOLE,  # of the distances just below: the whole pictures
        **{k: best[k] for k in ("orientation", "dhash_distance", "phash_distance")},
        "pdq_distance": best["pdq_distance"],
        "pdq_quality": list(e.qualities),
        "thresholds": thresholds_json(t),
        "match": e.identical or bool(best["match"]),
        "pdq_match": e.identical or bool(best["pdq_match"]),
        "flat": any(e.flat),
        "list_entry": entry.outcome == "match",
        "entry_region": entry.evidence.part if entry.by == "crop" and entry.evidence else None,
        "library_duplicate": photo.outcome == "duplicate",
        "library_duplicate_turned": turned.outcome == "duplicate",
        "orientations": [{k: v[k] for k in _VIEW_KEYS} for v in views],
        "flat_pictures": {"first": e.flat[0], "second": e.flat[1]},
        "turned_thresholds": {"dhash": t.turned().dhash, "phash": t.turned().phash},
        "as_list_entry": {
            **_decision_json(entry), "pdq": _pdq_json(_shown_pdq(e), e, t),
            "second_stage": _grid_json(e.grid, _second_stage(e)),
            "recoloured": _colours_json(e.colours, e.as_entry),
        },
        "as_library_photo": {
            **_decision_json(photo), "orientations_all": _decision_json(turned),
            "similar_band": _band_json(e, t),
        },
        "readings": [_reading_json(r) for r in e.readings],
    }  # fmt: skip


_VIEW_KEYS = ("orientation", "dhash_distance", "phash_distance", "pdq_distance")


def _view(e: Explanation, pdq: Pdq) -> dict[str, object]:
    whole = next(r for r in e.readings if r.orientation == pdq.orientation and r.part == WHOLE)
    return {
        "orientation": pdq.orientation, "dhash_distance": whole.dhash_distance,
        "phash_distance": whole.phash_distance, "pdq_distance": pdq.distance,
        "match": not any(e.flat) and whole.matched, "pdq_match": pdq.matched,
        "margin": whole.excess[0],
    }  # fmt: skip


def _colours_json(c: Colours, entry: Decision) -> dict[str, object] | None:
    """For a list that ignores recoloured copies: whether the match stands (None: no match)."""
    if entry.outcome != "match":
        return None
    return {
        "chroma": [round(x, 1) for x in c.chroma], "moved": round(c.moved, 3),
        "turned": round(c.turned, 3), "near": colours.NEAR, "far": colours.FAR,
        "agree": c.agrees, "ignore_list_matches": c.agrees or entry.by == "sha256",
    }  # fmt: skip


def _decision_json(d: Decision) -> dict[str, object]:
    return {
        "outcome": d.outcome, "by": d.by, "orientation": d.orientation,
        "evidence": _reading_json(d.evidence) if d.evidence else None,
        "closest": _reading_json(d.closest) if d.closest else None,
    }  # fmt: skip


def _reading_json(r: Reading) -> dict[str, object]:
    cut = r.cut
    return {
        "orientation": r.orientation, "region": r.region, "part": r.part,
        "dhash_distance": r.dhash_distance, "phash_distance": r.phash_distance,
        "dhash_threshold": r.dhash_threshold, "phash_threshold": r.phash_threshold,
        "turned_thresholds": r.turned, "match": r.matched,
        "cut": None if cut is None else
        {"top": cut.top, "bottom": cut.bottom, "left": cut.left, "right": cut.right},
    }  # fmt: skip


def _pdq_json(pdq: Pdq | None, e: Explanation, t: Thresholds) -> dict[str, object] | None:
    if pdq is None:
        return None
    return {
        "orientation": pdq.orientation, "distance": pdq.distance, "threshold": t.pdq,
        "qualities": [e.qualities[0], pdq.quality], "floor": t.pdq_quality,
        "query_floor": t.pdq_query_quality, "gate": pdq.gate,
        "match": pdq.matched, "region": pdq.part,
    }  # fmt: skip


def _grid_json(grid: Grid | None, applies: bool) -> dict[str, object] | None:
    if grid is None:
        return None
    return {
        "applies": applies, "dhash_distance": grid.dhash_distance,
        "phash_distance": grid.phash_distance, "wider_dhash": verify.WIDER_DHASH,
        "wider_phash": verify.WIDER_PHASH, "candidate": grid.candidate,
        "structure": round(grid.structure, 3), "structure_floor": blockgrid.STRUCTURE,
        "levels": round(grid.levels, 4), "levels_floor": blockgrid.LEVELS,
        "edges": round(grid.edges, 4), "edges_floor": blockgrid.EDGES,
        "agrees": grid.agrees,
    }  # fmt: skip


def _band_json(e: Explanation, t: Thresholds) -> dict[str, object]:
    whole = e.readings[0]  # the second as it is, whole
    return {
        "searched": _band_on(t) and not any(e.flat), "dhash_distance": whole.dhash_distance,
        "phash_distance": whole.phash_distance, "similar_dhash": t.similar_dhash,
        "similar_phash": t.similar_phash, "within": e.as_photo.outcome == "similar",
    }  # fmt: skip


def _band_on(t: Thresholds) -> bool:
    return t.similar_dhash > t.dhash or t.similar_phash > t.phash


def _shown_pdq(e: Explanation) -> Pdq | None:
    """The orientation that decided, else the closest by PDQ."""
    decided = [p for p in e.pdq if p.orientation == e.as_entry.orientation]
    if decided and e.as_entry.by != "sha256":
        return decided[0]
    known = [p for p in e.pdq if p.distance is not None]
    return min(known, key=lambda p: p.distance or 0, default=None)


def _second_stage(e: Explanation) -> bool:
    """Whether the second stage ran: nothing else matched, and neither picture is flat."""
    return e.as_entry.by in (None, "grid") and not any(e.flat)


# -- lines for people -------------------------------------------------------------------------


def compare_text(e: Explanation, t: Thresholds) -> list[str]:
    """The lines of ``compare`` after each picture's hashes: identical bytes and flatness,
    then each role's outcome and the evidence behind it, each distance against its
    threshold (turned thresholds named as such), PDQ, the second stage and the similar
    band."""
    lines = [f"identical bytes: {'yes' if e.identical else 'no'}"]
    lines += [
        f"the {which} is flat (no structure to hash): only identical bytes match it"
        for which, flat in zip(("first", "second"), e.flat, strict=True) if flat
    ]  # fmt: skip
    lines += [f"{ENTRY}: {BY.get(e.as_entry.by or '', 'no match')}"]
    lines += [f"  {line}" for line in _entry_lines(e, t)]
    lines += [f"as a library photo: {_photo_outcome(e)}"]
    lines += [f"  {line}" for line in _photo_lines(e, t)]
    return lines


def _entry_lines(e: Explanation, t: Thresholds) -> list[str]:
    d = e.as_entry
    if d.by == "sha256" or any(e.flat):
        return []
    lines = [f"evidence: {reading_text(d.evidence)}"] if d.evidence else []
    closest = d.closest or _closest_whole(e, d)
    lines += [f"closest by dHash and pHash: {reading_text(closest)}"] if closest else []
    pdq = _shown_pdq(e)
    lines += [_pdq_text(pdq, e, t)] if pdq else ["PDQ: not computed for both pictures"]
    if _second_stage(e):
        lines += (
            _grid_lines(e.grid)
            if t.watermarks
            else ["second stage (watermarks): off (matching.watermarks: false)"]
        )
    return lines + _colours_lines(e)


def _colours_lines(e: Explanation) -> list[str]:
    """For a match: what a list that ignores recoloured copies would say (colours.py)."""
    c = e.colours
    if e.as_entry.outcome != "match":
        return []
    if min(c.chroma) < colours.GREY:
        return [f"colours: mean chroma {c.chroma[0]:.1f} and {c.chroma[1]:.1f}: one is grey "
                "(no hues to compare): a list with --recoloured ignore matches it too"]  # fmt: skip
    verdict = (
        "the colours agree: a list with --recoloured ignore matches it too" if c.agrees
        else "a recoloured copy: a list with --recoloured ignore does not match it"
    )  # fmt: skip
    return [
        f"colours: hue distance {c.moved:.3f} (agree within {colours.NEAR}, disagree beyond "
        f"{colours.FAR}), {c.turned:.3f} with the hues turned: {verdict}"
    ]


def _closest_whole(e: Explanation, d: Decision) -> Reading | None:
    """For a match by PDQ or by the second stage: the closest of dHash and pHash too."""
    if d.by not in ("pdq", "grid"):
        return None
    return min(e.readings, key=lambda r: r.excess, default=None)


def _pdq_text(pdq: Pdq, e: Explanation, t: Thresholds) -> str:
    if pdq.distance is None:
        return "PDQ: not computed for both pictures"
    qa, qb = e.qualities[0], pdq.quality  # the second's there: the whole's or a region's
    where = "as it is" if pdq.orientation == SAME else f"as the first {pdq.orientation}"
    where += f", {pdq.part}" if pdq.part != WHOLE else ""
    if pdq.gate:
        verdict = "within" if pdq.matched else "beyond"
    else:
        low = qa < t.pdq_quality or qb < t.pdq_query_quality
        verdict = "a quality below its floor: not used" if low else "not used"
    return (
        f"PDQ, the second {where}: distance {pdq.distance} (threshold {t.pdq}"
        f"{_excess(pdq.distance, t.pdq)}), quality {qa} and {qb} (floors {t.pdq_quality} for "
        f"an entry, {t.pdq_query_quality} for a picture): {verdict}"
    )


def _grid_lines(grid: Grid | None) -> list[str]:
    if grid is None:
        return ["second stage (watermarks): not run (no block grid)"]
    radius = f"wider radius (dHash {verify.WIDER_DHASH}, pHash {verify.WIDER_PHASH})"
    distances = f"dHash {grid.dhash_distance}, pHash {grid.phash_distance}"
    if not grid.candidate:
        return [f"second stage (watermarks): {distances}, beyond the {radius}: not a candidate"]
    if grid.structure < blockgrid.STRUCTURE:
        return [
            f"second stage (watermarks): {distances}, within the {radius}; the first's block "
            f"grid has too little structure ({grid.structure:.2f}, floor "
            f"{blockgrid.STRUCTURE}) to confirm anything: no match"
        ]
    return [
        f"second stage (watermarks): {distances}, within the {radius}: a candidate",
        f"block grid: levels {grid.levels:.4f} (floor {blockgrid.LEVELS}), edges "
        f"{grid.edges:.4f} (floor {blockgrid.EDGES}): "
        + ("they agree: a match" if grid.agrees else "they disagree: no match"),
    ]


def _photo_outcome(e: Explanation) -> str:
    d, turned = e.as_photo, e.as_photo_turned
    if d.outcome == "duplicate":
        return "duplicate" + (" (identical bytes)" if d.by == "sha256" else "")
    alone = "similar (within the similar band: reported, never a duplicate)"
    alone = alone if d.outcome == "similar" else "not a duplicate, not similar"
    if turned.outcome == "duplicate":
        return f"duplicate only where the watch has 'orientations: all'; elsewhere {alone}"
    return alone


def _photo_lines(e: Explanation, t: Thresholds) -> list[str]:
    if e.as_photo.by == "sha256" or any(e.flat):
        return []
    d = e.as_photo_turned if e.as_photo_turned.outcome == "duplicate" else e.as_photo
    if d.evidence and d.by == "hashes":
        return [f"evidence: {reading_text(d.evidence)}"]
    lines = [f"closest: {reading_text(d.closest)}"] if d.closest else []
    whole = e.readings[0]
    if not _band_on(t):
        return [*lines, "the similar band is off (matching.similar_dhash/similar_phash)"]
    band = f"similar band dHash {t.similar_dhash}, pHash {t.similar_phash}"
    inside = "within" if e.as_photo.outcome == "similar" else "outside"
    return [
        *lines,
        f"the second as it is, whole: dHash {whole.dhash_distance}, pHash "
        f"{whole.phash_distance}: {inside} the {band}",
    ]


def reading_text(r: Reading) -> str:
    """One reading for people: which form of the second, against which part of the first,
    each distance against its threshold (a turned one named so), by how much beyond."""
    who = (
        "the second as it is"
        if r.orientation == SAME
        else f"the second as the first {r.orientation}"
    )
    region = "whole" if r.region == WHOLE else _region_text(r)
    part = (
        ""
        if r.part == WHOLE
        else f", against the first's centre crop {r.part} "
        + (f"({SHARES[r.part]:.0%} cut from each side)" if r.part in SHARES else "")
    )
    limit = "turned threshold" if r.turned else "threshold"
    return (
        f"{who}, {region}{part}: dHash {r.dhash_distance} ({limit} {r.dhash_threshold}"
        f"{_excess(r.dhash_distance, r.dhash_threshold)}), pHash {r.phash_distance} ({limit} "
        f"{r.phash_threshold}{_excess(r.phash_distance, r.phash_threshold)})"
    )


def _excess(distance: int, threshold: int) -> str:
    return f": {distance - threshold} over" if distance > threshold else ""


def _region_text(r: Reading) -> str:
    """Which region: its name, or what it leaves out ("32 px cut top/bottom")."""
    what = "without its borders or caption bar" if r.region.startswith("trimmed") else (
        "with its borders read another way"
    )  # fmt: skip
    if r.cut is None:
        return f"{what} ({r.region})"
    cut = r.cut
    sides: dict[int, list[str]] = {}
    for px, side in ((cut.top, "top"), (cut.bottom, "bottom"), (cut.left, "left"),
                     (cut.right, "right")):  # fmt: skip
        if px:
            sides.setdefault(px, []).append(side)
    parts = [f"{px} px cut {'/'.join(names)}" for px, names in sides.items()]
    return f"{what} ({', '.join(parts)})"
