"""imagewatchd: watch directories and act on known and duplicate images."""

__version__ = "0.1.0"
