"""The running daemon's local API: HTTP/1.1 on a Unix socket (docs/API.md).

``listener`` binds the socket, ``server`` serves it, ``answers`` computes what it says,
``tally`` counts the daemon's decisions and ``client`` is the CLI's side.
"""
