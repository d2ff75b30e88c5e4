-- Containers (issue 3): one row per container, its status and its last run.
CREATE TABLE containers (
    id              TEXT PRIMARY KEY,      -- 64 hex digits
    name            TEXT NOT NULL UNIQUE,  -- without Docker's leading '/'
    image_id        TEXT NOT NULL,         -- sha256:... config digest
    image_ref       TEXT NOT NULL,         -- the image as the user named it
    created         INTEGER NOT NULL,      -- unix nanoseconds
    status          TEXT NOT NULL,         -- created, running, restarting, exited, removing, dead
    pid             INTEGER NOT NULL DEFAULT 0,
    pid_start       INTEGER NOT NULL DEFAULT 0,  -- /proc/<pid>/stat start time, against pid reuse
    monitor_pid     INTEGER NOT NULL DEFAULT 0,
    monitor_start   INTEGER NOT NULL DEFAULT 0,
    exit_code       INTEGER NOT NULL DEFAULT 0,
    oom_killed      INTEGER NOT NULL DEFAULT 0,
    started_at      INTEGER NOT NULL DEFAULT 0,  -- unix nanoseconds, 0 = never
    finished_at     INTEGER NOT NULL DEFAULT 0,
    restart_count   INTEGER NOT NULL DEFAULT 0,
    stopped_by_user INTEGER NOT NULL DEFAULT 0,
    error           TEXT NOT NULL DEFAULT '',
    config          TEXT NOT NULL              -- JSON: the engine's container configuration
);
CREATE INDEX containers_image ON containers(image_id);
