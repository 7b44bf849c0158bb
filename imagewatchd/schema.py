"""The database schema: versioned migrations, applied in order by ``store.py``.

Each migration runs in the same transaction as its record in the ``migrations`` table.
File paths are BLOBs holding the exact bytes of the name (``os.fsencode``; from migration 4 on):
Linux names need not be UTF-8. Text that is only shown to people (labels, sources, errors) stays
TEXT.
"""

from __future__ import annotations

MIGRATIONS: tuple[tuple[int, str, str], ...] = (
    (
        1,
        "files, lists and entries",
        """
        CREATE TABLE files (
            id INTEGER PRIMARY KEY,
            path TEXT NOT NULL UNIQUE,
            device INTEGER NOT NULL,
            inode INTEGER NOT NULL,
            size INTEGER NOT NULL,
            mtime_ns INTEGER NOT NULL,
            role TEXT NOT NULL CHECK (role IN ('library', 'incoming')),
            sha256 TEXT,
            dhash INTEGER,
            phash INTEGER,
            width INTEGER,
            height INTEGER,
            format TEXT,
            flat INTEGER NOT NULL DEFAULT 0,
            canon_version INTEGER,
            error TEXT,
            first_seen REAL NOT NULL,
            last_seen REAL NOT NULL
        );
        CREATE INDEX files_sha256 ON files (sha256);
        CREATE TABLE lists (
            id INTEGER PRIMARY KEY,
            name TEXT NOT NULL UNIQUE,
            kind TEXT NOT NULL CHECK (kind IN ('block', 'allow')),
            description TEXT NOT NULL DEFAULT '',
            created REAL NOT NULL
        );
        CREATE TABLE entries (
            id INTEGER PRIMARY KEY,
            list_id INTEGER NOT NULL REFERENCES lists (id) ON DELETE CASCADE,
            sha256 TEXT,
            dhash INTEGER,
            phash INTEGER,
            flat INTEGER NOT NULL DEFAULT 0,
            canon_version INTEGER,
            label TEXT NOT NULL DEFAULT '',
            source TEXT NOT NULL DEFAULT '',
            added REAL NOT NULL,
            enabled INTEGER NOT NULL DEFAULT 1,
            hits INTEGER NOT NULL DEFAULT 0,
            last_hit REAL,
            CHECK (sha256 IS NOT NULL OR (dhash IS NOT NULL AND phash IS NOT NULL))
        );
        CREATE INDEX entries_sha256 ON entries (sha256);
        CREATE INDEX entries_list ON entries (list_id);
        """,
    ),
    (
        2,
        "the action journal, and a version counter for live list reloads",
        """
        CREATE TABLE actions (
            id INTEGER PRIMARY KEY,
            kind TEXT NOT NULL CHECK (kind IN ('log', 'move', 'quarantine', 'restore', 'undo')),
            state TEXT NOT NULL
                CHECK (state IN ('intended', 'done', 'failed', 'rolled_back', 'undone')),
            src_root TEXT NOT NULL,
            src_rel TEXT NOT NULL,
            dst_root TEXT,
            dst_rel TEXT,
            tmp_name TEXT,
            sha256 TEXT NOT NULL,
            device INTEGER NOT NULL,
            inode INTEGER NOT NULL,
            size INTEGER NOT NULL,
            mtime_ns INTEGER NOT NULL,
            atime_ns INTEGER NOT NULL,
            uid INTEGER NOT NULL,
            gid INTEGER NOT NULL,
            mode INTEGER NOT NULL,
            verdict TEXT NOT NULL,
            evidence TEXT NOT NULL,
            rule TEXT NOT NULL,
            error TEXT,
            reverses INTEGER REFERENCES actions (id),
            created REAL NOT NULL,
            finished REAL
        );
        CREATE INDEX actions_state ON actions (state);
        CREATE INDEX actions_kind ON actions (kind, state);
        CREATE TABLE counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
        INSERT INTO counters VALUES ('entries_added', 0), ('entries_changed', 0);
        CREATE TRIGGER entries_insert AFTER INSERT ON entries BEGIN
            UPDATE counters SET value = value + 1 WHERE name = 'entries_added';
        END;
        CREATE TRIGGER entries_update AFTER UPDATE OF enabled, dhash, phash, sha256 ON entries
        BEGIN
            UPDATE counters SET value = value + 1 WHERE name = 'entries_changed';
        END;
        CREATE TRIGGER entries_delete AFTER DELETE ON entries BEGIN
            UPDATE counters SET value = value + 1 WHERE name = 'entries_changed';
        END;
        """,
    ),
    (
        3,
        "renames are found by inode; list entries are deduplicated by index; first indexes",
        """
        CREATE INDEX files_inode ON files (device, inode);
        CREATE INDEX entries_identity ON entries (list_id, sha256, dhash, phash);
        CREATE TABLE watches (
            path TEXT PRIMARY KEY,
            indexed REAL NOT NULL
        );
        """,
    ),
    (
        4,
        "paths are the exact bytes of the file names (BLOB): names need not be UTF-8",
        """
        CREATE TABLE files_v4 (
            id INTEGER PRIMARY KEY,
            path BLOB NOT NULL UNIQUE,
            device INTEGER NOT NULL,
            inode INTEGER NOT NULL,
            size INTEGER NOT NULL,
            mtime_ns INTEGER NOT NULL,
            role TEXT NOT NULL CHECK (role IN ('library', 'incoming')),
            sha256 TEXT,
            dhash INTEGER,
            phash INTEGER,
            width INTEGER,
            height INTEGER,
            format TEXT,
            flat INTEGER NOT NULL DEFAULT 0,
            canon_version INTEGER,
            error TEXT,
            first_seen REAL NOT NULL,
            last_seen REAL NOT NULL
        );
        INSERT INTO files_v4 SELECT id, CAST(path AS BLOB), device, inode, size, mtime_ns, role,
            sha256, dhash, phash, width, height, format, flat, canon_version, error, first_seen,
            last_seen FROM files;
        DROP TABLE files;
        ALTER TABLE files_v4 RENAME TO files;
        CREATE INDEX files_sha256 ON files (sha256);
        CREATE INDEX files_inode ON files (device, inode);
        CREATE TABLE watches_v4 (
            path BLOB PRIMARY KEY,
            indexed REAL NOT NULL
        );
        INSERT INTO watches_v4 SELECT CAST(path AS BLOB), indexed FROM watches;
        DROP TABLE watches;
        ALTER TABLE watches_v4 RENAME TO watches;
        CREATE TABLE actions_v4 (
            id INTEGER PRIMARY KEY,
            kind TEXT NOT NULL CHECK (kind IN ('log', 'move', 'quarantine', 'restore', 'undo')),
            state TEXT NOT NULL
                CHECK (state IN ('intended', 'done', 'failed', 'rolled_back', 'undone')),
            src_root BLOB NOT NULL,
            src_rel BLOB NOT NULL,
            dst_root BLOB,
            dst_rel BLOB,
            tmp_name BLOB,
            sha256 TEXT NOT NULL,
            device INTEGER NOT NULL,
            inode INTEGER NOT NULL,
            size INTEGER NOT NULL,
            mtime_ns INTEGER NOT NULL,
            atime_ns INTEGER NOT NULL,
            uid INTEGER NOT NULL,
            gid INTEGER NOT NULL,
            mode INTEGER NOT NULL,
            verdict TEXT NOT NULL,
            evidence TEXT NOT NULL,
            rule TEXT NOT NULL,
            error TEXT,
            reverses INTEGER REFERENCES actions_v4 (id),
            created REAL NOT NULL,
            finished REAL
        );
        INSERT INTO actions_v4 SELECT id, kind, state, CAST(src_root AS BLOB),
            CAST(src_rel AS BLOB), CAST(dst_root AS BLOB), CAST(dst_rel AS BLOB),
            CAST(tmp_name AS BLOB), sha256, device, inode, size, mtime_ns, atime_ns, uid, gid,
            mode, verdict, evidence, rule, error, reverses, created, finished
            FROM actions ORDER BY id;
        DROP TABLE actions;
        ALTER TABLE actions_v4 RENAME TO actions;
        CREATE INDEX actions_state ON actions (state);
        CREATE INDEX actions_kind ON actions (kind, state);
        """,
    ),
    (
        5,
        "files kept where an undo put them back; failed actions waiting for a retry",
        """
        CREATE TABLE exemptions (
            action_id INTEGER PRIMARY KEY REFERENCES actions (id) ON DELETE CASCADE,
            path BLOB NOT NULL,
            sha256 TEXT NOT NULL,
            created REAL NOT NULL
        );
        CREATE INDEX exemptions_place ON exemptions (path, sha256);
        CREATE TABLE retries (
            kind TEXT NOT NULL,
            path BLOB NOT NULL,
            attempts INTEGER NOT NULL,
            due REAL NOT NULL,
            reason TEXT NOT NULL,
            PRIMARY KEY (kind, path)
        );
        """,
    ),
    (
        6,
        "PDQ hashes (256-bit BLOB, with their quality) on files and entries; PDQ-only entries",
        """
        ALTER TABLE files ADD COLUMN pdq BLOB;
        ALTER TABLE files ADD COLUMN pdq_quality INTEGER;
        CREATE TABLE entries_v6 (
            id INTEGER PRIMARY KEY,
            list_id INTEGER NOT NULL REFERENCES lists (id) ON DELETE CASCADE,
            sha256 TEXT,
            dhash INTEGER,
            phash INTEGER,
            flat INTEGER NOT NULL DEFAULT 0,
            canon_version INTEGER,
            label TEXT NOT NULL DEFAULT '',
            source TEXT NOT NULL DEFAULT '',
            added REAL NOT NULL,
            enabled INTEGER NOT NULL DEFAULT 1,
            hits INTEGER NOT NULL DEFAULT 0,
            last_hit REAL,
            pdq BLOB CHECK (pdq IS NULL OR length(pdq) = 32),
            pdq_quality INTEGER CHECK (pdq_quality IS NULL OR pdq_quality BETWEEN 0 AND 100),
            CHECK (sha256 IS NOT NULL OR (dhash IS NOT NULL AND phash IS NOT NULL)
                OR pdq IS NOT NULL)
        );
        INSERT INTO entries_v6 (id, list_id, sha256, dhash, phash, flat, canon_version, label,
            source, added, enabled, hits, last_hit)
            SELECT id, list_id, sha256, dhash, phash, flat, canon_version, label, source, added,
            enabled, hits, last_hit FROM entries ORDER BY id;
        DROP TABLE entries;
        ALTER TABLE entries_v6 RENAME TO entries;
        CREATE INDEX entries_sha256 ON entries (sha256);
        CREATE INDEX entries_list ON entries (list_id);
        CREATE INDEX entries_identity ON entries (list_id, sha256, dhash, phash, pdq);
        CREATE INDEX entries_pdq ON entries (pdq) WHERE pdq IS NOT NULL;
        CREATE TRIGGER entries_insert AFTER INSERT ON entries BEGIN
            UPDATE counters SET value = value + 1 WHERE name = 'entries_added';
        END;
        CREATE TRIGGER entries_update
        AFTER UPDATE OF enabled, dhash, phash, sha256, pdq, pdq_quality ON entries
        BEGIN
            UPDATE counters SET value = value + 1 WHERE name = 'entries_changed';
        END;
        CREATE TRIGGER entries_delete AFTER DELETE ON entries BEGIN
            UPDATE counters SET value = value + 1 WHERE name = 'entries_changed';
        END;
        """,
    ),
    (
        7,
        "library changes are logged, so that an index snapshot is brought up to date",
        """
        CREATE TABLE library_changes (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            file_id INTEGER NOT NULL
        );
        INSERT INTO counters VALUES ('library_trimmed', 0),
            ('store_id', abs(random()) % 9007199254740991);
        CREATE TRIGGER files_library_insert AFTER INSERT ON files WHEN NEW.role = 'library'
        BEGIN
            INSERT INTO library_changes (file_id) VALUES (NEW.id);
        END;
        CREATE TRIGGER files_library_update AFTER UPDATE OF role, dhash, phash, flat, error
        ON files WHEN OLD.role = 'library' OR NEW.role = 'library'
        BEGIN
            INSERT INTO library_changes (file_id) VALUES (NEW.id);
        END;
        CREATE TRIGGER files_library_delete AFTER DELETE ON files WHEN OLD.role = 'library'
        BEGIN
            INSERT INTO library_changes (file_id) VALUES (OLD.id);
        END;
        """,
    ),
    (
        8,
        "batches of actions (one per scan --act); deleting from the quarantine is journalled",
        """
        CREATE TABLE batches (
            id INTEGER PRIMARY KEY,
            command TEXT NOT NULL,
            started REAL NOT NULL,
            finished REAL
        );
        -- dropping actions empties exemptions (ON DELETE CASCADE): keep them aside meanwhile
        CREATE TABLE exemptions_v8 AS SELECT * FROM exemptions;
        CREATE TABLE actions_v8 (
            id INTEGER PRIMARY KEY,
            kind TEXT NOT NULL
                CHECK (kind IN ('log', 'move', 'quarantine', 'restore', 'undo', 'delete')),
            state TEXT NOT NULL CHECK (state IN ('intended', 'done', 'failed', 'rolled_back',
                'undone', 'deleted')),
            src_root BLOB NOT NULL,
            src_rel BLOB NOT NULL,
            dst_root BLOB,
            dst_rel BLOB,
            tmp_name BLOB,
            sha256 TEXT NOT NULL,
            device INTEGER NOT NULL,
            inode INTEGER NOT NULL,
            size INTEGER NOT NULL,
            mtime_ns INTEGER NOT NULL,
            atime_ns INTEGER NOT NULL,
            uid INTEGER NOT NULL,
            gid INTEGER NOT NULL,
            mode INTEGER NOT NULL,
            verdict TEXT NOT NULL,
            evidence TEXT NOT NULL,
            rule TEXT NOT NULL,
            error TEXT,
            reverses INTEGER REFERENCES actions_v8 (id),
            created REAL NOT NULL,
            finished REAL,
            batch_id INTEGER REFERENCES batches (id)
        );
        INSERT INTO actions_v8 SELECT id, kind, state, src_root, src_rel, dst_root, dst_rel,
            tmp_name, sha256, device, inode, size, mtime_ns, atime_ns, uid, gid, mode, verdict,
            evidence, rule, error, reverses, created, finished, NULL
            FROM actions ORDER BY id;
        DROP TABLE actions;
        ALTER TABLE actions_v8 RENAME TO actions;
        INSERT INTO exemptions SELECT * FROM exemptions_v8;
        DROP TABLE exemptions_v8;
        CREATE INDEX actions_state ON actions (state);
        CREATE INDEX actions_kind ON actions (kind, state);
        CREATE INDEX actions_batch ON actions (batch_id) WHERE batch_id IS NOT NULL;
        CREATE INDEX actions_created ON actions (created);
        """,
    ),
    (
        9,
        "durable library decisions: keep this picture, these pictures are not duplicates",
        """
        CREATE TABLE decisions (
            id INTEGER PRIMARY KEY,
            kind TEXT NOT NULL CHECK (kind IN ('keep', 'not_duplicate')),
            sha256 TEXT NOT NULL,
            other TEXT NOT NULL DEFAULT '',
            paths TEXT NOT NULL,
            created REAL NOT NULL,
            UNIQUE (kind, sha256, other)
        );
        CREATE INDEX decisions_other ON decisions (other, kind);
        """,
    ),
    (
        10,
        "gentler actions: trash, hard links to the kept copy, deletion where allowed",
        """
        -- dropping actions empties exemptions (ON DELETE CASCADE): keep them aside meanwhile
        CREATE TABLE exemptions_v10 AS SELECT * FROM exemptions;
        CREATE TABLE actions_v10 (
            id INTEGER PRIMARY KEY,
            kind TEXT NOT NULL
                CHECK (kind IN ('log', 'move', 'quarantine', 'restore', 'undo', 'delete',
                'trash', 'hardlink')),
            state TEXT NOT NULL CHECK (state IN ('intended', 'done', 'failed', 'rolled_back',
                'undone', 'deleted')),
            src_root BLOB NOT NULL,
            src_rel BLOB NOT NULL,
            dst_root BLOB,
            dst_rel BLOB,
            tmp_name BLOB,
            sha256 TEXT NOT NULL,
            device INTEGER NOT NULL,
            inode INTEGER NOT NULL,
            size INTEGER NOT NULL,
            mtime_ns INTEGER NOT NULL,
            atime_ns INTEGER NOT NULL,
            uid INTEGER NOT NULL,
            gid INTEGER NOT NULL,
            mode INTEGER NOT NULL,
            verdict TEXT NOT NULL,
            evidence TEXT NOT NULL,
            rule TEXT NOT NULL,
            error TEXT,
            reverses INTEGER REFERENCES actions_v10 (id),
            created REAL NOT NULL,
            finished REAL,
            batch_id INTEGER REFERENCES batches (id)
        );
        INSERT INTO actions_v10 SELECT id, kind, state, src_root, src_rel, dst_root, dst_rel,
            tmp_name, sha256, device, inode, size, mtime_ns, atime_ns, uid, gid, mode, verdict,
            evidence, rule, error, reverses, created, finished, batch_id
            FROM actions ORDER BY id;
        DROP TABLE actions;
        ALTER TABLE actions_v10 RENAME TO actions;
        INSERT INTO exemptions SELECT * FROM exemptions_v10;
        DROP TABLE exemptions_v10;
        CREATE INDEX actions_state ON actions (state);
        CREATE INDEX actions_kind ON actions (kind, state);
        CREATE INDEX actions_batch ON actions (batch_id) WHERE batch_id IS NOT NULL;
        CREATE INDEX actions_created ON actions (created);
        """,
    ),
    (
        11,
        "entry regions: the centre crops of list entries made from a picture",
        """
        CREATE TABLE entry_regions (
            id INTEGER PRIMARY KEY,
            entry_id INTEGER NOT NULL REFERENCES entries (id) ON DELETE CASCADE,
            region TEXT NOT NULL CHECK (region IN ('crop2', 'crop5', 'crop10')),
            dhash INTEGER NOT NULL,
            phash INTEGER NOT NULL
        );
        CREATE UNIQUE INDEX entry_regions_entry ON entry_regions (entry_id, region);
        """,
    ),
    (
        12,
        "provenance of library files: camera, capture date, software, JPEG quality",
        """
        ALTER TABLE files ADD COLUMN camera TEXT;
        ALTER TABLE files ADD COLUMN captured TEXT;
        ALTER TABLE files ADD COLUMN software TEXT;
        ALTER TABLE files ADD COLUMN jpeg_quality INTEGER;
        """,
    ),
    (
        13,
        "inboxes: an arrival filed into its library (action 'file')",
        """
        -- dropping actions empties exemptions (ON DELETE CASCADE): keep them aside meanwhile
        CREATE TABLE exemptions_v13 AS SELECT * FROM exemptions;
        CREATE TABLE actions_v13 (
            id INTEGER PRIMARY KEY,
            kind TEXT NOT NULL
                CHECK (kind IN ('log', 'move', 'quarantine', 'restore', 'undo', 'delete',
                'trash', 'hardlink', 'file')),
            state TEXT NOT NULL CHECK (state IN ('intended', 'done', 'failed', 'rolled_back',
                'undone', 'deleted')),
            src_root BLOB NOT NULL,
            src_rel BLOB NOT NULL,
            dst_root BLOB,
            dst_rel BLOB,
            tmp_name BLOB,
            sha256 TEXT NOT NULL,
            device INTEGER NOT NULL,
            inode INTEGER NOT NULL,
            size INTEGER NOT NULL,
            mtime_ns INTEGER NOT NULL,
            atime_ns INTEGER NOT NULL,
            uid INTEGER NOT NULL,
            gid INTEGER NOT NULL,
            mode INTEGER NOT NULL,
            verdict TEXT NOT NULL,
            evidence TEXT NOT NULL,
            rule TEXT NOT NULL,
            error TEXT,
            reverses INTEGER REFERENCES actions_v13 (id),
            created REAL NOT NULL,
            finished REAL,
            batch_id INTEGER REFERENCES batches (id)
        );
        INSERT INTO actions_v13 SELECT id, kind, state, src_root, src_rel, dst_root, dst_rel,
            tmp_name, sha256, device, inode, size, mtime_ns, atime_ns, uid, gid, mode, verdict,
            evidence, rule, error, reverses, created, finished, batch_id
            FROM actions ORDER BY id;
        DROP TABLE actions;
        ALTER TABLE actions_v13 RENAME TO actions;
        INSERT INTO exemptions SELECT * FROM exemptions_v13;
        DROP TABLE exemptions_v13;
        CREATE INDEX actions_state ON actions (state);
        CREATE INDEX actions_kind ON actions (kind, state);
        CREATE INDEX actions_batch ON actions (batch_id) WHERE batch_id IS NOT NULL;
        CREATE INDEX actions_created ON actions (created);
        """,
    ),
    (
        14,
        "entry grids: the block means of list entries made from a picture",
        """
        CREATE TABLE entry_grids (
            entry_id INTEGER PRIMARY KEY REFERENCES entries (id) ON DELETE CASCADE,
            grid BLOB NOT NULL CHECK (length(grid) = 256)
        );
        """,
    ),
    (
        15,
        "recoloured copies: each list's setting, and the colours of entries made from a picture",
        """
        ALTER TABLE lists ADD COLUMN recoloured TEXT NOT NULL DEFAULT 'count'
            CHECK (recoloured IN ('count', 'ignore'));
        CREATE INDEX lists_recoloured ON lists (recoloured);
        CREATE TABLE entry_colours (
            entry_id INTEGER PRIMARY KEY REFERENCES entries (id) ON DELETE CASCADE,
            colours BLOB NOT NULL CHECK (length(colours) = 17)
        );
        """,
    ),
    (
        16,
        "each file's colour signature with its fingerprint (NULL: not computed)",
        """
        ALTER TABLE files ADD COLUMN colours BLOB
            CHECK (colours IS NULL OR length(colours) IN (0, 17));
        """,
    ),
)
