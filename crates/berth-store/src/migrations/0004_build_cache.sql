-- Build cache (issue 5): the layer each build step produced, by step key. A key is the
-- digest of the parent step's key and the expanded instruction (plus, for COPY/ADD, the
-- content of what it reads). `builder prune` empties the table.
CREATE TABLE build_cache (
    key          TEXT PRIMARY KEY,   -- sha256:<hex> of the step
    diff_id      TEXT NOT NULL,      -- the layer's uncompressed digest
    blob_digest  TEXT NOT NULL,      -- the layer blob
    blob_size    INTEGER NOT NULL,
    media_type   TEXT NOT NULL,
    created      TEXT NOT NULL,      -- RFC 3339 time the step first ran (history reuses it)
    last_used    INTEGER NOT NULL    -- unix seconds
);
