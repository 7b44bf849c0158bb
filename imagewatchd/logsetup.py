"""Logging for a terminal, for the journal, or for a pipe.

When ``$JOURNAL_STREAM`` names the device and inode of our stderr, journald is reading it: each
line gets an ``<N>`` syslog priority prefix (so the journal stores the right priority) and no
timestamp (the journal adds its own). Anywhere else (a terminal, a log file, docker's or
supervisord's pipe, ``nohup``) the daemon's lines carry a timestamp, since nothing else adds one;
a one-shot command's lines do not.

Every message is escaped as ``names.shown`` describes, whatever it holds: a file name can never
forge a line, or reach the terminal or the journal as a control sequence. (A traceback, shown
with ``--debug`` only, follows the message on lines of its own.)
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Mapping
from typing import TextIO

from imagewatchd.names import shown

# syslog priorities: crit 2, err 3, warning 4, info 6, debug 7
PRIORITIES = {logging.CRITICAL: 2, logging.ERROR: 3, logging.WARNING: 4, logging.INFO: 6}


class Formatter(logging.Formatter):
    """Escapes the message: one log record is one line, whatever names it holds."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        escaped = logging.makeLogRecord(record.__dict__)
        escaped.message = shown(record.message)
        return super().formatMessage(escaped)


class JournalFormatter(Formatter):
    def format(self, record: logging.LogRecord) -> str:
        priority = PRIORITIES.get(record.levelno, 7)
        text = super().format(record)
        return "\n".join(f"<{priority}>{line}" for line in text.splitlines())


def to_journal(stream: TextIO, env: Mapping[str, str] = os.environ) -> bool:
    """True when ``stream`` is the journal's stream connection, as ``$JOURNAL_STREAM`` says."""
    value = env.get("JOURNAL_STREAM", "")
    device, _, inode = value.partition(":")
    if not (device.isdigit() and inode.isdigit()):
        return False
    try:
        info = os.fstat(stream.fileno())
    except (OSError, ValueError):
        return False
    return (info.st_dev, info.st_ino) == (int(device), int(inode))


def setup(debug: bool, daemon: bool, stream: TextIO = sys.stderr) -> None:
    handler = logging.StreamHandler(stream)
    formatter: Formatter
    if to_journal(stream):
        formatter = JournalFormatter("%(message)s")
    elif daemon:
        formatter = Formatter("%(asctime)s %(levelname)s: %(message)s", "%Y-%m-%d %H:%M:%S")
    else:
        formatter = Formatter("%(levelname)s: %(message)s")
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if debug else logging.INFO)
    if not debug:
        logging.getLogger("PIL").setLevel(logging.INFO)
