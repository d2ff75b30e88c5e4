-- Volumes (issue 14): named and anonymous volumes of the local driver, and the containers
-- that mount them (a volume with a user that still has a container row is in use).
CREATE TABLE volumes (
    name      TEXT PRIMARY KEY,            -- [a-zA-Z0-9][a-zA-Z0-9_.-]+
    driver    TEXT NOT NULL,               -- local
    labels    TEXT NOT NULL DEFAULT '{}',  -- JSON object
    options   TEXT NOT NULL DEFAULT '{}',  -- JSON object: type, device, o
    anonymous INTEGER NOT NULL DEFAULT 0,
    created   INTEGER NOT NULL             -- unix nanoseconds
);
CREATE TABLE volume_users (
    volume       TEXT NOT NULL REFERENCES volumes(name) ON DELETE CASCADE,
    container_id TEXT NOT NULL,
    PRIMARY KEY (volume, container_id)
);
CREATE INDEX volume_users_container ON volume_users(container_id);
