"""What a daemon run remembers of its library's groups (imagewatchd/kin.py), on real
fingerprints of Pillow images: a framed copy is found from either side, and a copy moved
away stands for its group's keeper, whoever that becomes."""

from __future__ import annotations

from PIL import ImageOps

from imagewatchd.config import default_config
from imagewatchd.kin import Kin
from tests.conftest import photo
from tests.test_match import fp_of

THRESHOLDS = default_config().matching.thresholds


def test_a_library_files_region_finds_the_whole_newcomer() -> None:
    """The matcher finds a library file when the newcomer's trimmed region matches it whole;
    the kin finds the reverse: a framed copy in the library, its unframed picture arriving."""
    picture = photo(7).resize((512, 384))
    framed = fp_of(ImageOps.expand(picture, 24, (60, 60, 60)), "PNG")
    whole = fp_of(picture, "JPEG", quality=90)
    assert framed.regions  # the frame is trimmed
    kin = Kin()
    assert kin.relatives(whole, THRESHOLDS).by_region == {}
    kin.recorded(5, framed)
    assert list(kin.relatives(whole, THRESHOLDS).by_region) == [5]
    kin.forget(5)  # moved or gone: no longer a library file
    assert kin.relatives(whole, THRESHOLDS).by_region == {}


def test_a_moved_copy_stands_for_its_groups_keeper_until_a_better_one_displaces_it() -> None:
    picture = photo(7).resize((512, 384))
    copy = fp_of(picture, "JPEG", quality=70)
    kin = Kin()
    kin.departed(None, copy, "/lib/IMG_1.jpg")
    later = fp_of(picture.resize((400, 300)), "JPEG", quality=80)
    assert list(kin.relatives(later, THRESHOLDS).by_moved) == ["/lib/IMG_1.jpg"]
    kin.displaced("/lib/IMG_1.jpg", "/lib/IMG_1-full.jpg")
    assert list(kin.relatives(later, THRESHOLDS).by_moved) == ["/lib/IMG_1-full.jpg"]
    assert kin.relatives(fp_of(photo(34), "JPEG"), THRESHOLDS).by_moved == {}  # another photo
