"""Matchers that bench/evaluate.py can measure: today's rule, and a slot for new ones.

A matcher has a name, ``prepare(path)`` (runs in worker processes: returns a picklable
fingerprint, or raises ``FingerprintError``) and ``compare(a, b)`` → ``Decision``: whether the
two match, and the evidence. ``margin`` is how far the pair is from the rule's boundary, in
the rule's own unit: ``<= 0`` is a match, the largest (least negative) margin among matches and
the smallest among non-matches show how close the decision was. To measure a new matcher,
write a class like ``CurrentRule`` and add it to ``MATCHERS``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Protocol

from imagewatchd import blockgrid, verify
from imagewatchd.config import default_config
from imagewatchd.fingerprint import Limits, fingerprint_file
from imagewatchd.hashindex import hamming
from imagewatchd.models import Fingerprint, Thresholds


@dataclass(frozen=True, slots=True)
class Decision:
    match: bool
    margin: int  # max over the evidence of (distance - threshold); <= 0 matches
    evidence: tuple[tuple[str, int, int], ...]  # (what, distance, threshold)
    orientation: str = ""  # the query's orientation that decided, if not as it is

    def shown(self) -> str:
        parts = [f"{what} {d}/{t}" for what, d, t in self.evidence]
        turned = f" ({self.orientation})" if self.orientation else ""
        return (", ".join(parts) or "no evidence") + turned


class Candidate(Protocol):
    name: str

    def prepare(self, path: Path) -> object: ...

    def compare(self, a: object, b: object) -> Decision: ...


DEFAULT_LIMITS = Limits()
FLAT = Decision(False, 64, (("flat", 0, 0),))


class CurrentRule:
    """imagewatchd's rule at the configured defaults: the same sha256, or dHash and pHash both
    within their thresholds; a flat image matches by sha256 only (imagewatchd/match.py)."""

    def __init__(
        self, thresholds: Thresholds | None = None, limits: Limits = DEFAULT_LIMITS
    ) -> None:
        self.thresholds = thresholds or default_config().matching.thresholds
        self.more_thresholds = self.thresholds.turned()
        self.limits = limits
        self.name = f"imagewatchd defaults (dH <= {self.thresholds.dhash}, "
        self.name += f"pH <= {self.thresholds.phash}"
        self.name += (
            ")" if limits == DEFAULT_LIMITS else f", memory {limits.memory_bytes >> 20} MiB)"
        )

    def prepare(self, path: Path) -> object:
        return fingerprint_file(path, self.limits)[1]

    def compare(self, a: object, b: object) -> Decision:
        assert isinstance(a, Fingerprint) and isinstance(b, Fingerprint)
        if a.sha256 == b.sha256:
            return Decision(True, -64, (("sha256", 0, 0),))
        if a.flat or b.flat:
            return FLAT
        # b is the query: its regions (borders, caption bar trimmed) are searched too, and its
        # other readings of the borders (regions.more_boxes) at the turned thresholds
        t, more = self.thresholds, self.more_thresholds
        tried = [(pair, t) for pair in ((b.dhash, b.phash), *b.regions)]
        tried += [(pair, more) for pair in b.more_regions]
        margin, dd, pd, t = min(
            (max(hamming(a.dhash, d) - u.dhash, hamming(a.phash, p) - u.phash),
             hamming(a.dhash, d), hamming(a.phash, p), u)
            for (d, p), u in tried
        )  # fmt: skip
        return Decision(margin <= 0, margin, (("dH", dd, t.dhash), ("pH", pd, t.phash)))


class ListRule(CurrentRule):
    """The rule for a list entry made from a picture (imagewatchd/match.py): today's rule, or,
    when neither picture is flat, PDQ within its threshold with the entry's quality (``a``) and
    the query's (``b``) at their floors."""

    def __init__(self) -> None:
        super().__init__()
        matching = default_config().matching
        self.pdq_threshold, self.pdq_min_quality = matching.pdq_threshold, matching.pdq_min_quality
        self.pdq_query_quality = matching.pdq_query_min_quality
        self.name += f" or PDQ <= {self.pdq_threshold} (also of its regions; quality: entry >= "
        self.name += f"{self.pdq_min_quality}, query >= {self.pdq_query_quality})"

    def compare(self, a: object, b: object) -> Decision:
        decision = super().compare(a, b)
        assert isinstance(a, Fingerprint) and isinstance(b, Fingerprint)
        if decision.match or a.flat or b.flat or a.pdq is None or b.pdq is None:
            return decision  # as in match.py: a flat picture never near-matches, by PDQ neither
        # the query's PDQ and (as it is) its regions', each at its own quality
        mine = [(b.pdq, b.pdq_quality), *b.region_pdqs]
        found = [hamming(a.pdq, h) for h, q in mine if q >= self.pdq_query_quality]
        if a.pdq_quality < self.pdq_min_quality or not found:
            return decision
        distance = min(found)
        margin = distance - self.pdq_threshold
        evidence = (*decision.evidence, ("PDQ", distance, self.pdq_threshold))
        return Decision(margin <= 0, min(decision.margin, margin), evidence)


class TurnedRule(ListRule):
    """The lists rule with the query's 8 orientations (imagewatchd/match.py with
    ``orientations`` on): ``b`` (the query) in each orientation against ``a`` as it is, the
    picture as it is first; the first orientation that matches decides, else the closest.
    Another orientation than the picture's own needs ``Thresholds.turned`` (one bit stricter
    on dHash and pHash) or PDQ."""

    def __init__(self) -> None:
        super().__init__()
        self.same = self.thresholds
        self.name += ", the query in its 8 orientations (turned: dH <= "
        self.name += f"{self.same.turned().dhash}, pH <= {self.same.turned().phash} or PDQ)"

    def compare(self, a: object, b: object) -> Decision:
        assert isinstance(a, Fingerprint) and isinstance(b, Fingerprint)
        best = super().compare(a, b)
        if best.match:
            return best
        try:
            self.thresholds = self.same.turned()
            for view in b.turned:
                turned = replace(
                    b,
                    dhash=view.dhash,
                    phash=view.phash,
                    pdq=view.pdq,
                    turned=(),
                    regions=(),
                    more_regions=(),
                    region_pdqs=(),
                )  # as match.py: as it is only
                decision = replace(super().compare(a, turned), orientation=view.turn)
                if decision.match:
                    return decision
                best = min(best, decision, key=lambda d: d.margin)
        finally:
            self.thresholds = self.same
        return best


class CropsRule(TurnedRule):
    """The lists rule as imagewatchd/match.py applies it to an entry made from a picture
    (``known add``): as ``TurnedRule``, and, for the query as it is, the entry's centre crops
    (``Fingerprint.crops``: 2%, 5%, 10% cut from every side) against the query's whole and
    trimmed regions at the turned thresholds (three crops, three more chances for a
    look-alike); ``strict=False``: at the picture's own thresholds, as before."""

    def __init__(self, strict: bool = True) -> None:
        super().__init__()
        self.strict = strict
        t = self.same.turned() if strict else self.same
        self.name += f", the entry's centre crops (2/5/10%: dH <= {t.dhash}, pH <= {t.phash})"

    def prepare(self, path: Path) -> object:
        return fingerprint_file(path, self.limits, crops=True)[1]

    def compare(self, a: object, b: object) -> Decision:
        assert isinstance(a, Fingerprint) and isinstance(b, Fingerprint)
        same = ListRule.compare(self, a, b)
        if same.match or a.flat or b.flat:
            return same
        best = same
        try:
            self.thresholds = self.same.turned() if self.strict else self.same
            for region, dhash, phash in a.crops:
                cropped = replace(a, dhash=dhash, phash=phash, pdq=None, sha256="")
                decision = CurrentRule.compare(self, cropped, b)
                decision = replace(decision, orientation=region)
                if decision.match:
                    return decision
                best = min(best, decision, key=lambda d: d.margin)
        finally:
            self.thresholds = self.same
        return min(best, super().compare(a, b), key=lambda d: (not d.match, d.margin))


class VerifiedRule(CropsRule):
    """``CropsRule``, then imagewatchd/verify.py's second stage for a pair it does not match:
    within dH <= 20 and pH <= 22 (the query as it is), the block grids must agree."""

    def __init__(self) -> None:
        super().__init__()
        self.name += ", then wider candidates confirmed by the block grid"

    def compare(self, a: object, b: object) -> Decision:
        decision = super().compare(a, b)
        assert isinstance(a, Fingerprint) and isinstance(b, Fingerprint)
        if decision.match or a.flat or b.flat or not a.grid or not b.grid:
            return decision
        dd, pd = hamming(a.dhash, b.dhash), hamming(a.phash, b.phash)
        if dd > verify.WIDER_DHASH or pd > verify.WIDER_PHASH:
            return decision
        levels, edges = blockgrid.agreement(a.grid, b.grid)
        if levels < blockgrid.LEVELS or edges < blockgrid.EDGES:
            return decision
        grid = (("grid levels x1e4", round(levels * 1e4), round(blockgrid.LEVELS * 1e4)),)
        return Decision(True, 0, (("dH", dd, verify.WIDER_DHASH), ("pH", pd, verify.WIDER_PHASH),
                                  *grid), "grid")  # fmt: skip


class WholePdqRule(VerifiedRule):
    """``VerifiedRule`` as it was before the query's regions had a PDQ: PDQ of the whole
    picture only (the same fingerprints, their ``region_pdqs`` set aside)."""

    def __init__(self) -> None:
        super().__init__()
        self.name = self.name.replace(" (also of its regions;", " (of the whole only;")

    def compare(self, a: object, b: object) -> Decision:
        assert isinstance(b, Fingerprint)
        return super().compare(a, replace(b, region_pdqs=()))


MATCHERS: dict[str, Callable[[], Candidate]] = {
    "current": CurrentRule,
    "lists": ListRule,
    "turned": TurnedRule,
    "crops": CropsRule,
    "verified": VerifiedRule,
    "verified-whole-pdq": WholePdqRule,
    "crops-loose": lambda: CropsRule(strict=False),  # the crops at 6/4, as before issue 8's round 3
    # the same rule with room to decode 4K WebPs (GNOME's backgrounds): for the recolour pairs
    "current-512mib": lambda: CurrentRule(limits=Limits(memory_bytes=512 << 20)),
}
