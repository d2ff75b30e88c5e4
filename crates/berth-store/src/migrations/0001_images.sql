-- Images, tags and layers (issue 2).
CREATE TABLE layers (
    chain_id    TEXT PRIMARY KEY,          -- sha256:... of the layer chain
    diff_id     TEXT NOT NULL,             -- digest of the uncompressed tar
    blob_digest TEXT NOT NULL,             -- digest of the blob as stored (maybe compressed)
    media_type  TEXT NOT NULL,
    blob_size   INTEGER NOT NULL,
    parent      TEXT REFERENCES layers(chain_id),
    size        INTEGER NOT NULL,          -- bytes of unpacked content
    refcount    INTEGER NOT NULL DEFAULT 0,-- number of image_layers rows naming it
    created     INTEGER NOT NULL
);
CREATE TABLE images (
    id                  TEXT PRIMARY KEY,  -- config digest
    manifest_digest     TEXT NOT NULL,
    manifest_media_type TEXT NOT NULL,
    created             TEXT NOT NULL,     -- RFC 3339 from the config (may be empty)
    created_unix        INTEGER NOT NULL,
    size                INTEGER NOT NULL,  -- sum of unpacked layer sizes
    added               INTEGER NOT NULL,  -- when it entered this store
    last_tag_time       INTEGER
);
CREATE TABLE image_layers (
    image_id TEXT NOT NULL REFERENCES images(id) ON DELETE CASCADE,
    position INTEGER NOT NULL,
    chain_id TEXT NOT NULL REFERENCES layers(chain_id),
    PRIMARY KEY (image_id, position)
);
CREATE INDEX image_layers_chain ON image_layers(chain_id);
CREATE TABLE tags (
    reference TEXT PRIMARY KEY,            -- full normalized reference: docker.io/library/x:1
    image_id  TEXT NOT NULL REFERENCES images(id) ON DELETE CASCADE,
    created   INTEGER NOT NULL
);
CREATE INDEX tags_image ON tags(image_id);
CREATE TABLE repo_digests (
    reference TEXT PRIMARY KEY,            -- docker.io/library/x@sha256:...
    image_id  TEXT NOT NULL REFERENCES images(id) ON DELETE CASCADE
);
CREATE INDEX repo_digests_image ON repo_digests(image_id);
-- Who else holds an image (containers, build cache): rmi refuses without force.
CREATE TABLE image_users (
    image_id TEXT NOT NULL,
    user     TEXT NOT NULL,                -- e.g. 'container:<id>'
    PRIMARY KEY (image_id, user)
);
-- Blobs that something other than an image or layer keeps alive (build cache, pulls in
-- progress): garbage collection keeps every digest named here.
CREATE TABLE blob_refs (
    digest TEXT NOT NULL,
    holder TEXT NOT NULL,
    PRIMARY KEY (digest, holder)
);
