"""How verdicts, matches and groups read: one line per file for people, JSON for machines.

Every line for people is escaped with ``names.shown`` (no name can break a line or reach the
terminal as a control sequence); JSON carries names exactly (see ``names``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from imagewatchd.dupes import DupeGroup
from imagewatchd.fingerprint import hex64
from imagewatchd.hashindex import hamming
from imagewatchd.models import (
    SAME,
    Fingerprint,
    Match,
    SetAside,
    Thresholds,
    Verdict,
    VerdictKind,
)
from imagewatchd.names import shown
from imagewatchd.rows import FileRow


@dataclass(frozen=True, slots=True)
class CheckResult:
    """One input of ``check``: its verdict, or the error that kept it from having one."""

    path: Path
    fingerprint: Fingerprint | None
    verdict: Verdict
    error: str | None = None


def describe_match(match: Match, thresholds: Thresholds) -> str:
    if match.source == "list":
        label = f" '{match.label}'" if match.label else ""
        kind = match.list_kind.value if match.list_kind else "?"
        what = f"list '{match.list_name}' ({kind}) entry {match.entry_id}{label}"
    else:
        what = f"{match.source} {match.path}"
    if match.exact:
        return f"{what}: identical sha256{_pdq_part(match, thresholds)}"
    turned = "" if match.orientation == SAME else f", orientation {match.orientation}"
    turned += f", by the entry's region {match.region}" if match.region else ""
    turned += _grid_part(match)
    if match.by_pdq:
        return f"{what}: PDQ distance {match.pdq_distance} (threshold {thresholds.pdq}){turned}"
    return (
        f"{what}: dHash distance {match.dhash_distance} (threshold {thresholds.dhash}), "
        f"pHash distance {match.phash_distance} (threshold {thresholds.phash})"
        f"{_pdq_part(match, thresholds)}{turned}"
    )


def _pdq_part(match: Match, thresholds: Thresholds) -> str:
    if match.pdq_distance is None:
        return ""
    return f", PDQ distance {match.pdq_distance} (threshold {thresholds.pdq})"


def check_text(result: CheckResult, thresholds: Thresholds) -> list[str]:
    return [shown(line) for line in _check_lines(result, thresholds)]


def _check_lines(result: CheckResult, thresholds: Thresholds) -> list[str]:
    verdict = result.verdict
    if result.error is not None:
        return [f"{result.path}: error: {result.error}"]
    head = f"{result.path}: {verdict.kind.value}"
    if verdict.flat:
        head += " (flat image: only an identical file can match it)"
    lines = [head]
    lines += [f"  {describe_match(m, thresholds)}" for m in verdict.matches]
    if verdict.suppressed:
        lines += [f"  allowed by {describe_match(m, thresholds)}" for m in verdict.allowed_by]
        lines += [f"  suppressed {describe_match(m, thresholds)}" for m in verdict.suppressed]
    lines += [_set_aside_line(aside) for aside in verdict.recoloured]
    return lines


def _set_aside_line(aside: SetAside) -> str:
    """A near match refused because its list ignores recoloured copies (colours.py)."""
    m = aside.match
    label = f" '{m.label}'" if m.label else ""
    return (f"  set aside as a recoloured copy: list {m.list_name} entry "
            f"{m.entry_id}{label} (hue distance {aside.moved:.3f}, {aside.turned:.3f} with the "
            "hues turned; the list ignores recoloured copies)")  # fmt: skip


def _grid_part(match: Match) -> str:
    """A match beyond the thresholds that the block grids confirmed (imagewatchd/verify.py)."""
    if match.grid is None:
        return ""
    return f", beyond the thresholds but confirmed by the block grid (levels {match.grid:.4f})"


def match_json(match: Match) -> dict[str, object]:
    data: dict[str, object] = {
        "source": match.source,
        "exact": match.exact,
        "dhash_distance": match.dhash_distance,
        "phash_distance": match.phash_distance,
        "pdq_distance": match.pdq_distance,
        "by_pdq": match.by_pdq,
        "orientation": match.orientation,
        "region": match.region,
        "grid": match.grid,
    }
    if match.source == "list":
        kind = match.list_kind.value if match.list_kind else None
        data.update(list=match.list_name, kind=kind, entry_id=match.entry_id, label=match.label)
    else:
        data.update(path=match.path, file_id=match.file_id)
    return data


def set_aside_json(aside: SetAside) -> dict[str, object]:
    """A near match set aside as recoloured: the match, and the hue distances (shares of the
    colour circle, as it is and with the hues turned; imagewatchd/colours.py)."""
    return {**match_json(aside.match), "hue_distance": round(aside.moved, 4),
            "hue_distance_turned": round(aside.turned, 4)}  # fmt: skip


def fingerprint_json(fp: Fingerprint) -> dict[str, object]:
    return {
        "sha256": fp.sha256, "dhash": hex64(fp.dhash), "phash": hex64(fp.phash),
        "width": fp.width, "height": fp.height, "format": fp.format, "flat": fp.flat,
        "pdq": None if fp.pdq is None else pdq_hex(fp.pdq), "pdq_quality": fp.pdq_quality,
    }  # fmt: skip


def check_json(result: CheckResult, thresholds: Thresholds) -> str:
    verdict = result.verdict
    data: dict[str, object] = {
        "path": str(result.path),
        "verdict": verdict.kind.value,
        "matches": [match_json(m) for m in verdict.matches],
        "allowed_by": [match_json(m) for m in verdict.allowed_by],
        "suppressed": [match_json(m) for m in verdict.suppressed],
        "recoloured": [set_aside_json(aside) for aside in verdict.recoloured],
        "error": result.error,
        "thresholds": thresholds_json(thresholds),
        "fingerprint": fingerprint_json(result.fingerprint) if result.fingerprint else None,
    }
    return json.dumps(data)


def thresholds_json(t: Thresholds) -> dict[str, int | bool]:
    return {
        "dhash": t.dhash, "phash": t.phash, "pdq": t.pdq, "pdq_min_quality": t.pdq_quality,
        "pdq_query_min_quality": t.pdq_query_quality,
        "similar_dhash": t.similar_dhash, "similar_phash": t.similar_phash,
        "watermarks": t.watermarks,
    }  # fmt: skip


def pdq_hex(value: int) -> str:
    return f"{value:064x}"


def human_size(size: int) -> str:
    value = float(size)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    raise AssertionError("unreachable")


def dupes_text(groups: list[DupeGroup]) -> list[str]:
    lines: list[str] = []
    for number, group in enumerate(groups, start=1):
        lines.append(f"group {number} ({len(group.files)} files)")
        lines.append(f"  why: {shown(group.reason)}")
        best = group.best
        for row in group.files:
            kept = row is best or group.kept_by(row) or row.id in group.reference
            tag = "keep" if kept else "    "
            size = f"{row.width}x{row.height} {human_size(row.stat.size)}"
            decided = group.kept_by(row)
            why = f"  kept by decision {decided}" if decided else ""
            lines.append(f"  {tag} {shown(row.path)}  {size}{_distance_to(best, row)}{why}")
    return lines


def _distance_to(best: FileRow, row: FileRow) -> str:
    if row is best:
        return ""
    if best.sha256 == row.sha256:
        return "  identical"
    if best.dhash is None or row.dhash is None or best.phash is None or row.phash is None:
        return ""
    return f"  dHash {hamming(best.dhash, row.dhash)}, pHash {hamming(best.phash, row.phash)}"


def dupes_json(groups: list[DupeGroup]) -> str:
    """Each group: its id (the keeper's file id), the keeper's reason, its files best first."""
    return json.dumps(
        {
            "groups": [
                {
                    "id": group.best.id,
                    "reason": group.reason,
                    "files": [_dupe_file_json(group, row) for row in group.files],
                }
                for group in groups
            ]
        }
    )


def _dupe_file_json(group: DupeGroup, row: FileRow) -> dict[str, object]:
    best, p = group.best, row.provenance
    return {
        "id": row.id, "path": row.path, "width": row.width, "height": row.height,
        "size": row.stat.size, "format": row.format, "sha256": row.sha256,
        "captured": p.captured, "camera": p.camera, "software": p.software,
        "jpeg_quality": p.jpeg_quality,
        "keep": row is best or group.kept_by(row) is not None or row.id in group.reference,
        "kept_by_decision": group.kept_by(row), "reason": group.reason_of(row),
        "distance": None if row is best else _distances(best, row),
    }  # fmt: skip


def _distances(best: FileRow, row: FileRow) -> dict[str, object]:
    """To the keeper: identical bytes, and the hashes' distances (None when unknown)."""
    known = None not in (best.dhash, row.dhash, best.phash, row.phash)
    return {
        "identical": best.sha256 is not None and best.sha256 == row.sha256,
        "dhash": hamming(best.dhash or 0, row.dhash or 0) if known else None,
        "phash": hamming(best.phash or 0, row.phash or 0) if known else None,
    }


VERDICT_EXIT = {
    VerdictKind.CLEAN: 0, VerdictKind.KNOWN: 1, VerdictKind.DUPLICATE: 1, VerdictKind.SIMILAR: 0,
}  # fmt: skip
