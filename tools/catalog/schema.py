"""The catalog's schema: forward migrations (``MIGRATIONS[i]`` takes version ``i`` to ``i + 1``) and its enums."""

from __future__ import annotations

from typing import Literal

CaptionSource = Literal["human", "template", "tags", "blip", "blip2", "feedback"]
#: caption sources; ``feedback`` captions are the query texts of relevant marks (tools.feedback)
CAPTION_SOURCES: tuple[str, ...] = ("human", "template", "tags", "blip", "blip2", "feedback")
JobState = Literal["queued", "running", "succeeded", "failed", "cancelled", "abandoned"]
#: the states a job ends in
FINISHED_STATES: tuple[str, ...] = ("succeeded", "failed", "cancelled", "abandoned")

MIGRATIONS: list[str] = [
    # 0 -> 1: images, labels, captions, datasets, jobs.
    """
    CREATE TABLE images (
        id          TEXT PRIMARY KEY,              -- sha256 of the file bytes
        uri         TEXT NOT NULL,                 -- absolute path (or URL) where it was found
        width       INTEGER,
        height      INTEGER,
        bands       INTEGER,
        format      TEXT,
        mode        TEXT,
        source      TEXT,                          -- which collection it came from
        bounds      TEXT,                          -- JSON [minx, miny, maxx, maxy] or NULL
        crs         TEXT,
        metadata    TEXT NOT NULL DEFAULT '{}',    -- JSON: tags, manifest fields, split hint
        status      TEXT NOT NULL CHECK (status IN ('ok', 'rejected')),
        reason      TEXT,                          -- why it was rejected
        added_at    REAL NOT NULL
    );
    CREATE INDEX images_status ON images(status);
    CREATE INDEX images_uri ON images(uri);
    CREATE INDEX images_source ON images(source);
    CREATE TABLE labels (
        image_id    TEXT NOT NULL REFERENCES images(id) ON DELETE CASCADE,
        label       TEXT NOT NULL,
        PRIMARY KEY (image_id, label)
    );
    CREATE INDEX labels_label ON labels(label);
    CREATE TABLE captions (
        id          INTEGER PRIMARY KEY,
        image_id    TEXT NOT NULL REFERENCES images(id) ON DELETE CASCADE,
        text        TEXT NOT NULL,
        source      TEXT NOT NULL CHECK (source IN ('human', 'template', 'tags', 'blip', 'blip2')),
        model       TEXT,
        created_at  REAL NOT NULL,
        UNIQUE (image_id, source, text)
    );
    CREATE INDEX captions_image ON captions(image_id, source);
    CREATE TABLE datasets (
        id          TEXT PRIMARY KEY,
        name        TEXT NOT NULL,
        params      TEXT NOT NULL,                 -- JSON: how the split was made
        created_at  REAL NOT NULL
    );
    CREATE TABLE dataset_items (
        dataset_id  TEXT NOT NULL REFERENCES datasets(id) ON DELETE CASCADE,
        image_id    TEXT NOT NULL REFERENCES images(id),
        split       TEXT NOT NULL CHECK (split IN ('train', 'val', 'test')),
        PRIMARY KEY (dataset_id, image_id)
    );
    CREATE INDEX dataset_items_split ON dataset_items(dataset_id, split);
    CREATE TABLE jobs (
        id          TEXT PRIMARY KEY,
        kind        TEXT NOT NULL,
        state       TEXT NOT NULL CHECK (state IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')),
        done        INTEGER NOT NULL DEFAULT 0,
        total       INTEGER,
        params      TEXT NOT NULL DEFAULT '{}',
        result      TEXT,
        error       TEXT,
        created_at  REAL NOT NULL,
        started_at  REAL,
        updated_at  REAL,
        finished_at REAL
    );
    CREATE INDEX jobs_kind_state ON jobs(kind, state);
    """,
    # 1 -> 2: model versions, evaluations, index versions and aliases, planner decisions, search feedback.
    """
    CREATE TABLE model_versions (
        id          TEXT PRIMARY KEY,              -- mv-...
        arch        TEXT NOT NULL,                 -- open_clip architecture
        base        TEXT NOT NULL,                 -- the model spec training started from
        parent      TEXT,                          -- parent model version id, when it was one
        dataset_id  TEXT REFERENCES datasets(id),
        checkpoint  TEXT NOT NULL,                 -- path of the weights
        params      TEXT NOT NULL DEFAULT '{}',    -- hyper-parameters and training summary
        status      TEXT NOT NULL CHECK (status IN ('candidate', 'active', 'retired', 'rejected')),
        created_at  REAL NOT NULL,
        promoted_at REAL
    );
    CREATE TABLE evaluations (
        id          INTEGER PRIMARY KEY,
        model       TEXT NOT NULL,                 -- model version id or model spec
        dataset     TEXT NOT NULL,                 -- dataset version id or manifest path
        split       TEXT NOT NULL,
        kind        TEXT NOT NULL,                 -- zeroshot | retrieval
        metrics     TEXT NOT NULL,
        created_at  REAL NOT NULL
    );
    CREATE INDEX evaluations_model ON evaluations(model, dataset, split, kind);
    CREATE TABLE indexes (
        name        TEXT PRIMARY KEY,              -- table / collection name
        model       TEXT NOT NULL,
        store       TEXT NOT NULL,
        dim         INTEGER NOT NULL,
        state       TEXT NOT NULL CHECK (state IN ('building', 'complete', 'failed', 'dropped')),
        count       INTEGER NOT NULL DEFAULT 0,
        created_at  REAL NOT NULL,
        completed_at REAL
    );
    CREATE TABLE aliases (
        name        TEXT PRIMARY KEY,              -- e.g. active_model, active_index:lancedb
        target      TEXT NOT NULL,
        updated_at  REAL NOT NULL
    );
    CREATE TABLE decisions (
        id          INTEGER PRIMARY KEY,
        action      TEXT NOT NULL,
        reason      TEXT NOT NULL,
        evidence    TEXT NOT NULL DEFAULT '{}',
        actor       TEXT NOT NULL DEFAULT 'planner',
        outcome     TEXT,
        created_at  REAL NOT NULL
    );
    CREATE TABLE feedback (
        id          INTEGER PRIMARY KEY,
        query_id    TEXT,
        query       TEXT,
        image_id    TEXT NOT NULL,
        relevant    INTEGER NOT NULL,
        model       TEXT,
        used_in     TEXT,                          -- model version trained with it, once used
        created_at  REAL NOT NULL
    );
    """,
    # 2 -> 3: scenes (large georeferenced rasters) and chips (images that are windows of a scene).
    """
    CREATE TABLE scenes (
        id          TEXT PRIMARY KEY,              -- sha256 of the file bytes
        uri         TEXT NOT NULL,                 -- absolute path
        width       INTEGER NOT NULL,
        height      INTEGER NOT NULL,
        bands       INTEGER NOT NULL,
        dtype       TEXT NOT NULL,
        crs         TEXT,                          -- NULL: not georeferenced
        transform   TEXT,                          -- JSON geotransform, GDAL order
        nodata      REAL,
        gsd         REAL,                          -- metres per pixel
        footprint   TEXT,                          -- GeoJSON polygon in EPSG:4326
        west        REAL,
        south       REAL,
        east        REAL,
        north       REAL,
        file_size   INTEGER,
        mtime       REAL,
        source      TEXT,
        metadata    TEXT NOT NULL DEFAULT '{}',    -- JSON: chipping runs, broken windows
        added_at    REAL NOT NULL
    );
    CREATE INDEX scenes_uri ON scenes(uri);
    ALTER TABLE images ADD COLUMN scene_id TEXT REFERENCES scenes(id);
    ALTER TABLE images ADD COLUMN chip_window TEXT;
    ALTER TABLE images ADD COLUMN footprint TEXT;
    ALTER TABLE images ADD COLUMN west REAL;
    ALTER TABLE images ADD COLUMN south REAL;
    ALTER TABLE images ADD COLUMN east REAL;
    ALTER TABLE images ADD COLUMN north REAL;
    CREATE INDEX images_scene ON images(scene_id);
    CREATE INDEX images_lonlat ON images(west, east);
    """,
    # 3 -> 4: jobs get an owner (pid, host, process start), a heartbeat, a cancel request, the state
    # 'abandoned' and their origin. One feedback mark per (query, image). Model files deleted by retention.
    """
    CREATE TABLE jobs_v4 (
        id          TEXT PRIMARY KEY,
        kind        TEXT NOT NULL,
        state       TEXT NOT NULL CHECK (state IN ('queued', 'running', 'succeeded', 'failed', 'cancelled',
                                                   'abandoned')),
        done        INTEGER NOT NULL DEFAULT 0,
        total       INTEGER,
        params      TEXT NOT NULL DEFAULT '{}',
        result      TEXT,
        error       TEXT,
        created_at  REAL NOT NULL,
        started_at  REAL,
        updated_at  REAL,
        finished_at REAL,
        owner_pid   INTEGER,                       -- the process running the job
        owner_host  TEXT,                          -- its host name
        owner_start TEXT,                          -- boot id and process start time: a reused pid is not it
        heartbeat_at REAL,                         -- written every few seconds while the job runs
        cancel_requested_at REAL,                  -- set by `skyscout jobs cancel`: the job stops at its next batch
        origin      TEXT                           -- what started it, e.g. chat:<thread id>
    );
    INSERT INTO jobs_v4 (id, kind, state, done, total, params, result, error, created_at, started_at, updated_at,
                         finished_at)
        SELECT id, kind, state, done, total, params, result, error, created_at, started_at, updated_at, finished_at
        FROM jobs;
    DROP TABLE jobs;
    ALTER TABLE jobs_v4 RENAME TO jobs;
    CREATE INDEX jobs_kind_state ON jobs(kind, state);
    CREATE INDEX jobs_state ON jobs(state);
    DELETE FROM feedback WHERE id NOT IN (SELECT MAX(id) FROM feedback GROUP BY COALESCE(query_id, ''), image_id);
    CREATE UNIQUE INDEX feedback_query_image ON feedback(COALESCE(query_id, ''), image_id);
    ALTER TABLE model_versions ADD COLUMN files_deleted_at REAL;
    """,
    # 4 -> 5: concepts (named, saved searches a user labels), feedback marks that belong to a concept (one mark
    # per concept or query, and image), and captions written from relevant marks (source 'feedback').
    """
    CREATE TABLE concepts (
        id          TEXT PRIMARY KEY,              -- c-<hex>
        name        TEXT NOT NULL,
        name_key    TEXT NOT NULL UNIQUE,          -- the name folded to lower case: names are unique without case
        texts       TEXT NOT NULL DEFAULT '[]',    -- JSON list: the query texts (empty: the name is the text)
        image_ids   TEXT NOT NULL DEFAULT '[]',    -- JSON list: example images
        negative_texts TEXT NOT NULL DEFAULT '[]', -- JSON list: what the results should not show
        created_at  REAL NOT NULL,
        updated_at  REAL NOT NULL
    );
    ALTER TABLE feedback ADD COLUMN concept_id TEXT;
    DROP INDEX feedback_query_image;
    CREATE UNIQUE INDEX feedback_mark ON feedback(COALESCE(concept_id, ''), COALESCE(query_id, ''), image_id);
    CREATE INDEX feedback_concept ON feedback(concept_id);
    CREATE TABLE captions_v5 (
        id          INTEGER PRIMARY KEY,
        image_id    TEXT NOT NULL REFERENCES images(id) ON DELETE CASCADE,
        text        TEXT NOT NULL,
        source      TEXT NOT NULL CHECK (source IN ('human', 'template', 'tags', 'blip', 'blip2', 'feedback')),
        model       TEXT,
        created_at  REAL NOT NULL,
        UNIQUE (image_id, source, text)
    );
    INSERT INTO captions_v5 (id, image_id, text, source, model, created_at)
        SELECT id, image_id, text, source, model, created_at FROM captions;
    DROP TABLE captions;
    ALTER TABLE captions_v5 RENAME TO captions;
    CREATE INDEX captions_image ON captions(image_id, source);
    """,
]
