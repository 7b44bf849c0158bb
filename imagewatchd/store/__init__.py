"""The store: all SQL runs in this package; nothing outside it knows which engine is used.

``Store(where)`` opens a SQLite file (``sqlite.py``, the default) or a PostgreSQL database
(``postgres.py``) behind one interface (``interface.py``); the queries both engines share are
written once (``files.py``, ``lists.py``, ``journal.py``, ``decisions.py``) over a small
dialect (``base.py``).
"""

from imagewatchd.store.checking import Checker
from imagewatchd.store.interface import Store
from imagewatchd.store.location import Location, Where, local_path
from imagewatchd.store.sqlite_check import DAMAGE_ERRORS, damage

__all__ = ["DAMAGE_ERRORS", "Checker", "Location", "Store", "Where", "damage", "local_path"]
