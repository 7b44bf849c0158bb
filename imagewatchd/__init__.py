"""imagewatchd: watch directories and act on known and duplicate images."""

import os

# The hashes multiply tiny matrices: OpenBLAS's threads only spin on them (one fingerprint took
# 156 ms of CPU instead of 14 on a busy machine). Set before numpy is first imported; an
# explicit setting wins.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

__version__ = "0.1.0"
