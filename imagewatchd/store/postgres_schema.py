"""The PostgreSQL schema: versioned migrations of its own, applied in order by ``postgres.py``.

The list starts at the shape SQLite's migrations had reached (``schema.py``, migration 12) and
grows on its own: a later SQLite migration adds a PostgreSQL one here when the change applies.

One database serves a fleet. Shared by every host: lists, entries (and their centre crops'
hashes, ``entry_regions``), hit counts, decisions and exemptions. Per host: its files, its
library change log, its watches, its journal (actions, batches), its retries and its counters;
each such row names its host (``host``), in a table named ``host_<name>``, and a view named
``<name>`` shows the connection's own host's rows only (``imagewatchd.host``, set by the store
on connecting). The views are simple ones, so PostgreSQL updates them in place: the queries
both engines share run unchanged, and an insert through a view takes the host's name from the
column's default. The shared counters (entries added, changed) are the host '' rows.
"""

from __future__ import annotations

HOST = "current_setting('imagewatchd.host')"

PER_HOST = ("files", "library_changes", "watches", "batches", "actions", "retries", "counters")


def _view(name: str, columns: str, where: str = f"host = {HOST}") -> str:
    return f"CREATE VIEW {name} AS SELECT {columns} FROM host_{name} WHERE {where};"


FILE_COLUMNS = (
    "id, host, path, device, inode, size, mtime_ns, role, sha256, dhash, phash, width, height,"
    " format, flat, canon_version, error, first_seen, last_seen, pdq, pdq_quality, camera,"
    " captured, software, jpeg_quality"
)
ACTION_COLUMNS = (
    "id, host, kind, state, src_root, src_rel, dst_root, dst_rel, tmp_name, sha256, device,"
    " inode, size, mtime_ns, atime_ns, uid, gid, mode, verdict, evidence, rule, error, reverses,"
    " created, finished, batch_id"
)

SHARED = """
CREATE TABLE lists (
    id BIGSERIAL PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL CHECK (kind IN ('block', 'allow')),
    description TEXT NOT NULL DEFAULT '',
    created DOUBLE PRECISION NOT NULL
);
CREATE TABLE entries (
    id BIGSERIAL PRIMARY KEY,
    list_id BIGINT NOT NULL REFERENCES lists (id) ON DELETE CASCADE,
    sha256 TEXT,
    dhash BIGINT,
    phash BIGINT,
    flat INTEGER NOT NULL DEFAULT 0,
    canon_version INTEGER,
    label TEXT NOT NULL DEFAULT '',
    source TEXT NOT NULL DEFAULT '',
    added DOUBLE PRECISION NOT NULL,
    enabled INTEGER NOT NULL DEFAULT 1,
    hits BIGINT NOT NULL DEFAULT 0,
    last_hit DOUBLE PRECISION,
    pdq BYTEA CHECK (pdq IS NULL OR length(pdq) = 32),
    pdq_quality INTEGER CHECK (pdq_quality IS NULL OR pdq_quality BETWEEN 0 AND 100),
    CHECK (sha256 IS NOT NULL OR (dhash IS NOT NULL AND phash IS NOT NULL) OR pdq IS NOT NULL)
);
CREATE INDEX entries_sha256 ON entries (sha256);
CREATE UNIQUE INDEX entries_identity ON entries (list_id, sha256, dhash, phash, pdq)
    NULLS NOT DISTINCT;
CREATE INDEX entries_pdq ON entries (pdq) WHERE pdq IS NOT NULL;
CREATE TABLE entry_regions (
    id BIGSERIAL PRIMARY KEY,
    entry_id BIGINT NOT NULL REFERENCES entries (id) ON DELETE CASCADE,
    region TEXT NOT NULL CHECK (region IN ('crop2', 'crop5', 'crop10')),
    dhash BIGINT NOT NULL,
    phash BIGINT NOT NULL
);
CREATE UNIQUE INDEX entry_regions_entry ON entry_regions (entry_id, region);
CREATE TABLE decisions (
    id BIGSERIAL PRIMARY KEY,
    kind TEXT NOT NULL CHECK (kind IN ('keep', 'not_duplicate')),
    sha256 TEXT NOT NULL,
    other TEXT NOT NULL DEFAULT '',
    paths TEXT NOT NULL,
    created DOUBLE PRECISION NOT NULL,
    UNIQUE (kind, sha256, other)
);
CREATE INDEX decisions_other ON decisions (other, kind);
"""

PER_HOST_TABLES = f"""
CREATE TABLE host_counters (
    host TEXT NOT NULL DEFAULT {HOST},
    name TEXT NOT NULL,
    value BIGINT NOT NULL,
    PRIMARY KEY (host, name)
);
INSERT INTO host_counters (host, name, value)
    VALUES ('', 'entries_added', 0), ('', 'entries_changed', 0);
CREATE TABLE host_files (
    id BIGSERIAL PRIMARY KEY,
    host TEXT NOT NULL DEFAULT {HOST},
    path BYTEA NOT NULL,
    device BIGINT NOT NULL,
    inode BIGINT NOT NULL,
    size BIGINT NOT NULL,
    mtime_ns BIGINT NOT NULL,
    role TEXT NOT NULL CHECK (role IN ('library', 'incoming')),
    sha256 TEXT,
    dhash BIGINT,
    phash BIGINT,
    width INTEGER,
    height INTEGER,
    format TEXT,
    flat INTEGER NOT NULL DEFAULT 0,
    canon_version INTEGER,
    error TEXT,
    first_seen DOUBLE PRECISION NOT NULL,
    last_seen DOUBLE PRECISION NOT NULL,
    pdq BYTEA,
    pdq_quality INTEGER,
    camera TEXT,
    captured TEXT,
    software TEXT,
    jpeg_quality INTEGER,
    UNIQUE (host, path)
);
CREATE INDEX files_sha256 ON host_files (host, sha256);
CREATE INDEX files_inode ON host_files (host, device, inode);
CREATE INDEX files_role ON host_files (host, role, id);
CREATE TABLE host_library_changes (
    seq BIGSERIAL PRIMARY KEY,
    host TEXT NOT NULL DEFAULT {HOST},
    file_id BIGINT NOT NULL
);
CREATE INDEX library_changes_host ON host_library_changes (host, seq);
CREATE TABLE host_watches (
    host TEXT NOT NULL DEFAULT {HOST},
    path BYTEA NOT NULL,
    indexed DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (host, path)
);
CREATE TABLE host_batches (
    id BIGSERIAL PRIMARY KEY,
    host TEXT NOT NULL DEFAULT {HOST},
    command TEXT NOT NULL,
    started DOUBLE PRECISION NOT NULL,
    finished DOUBLE PRECISION
);
CREATE TABLE host_actions (
    id BIGSERIAL PRIMARY KEY,
    host TEXT NOT NULL DEFAULT {HOST},
    kind TEXT NOT NULL CHECK (kind IN ('log', 'move', 'quarantine', 'restore', 'undo', 'delete',
        'trash', 'hardlink')),
    state TEXT NOT NULL CHECK (state IN ('intended', 'done', 'failed', 'rolled_back', 'undone',
        'deleted')),
    src_root BYTEA NOT NULL,
    src_rel BYTEA NOT NULL,
    dst_root BYTEA,
    dst_rel BYTEA,
    tmp_name BYTEA,
    sha256 TEXT NOT NULL,
    device BIGINT NOT NULL,
    inode BIGINT NOT NULL,
    size BIGINT NOT NULL,
    mtime_ns BIGINT NOT NULL,
    atime_ns BIGINT NOT NULL,
    uid BIGINT NOT NULL,
    gid BIGINT NOT NULL,
    mode BIGINT NOT NULL,
    verdict TEXT NOT NULL,
    evidence TEXT NOT NULL,
    rule TEXT NOT NULL,
    error TEXT,
    reverses BIGINT REFERENCES host_actions (id),
    created DOUBLE PRECISION NOT NULL,
    finished DOUBLE PRECISION,
    batch_id BIGINT REFERENCES host_batches (id)
);
CREATE INDEX actions_state ON host_actions (host, state);
CREATE INDEX actions_kind ON host_actions (host, kind, state);
CREATE INDEX actions_batch ON host_actions (batch_id) WHERE batch_id IS NOT NULL;
CREATE INDEX actions_created ON host_actions (host, created);
CREATE INDEX actions_sha256 ON host_actions (sha256);
CREATE TABLE host_retries (
    host TEXT NOT NULL DEFAULT {HOST},
    kind TEXT NOT NULL,
    path BYTEA NOT NULL,
    attempts INTEGER NOT NULL,
    due DOUBLE PRECISION NOT NULL,
    reason TEXT NOT NULL,
    PRIMARY KEY (host, kind, path)
);
CREATE TABLE exemptions (
    action_id BIGINT PRIMARY KEY REFERENCES host_actions (id) ON DELETE CASCADE,
    path BYTEA NOT NULL,
    sha256 TEXT NOT NULL,
    created DOUBLE PRECISION NOT NULL
);
CREATE INDEX exemptions_place ON exemptions (path, sha256);
"""

VIEWS = "\n".join(
    (
        _view("files", FILE_COLUMNS),
        _view("library_changes", "seq, host, file_id"),
        _view("watches", "host, path, indexed"),
        _view("batches", "id, host, command, started, finished"),
        _view("actions", ACTION_COLUMNS),
        _view("retries", "host, kind, path, attempts, due, reason"),
        _view("counters", "host, name, value", f"host IN ('', {HOST})"),
    )
)

# Entries are added one transaction at a time (from taking their ids to committing: a lock on
# the counter row, taken before the first row's id), so that entries commit in id order and a
# host that reads "the entries after the last id I have" never misses one that commits late.
TRIGGERS = """
CREATE FUNCTION entries_one_at_a_time() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM 1 FROM host_counters WHERE host = '' AND name = 'entries_added' FOR UPDATE;
    RETURN NULL;
END $$;
CREATE TRIGGER entries_order BEFORE INSERT ON entries
    FOR EACH STATEMENT EXECUTE FUNCTION entries_one_at_a_time();
CREATE FUNCTION entries_added() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE host_counters SET value = value + (SELECT COUNT(*) FROM added)
        WHERE host = '' AND name = 'entries_added';
    RETURN NULL;
END $$;
CREATE TRIGGER entries_insert AFTER INSERT ON entries REFERENCING NEW TABLE AS added
    FOR EACH STATEMENT EXECUTE FUNCTION entries_added();
CREATE FUNCTION entries_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE host_counters SET value = value + 1 WHERE host = '' AND name = 'entries_changed';
    RETURN NULL;
END $$;
CREATE TRIGGER entries_update AFTER UPDATE OF enabled, dhash, phash, sha256, pdq, pdq_quality
    ON entries FOR EACH ROW EXECUTE FUNCTION entries_changed();
CREATE TRIGGER entries_delete AFTER DELETE ON entries FOR EACH ROW
    EXECUTE FUNCTION entries_changed();
CREATE FUNCTION files_library_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        INSERT INTO host_library_changes (host, file_id) VALUES (OLD.host, OLD.id);
    ELSE
        INSERT INTO host_library_changes (host, file_id) VALUES (NEW.host, NEW.id);
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER files_library_insert AFTER INSERT ON host_files FOR EACH ROW
    WHEN (NEW.role = 'library') EXECUTE FUNCTION files_library_changed();
CREATE TRIGGER files_library_update AFTER UPDATE OF role, dhash, phash, flat, error ON host_files
    FOR EACH ROW WHEN (OLD.role = 'library' OR NEW.role = 'library')
    EXECUTE FUNCTION files_library_changed();
CREATE TRIGGER files_library_delete AFTER DELETE ON host_files FOR EACH ROW
    WHEN (OLD.role = 'library') EXECUTE FUNCTION files_library_changed();
"""

# Each statement that changes entries wakes the other hosts at its commit (``wakeups.py``).
NOTIFY = """
CREATE FUNCTION bank_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('imagewatchd_bank', '');
    RETURN NULL;
END $$;
CREATE TRIGGER entries_notify AFTER INSERT OR UPDATE OR DELETE ON entries
    FOR EACH STATEMENT EXECUTE FUNCTION bank_changed();
"""

# An inbox's arrival filed into its library is an action of its own kind.
FILING = """
ALTER TABLE host_actions DROP CONSTRAINT host_actions_kind_check;
ALTER TABLE host_actions ADD CONSTRAINT host_actions_kind_check CHECK (kind IN ('log', 'move',
    'quarantine', 'restore', 'undo', 'delete', 'trash', 'hardlink', 'file'));
"""

# Shared with the bank: the block means a wider candidate is verified with (verify.py).
GRIDS = """
CREATE TABLE entry_grids (
    entry_id BIGINT PRIMARY KEY REFERENCES entries (id) ON DELETE CASCADE,
    grid BYTEA NOT NULL CHECK (octet_length(grid) = 256)
);
"""

# Shared with the bank: each list's setting for recoloured copies, and the colour signatures
# of entries made from a picture (imagewatchd/colours.py). Read with the entries a match
# found, so a setting changed on one host holds on every host at its next match.
COLOURS = """
ALTER TABLE lists ADD COLUMN recoloured TEXT NOT NULL DEFAULT 'count'
    CHECK (recoloured IN ('count', 'ignore'));
CREATE INDEX lists_recoloured ON lists (recoloured);  -- asked before each file is decoded
CREATE TABLE entry_colours (
    entry_id BIGINT PRIMARY KEY REFERENCES entries (id) ON DELETE CASCADE,
    colours BYTEA NOT NULL CHECK (octet_length(colours) = 17)
);
"""

# Each file's colour signature with its fingerprint (imagewatchd/colours.py): 17 bytes, none
# (a grey or flat picture), or NULL (stored before files kept their colours: not computed).
# The view gains the column at its end (CREATE OR REPLACE VIEW may add columns there).
FILE_COLOURS = f"""
ALTER TABLE host_files ADD COLUMN colours BYTEA
    CHECK (colours IS NULL OR octet_length(colours) IN (0, 17));
{_view("files", FILE_COLUMNS + ", colours").replace("CREATE VIEW", "CREATE OR REPLACE VIEW")}
"""

# The bank's change log: every entry added, changed (enabled, disabled, re-hashed) or removed
# (a list deleted removes its entries) is one row with a sequence number. The numbers are
# taken from the shared counter ``bank_seq`` under its row lock, held to the commit, so they
# commit in order: a host that has applied through ``n`` and reads ``seq > n`` up to the head
# it read misses none. Hits (``record_hits``) are not changes. ``host_bank`` holds, per host,
# the last sequence it applied and the head it saw then (``docs/FLEET.md``: staleness).
BANK_LOG = f"""
CREATE TABLE bank_changes (
    seq BIGINT PRIMARY KEY,
    entry_id BIGINT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('add', 'change', 'remove')),
    made DOUBLE PRECISION NOT NULL DEFAULT extract(epoch FROM now())
);
INSERT INTO host_counters (host, name, value) VALUES ('', 'bank_seq', 0), ('', 'bank_trimmed', 0),
    ('', 'bank_id', floor(random() * 4503599627370496)::bigint);
CREATE FUNCTION bank_log(changed BIGINT[], what TEXT) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    last BIGINT;
BEGIN
    IF cardinality(changed) = 0 THEN
        RETURN;
    END IF;
    UPDATE host_counters SET value = value + cardinality(changed)
        WHERE host = '' AND name = 'bank_seq' RETURNING value INTO last;
    INSERT INTO bank_changes (seq, entry_id, kind)
        SELECT last - cardinality(changed) + n, id, what
        FROM unnest(changed) WITH ORDINALITY AS c(id, n);
END $$;
CREATE FUNCTION bank_added() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM bank_log(ARRAY(SELECT id FROM added ORDER BY id), 'add');
    RETURN NULL;
END $$;
CREATE TRIGGER bank_insert AFTER INSERT ON entries REFERENCING NEW TABLE AS added
    FOR EACH STATEMENT EXECUTE FUNCTION bank_added();
CREATE FUNCTION bank_changed_rows() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM bank_log(ARRAY(SELECT n.id FROM after_rows n JOIN before_rows o ON o.id = n.id
        WHERE (n.enabled, n.dhash, n.phash, n.sha256, n.pdq, n.pdq_quality, n.flat, n.list_id)
        IS DISTINCT FROM (o.enabled, o.dhash, o.phash, o.sha256, o.pdq, o.pdq_quality, o.flat,
        o.list_id) ORDER BY n.id), 'change');
    RETURN NULL;
END $$;
CREATE TRIGGER bank_update AFTER UPDATE ON entries
    REFERENCING OLD TABLE AS before_rows NEW TABLE AS after_rows
    FOR EACH STATEMENT EXECUTE FUNCTION bank_changed_rows();
CREATE FUNCTION bank_removed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM bank_log(ARRAY(SELECT id FROM removed ORDER BY id), 'remove');
    RETURN NULL;
END $$;
CREATE TRIGGER bank_delete AFTER DELETE ON entries REFERENCING OLD TABLE AS removed
    FOR EACH STATEMENT EXECUTE FUNCTION bank_removed();
CREATE TABLE host_bank (
    host TEXT PRIMARY KEY DEFAULT {HOST},
    applied BIGINT NOT NULL,
    head BIGINT NOT NULL,
    updated DOUBLE PRECISION NOT NULL
);
"""

# (version, name, SQL): append only; each runs in one transaction with its record.
MIGRATIONS: tuple[tuple[int, str, str], ...] = (
    (
        1,
        "the shared bank and each host's files, journal and retries (SQLite's migration 12)",
        SHARED + PER_HOST_TABLES + VIEWS + TRIGGERS,
    ),
    (2, "other hosts woken by LISTEN/NOTIFY when entries change", NOTIFY),
    (3, "the journal's filing of inbox arrivals (SQLite's migration 13)", FILING),
    (4, "the block grids of list entries made from a picture (SQLite's migration 14)", GRIDS),
    (5, "the bank's change log with sequence numbers; each host's last applied", BANK_LOG),
    (6, "recoloured copies: lists' setting, entries' colours (SQLite's migration 15)", COLOURS),
    (7, "each file's colour signature with its fingerprint (SQLite's migration 16)", FILE_COLOURS),
)
