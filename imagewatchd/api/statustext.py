"""``imagewatchd status`` for people: the running daemon's answer, or the database's."""

from __future__ import annotations

from imagewatchd.names import shown


def status_lines(data: dict[str, object]) -> list[str]:
    """The lines of ``status`` (every name escaped)."""
    daemon = _dict(data.get("daemon", {}))
    if not daemon.get("running"):
        lines = [f"daemon: not running ({daemon.get('why')}); from the database:"]
        lines += [f"{key}: {value}" for key, value in data.items() if key != "daemon"]
        return [shown(line) for line in lines]
    return [shown(line) for line in _running(daemon, data)]


def _running(daemon: dict[str, object], data: dict[str, object]) -> list[str]:
    uptime = float(str(daemon["uptime_seconds"]))
    lines = [
        f"daemon: {daemon['state']}, PID {daemon['pid']}, up {_duration(uptime)}, "
        f"version {daemon['version']}",
        f"database: {data['database']}",
    ]
    if data.get("database_unreachable_since"):
        lines.append(
            f"database unreachable since {data['database_unreachable_since']}: enforcing the "
            "bank held in memory, journalling locally until it returns"
        )
    if "config" in data:
        lines.append(f"config: {data['config']}")
    for watch in _list(data.get("watches", [])):
        w = _dict(watch)
        health = "ok" if w["healthy"] else f"not watched ({w['problem']})"
        lines.append(f"watch: {w['path']} ({w['role']}): {health}")
    if "queue" in data:
        queue = _dict(data["queue"])
        lines.append(f"queue: {queue['waiting']} waiting, {queue['in_flight']} in hand")
    files = _dict(data["files_since_start"])
    lines.append(f"files since start: {_counts(files['verdicts'])}; errors {files['errors']}")
    lines.append(f"actions since start: {_counts(files['actions'])}")
    if "retries" in data:
        lines.append(f"retries: {_dict(data['retries'])['summary']}")
    if "queue" in data:
        lines.append(f"last reconcile: {data.get('last_reconcile') or 'running'}")
    for name, row in _dict(data.get("lists", {})).items():
        r = _dict(row)
        lines.append(f"list {name} ({r['kind']}): {r['entries']} entries, {r['enabled']} enabled")
    if "index" in data:
        index = _dict(data["index"])
        lines.append(
            f"index: {index['list_entries']} list entries, {index['pdq_entries']} PDQ entries, "
            f"{index['library_files']} library files"
        )
    if "bank" in data:
        bank = _dict(data["bank"])
        lines.append(
            f"bank: change {bank['applied']} applied, head {bank['head']} ({bank['behind']} behind)"
        )
    return lines


def _counts(value: object) -> str:
    counts = _dict(value)
    return ", ".join(f"{count} {name}" for name, count in sorted(counts.items())) or "none"


def _duration(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    if days:
        return f"{days}d {hours}h {minutes:02d}m"
    if hours:
        return f"{hours}h {minutes:02d}m"
    return f"{minutes}m {secs:02d}s"


def _dict(value: object) -> dict[str, object]:
    assert isinstance(value, dict)
    return value


def _list(value: object) -> list[object]:
    assert isinstance(value, list)
    return value
