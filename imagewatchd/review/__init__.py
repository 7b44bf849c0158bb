"""``imagewatchd review``: a local page for duplicate groups and the quarantine.

``groups.py`` turns duplicate groups into what the page shows (the keeper and why, each copy's
distance to it, filters and pages); ``thumbs.py`` keeps the thumbnails the decoding workers
make; ``state.py`` holds the store, the index and the groups between requests, and takes the
decisions and actions (through the same store, journal and functions as the CLI); ``app.py``
is the Flask application, guarded by a secret; ``serve.py`` the command and ``--html``.
"""
