//! `image analyze`: what each layer adds, changes and removes, the bytes wasted on files a
//! later layer overwrites or deletes (they still ship in the image), and secrets found in
//! any layer, the config or the history (private keys, cloud access keys, tokens,
//! `password=` in ENV or ARG) — the two warnings of the chapter, as a tool.

use std::collections::BTreeMap;
use std::io::{self, Read};

use regex::bytes::Regex as BytesRegex;
use regex::Regex;
use serde::Serialize;

use crate::imageconfig::ImageConfig;

/// Why an image could not be analyzed.
#[derive(Debug, thiserror::Error)]
pub enum AnalyzeError {
    /// A layer stream is not a readable tar.
    #[error("reading layer {index} ({digest}): {source}")]
    Layer {
        /// Layer index from 0 (bottom).
        index: usize,
        /// The layer's digest.
        digest: String,
        /// Why.
        source: io::Error,
    },
}

impl AnalyzeError {
    /// The kind of failure.
    pub fn kind(&self) -> crate::Kind {
        crate::Kind::Io
    }
}

/// One layer's figures.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct LayerStats {
    /// From 0, bottom first.
    pub index: usize,
    /// The layer's diff ID.
    pub digest: String,
    /// The instruction that made it.
    pub created_by: String,
    /// Bytes of files new in this layer.
    pub added: u64,
    /// Bytes of files replacing a file of an earlier layer.
    pub changed: u64,
    /// Bytes of earlier files this layer deletes.
    pub removed: u64,
    /// Regular files in the layer.
    pub files: u64,
}

/// A file whose bytes ship in the image without being visible in it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Waste {
    /// Path in the image.
    pub path: String,
    /// Bytes wasted.
    pub bytes: u64,
    /// Layer that added the hidden copy.
    pub added_in: usize,
    /// Layer that deleted or overwrote it.
    pub hidden_in: usize,
    /// `deleted` or `overwritten`.
    pub how: String,
}

/// A secret found in the image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SecretFinding {
    /// `layer`, `config` or `history`.
    pub place: String,
    /// Layer or history index, when it applies.
    pub index: Option<usize>,
    /// File path, or the config field.
    pub path: String,
    /// What was found (`private key`, `AWS access key`...).
    pub what: String,
    /// True when a later layer deletes the file: still recoverable from the image.
    pub deleted_later: bool,
}

/// The whole analysis.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Analysis {
    /// Sum of the files' sizes over all layers.
    pub total_bytes: u64,
    /// Bytes visible in the final file system.
    pub visible_bytes: u64,
    /// Bytes of hidden copies.
    pub wasted_bytes: u64,
    /// Per layer.
    pub layers: Vec<LayerStats>,
    /// The biggest offenders first.
    pub wasted: Vec<Waste>,
    /// Secrets found.
    pub secrets: Vec<SecretFinding>,
    /// What to do about it.
    pub advice: Vec<String>,
}

struct Patterns {
    content: Vec<(&'static str, BytesRegex)>,
    names: Vec<(&'static str, Regex)>,
    env: Regex,
    history: Vec<(&'static str, Regex)>,
}

fn patterns() -> Patterns {
    let b = |s: &str| BytesRegex::new(s).expect("a valid built-in pattern");
    let r = |s: &str| Regex::new(s).expect("a valid built-in pattern");
    Patterns {
        content: vec![
            (
                "private key",
                b(r"-----BEGIN ((RSA|DSA|EC|OPENSSH|ENCRYPTED|PGP) )?PRIVATE KEY( BLOCK)?-----"),
            ),
            ("AWS access key", b(r"\b(AKIA|ASIA)[0-9A-Z]{16}\b")),
            (
                "AWS secret key",
                b(r"(?i)aws_secret_access_key\s*[=:]\s*\S{20,}"),
            ),
            (
                "GitHub token",
                b(r"\b(ghp|gho|ghu|ghs|ghr)_[A-Za-z0-9]{36}\b|\bgithub_pat_[A-Za-z0-9_]{40,}"),
            ),
            ("Slack token", b(r"\bxox[abprs]-[A-Za-z0-9-]{10,}")),
            ("Google API key", b(r"\bAIza[0-9A-Za-z_-]{35}\b")),
            (
                "password assignment",
                b(r#"(?i)(password|passwd|secret|api_key|apikey|token)\s*=\s*['"]?[^\s'"$]{6,}"#),
            ),
        ],
        names: vec![
            (
                "SSH private key file",
                r(r"(^|/)id_(rsa|dsa|ecdsa|ed25519)$"),
            ),
            (".env file", r(r"(^|/)\.env(\.[A-Za-z0-9_-]+)?$")),
            ("key file", r(r"\.(pem|key|p12|pfx|jks)$")),
            (
                "credentials file",
                r(
                    r"(^|/)(\.aws/credentials|\.git-credentials|\.netrc|\.pgpass|\.npmrc|\.pypirc|\.docker/config\.json|credentials\.json)$",
                ),
            ),
        ],
        env: r(r"(?i)(password|passwd|secret|token|api_?key|access_?key|private_?key)"),
        history: vec![
            (
                "password in a build argument or command",
                r(r#"(?i)(password|passwd|secret|token|api_?key)=[^\s'"$]{3,}"#),
            ),
            ("AWS access key", r(r"\b(AKIA|ASIA)[0-9A-Z]{16}\b")),
        ],
    }
}

/// Biggest offenders kept in [`Analysis::wasted`].
pub const MAX_OFFENDERS: usize = 20;
/// Files larger than this are not scanned for secret contents.
pub const MAX_SCAN: u64 = 4 << 20;

/// Analyzes an image: `layers` are (diff ID, uncompressed tar stream) bottom first.
pub fn analyze<'a>(
    config: &ImageConfig,
    layers: impl IntoIterator<Item = (String, Box<dyn Read + 'a>)>,
) -> Result<Analysis, AnalyzeError> {
    let pats = patterns();
    let layer_history: Vec<String> = config
        .history
        .iter()
        .filter(|h| !h.empty_layer)
        .map(|h| h.created_by.clone().unwrap_or_default())
        .collect();
    // path -> (layer, size) of the visible regular file.
    let mut visible: BTreeMap<String, (usize, u64)> = BTreeMap::new();
    let mut out = Analysis::default();
    let mut waste: Vec<Waste> = Vec::new();
    let mut secret_files: Vec<(usize, String, &'static str)> = Vec::new();
    for (index, (digest, reader)) in layers.into_iter().enumerate() {
        let mut st = LayerStats {
            index,
            digest: digest.clone(),
            created_by: layer_history.get(index).cloned().unwrap_or_default(),
            ..Default::default()
        };
        let lerr = |source: io::Error| AnalyzeError::Layer {
            index,
            digest: digest.clone(),
            source,
        };
        let mut ar = tar::Archive::new(reader);
        let hide = |visible: &mut BTreeMap<String, (usize, u64)>,
                    st: &mut LayerStats,
                    waste: &mut Vec<Waste>,
                    prefix: &str,
                    exact: bool,
                    how: &str| {
            let below = format!("{prefix}/");
            let keys: Vec<String> = visible
                .keys()
                .filter(|p| {
                    if exact {
                        p.as_str() == prefix || p.starts_with(&below)
                    } else {
                        p.starts_with(prefix)
                    }
                })
                .cloned()
                .collect();
            for k in keys {
                if let Some((from, size)) = visible.get(&k).copied() {
                    if from >= index {
                        continue;
                    }
                    visible.remove(&k);
                    if how == "deleted" {
                        st.removed += size;
                    }
                    if size > 0 {
                        waste.push(Waste {
                            path: format!("/{k}"),
                            bytes: size,
                            added_in: from,
                            hidden_in: index,
                            how: how.to_owned(),
                        });
                    }
                }
            }
        };
        for entry in ar.entries().map_err(lerr)? {
            let mut entry = entry.map_err(lerr)?;
            let raw = entry.path().map_err(lerr)?.to_string_lossy().into_owned();
            let path = crate::ignore::clean(&format!("/{raw}"));
            if path == "." {
                continue;
            }
            let (dir, base) = match path.rsplit_once('/') {
                Some((d, b)) => (d.to_owned(), b.to_owned()),
                None => (String::new(), path.clone()),
            };
            if base == ".wh..wh..opq" {
                let prefix = if dir.is_empty() {
                    String::new()
                } else {
                    format!("{dir}/")
                };
                hide(&mut visible, &mut st, &mut waste, &prefix, false, "deleted");
                continue;
            }
            if let Some(name) = base.strip_prefix(".wh.") {
                let target = crate::context::join_rel(&dir, name);
                hide(&mut visible, &mut st, &mut waste, &target, true, "deleted");
                continue;
            }
            let kind = entry.header().entry_type();
            if !kind.is_file() {
                if !kind.is_dir() {
                    hide(
                        &mut visible,
                        &mut st,
                        &mut waste,
                        &path,
                        true,
                        "overwritten",
                    );
                }
                continue;
            }
            let size = entry.size();
            st.files += 1;
            out.total_bytes += size;
            if visible.get(&path).is_some_and(|(from, _)| *from < index) {
                st.changed += size;
                hide(
                    &mut visible,
                    &mut st,
                    &mut waste,
                    &path,
                    true,
                    "overwritten",
                );
            } else {
                st.added += size;
            }
            visible.insert(path.clone(), (index, size));
            for (what, re) in &pats.names {
                if re.is_match(&path) {
                    secret_files.push((index, path.clone(), what));
                }
            }
            if size <= MAX_SCAN && size > 0 {
                let mut buf = Vec::with_capacity(size as usize);
                (&mut entry)
                    .take(size)
                    .read_to_end(&mut buf)
                    .map_err(lerr)?;
                for (what, re) in &pats.content {
                    if re.is_match(&buf) {
                        secret_files.push((index, path.clone(), what));
                        break;
                    }
                }
            }
        }
        out.layers.push(st);
    }
    out.visible_bytes = visible.values().map(|(_, s)| *s).sum();
    out.wasted_bytes = waste.iter().map(|w| w.bytes).sum();
    waste.sort_by(|a, b| b.bytes.cmp(&a.bytes).then(a.path.cmp(&b.path)));
    waste.truncate(MAX_OFFENDERS);
    out.wasted = waste;
    for (index, path, what) in secret_files {
        let shown = format!("/{path}");
        // One finding per file: a name and a content match are reported together.
        if let Some(f) = out
            .secrets
            .iter_mut()
            .find(|f| f.index == Some(index) && f.path == shown)
        {
            f.what = format!("{}, {what}", f.what);
            continue;
        }
        let still = visible.get(&path).is_some_and(|(l, _)| *l == index);
        out.secrets.push(SecretFinding {
            place: "layer".into(),
            index: Some(index),
            path: format!("/{path}"),
            what: what.to_owned(),
            deleted_later: !still,
        });
    }
    for kv in &config.config.env {
        let (k, v) = kv.split_once('=').unwrap_or((kv.as_str(), ""));
        if pats.env.is_match(k) && !v.is_empty() {
            out.secrets.push(SecretFinding {
                place: "config".into(),
                index: None,
                path: format!("Env {k}"),
                what: "secret-looking environment variable".into(),
                deleted_later: false,
            });
        }
    }
    for (i, h) in config.history.iter().enumerate() {
        let text = h.created_by.clone().unwrap_or_default();
        for (what, re) in &pats.history {
            if re.is_match(&text) {
                out.secrets.push(SecretFinding {
                    place: "history".into(),
                    index: Some(i),
                    path: text.chars().take(80).collect(),
                    what: (*what).to_owned(),
                    deleted_later: false,
                });
                break;
            }
        }
    }
    if out.wasted_bytes > 0 {
        out.advice.push("Files deleted or overwritten by a later layer still ship in the image: delete them in the same RUN that creates them (`RUN make && rm -rf build/`), or build in a separate stage and COPY --from only the result.".into());
    }
    if !out.secrets.is_empty() {
        out.advice.push("Secrets in any layer, the config or the history stay readable by anyone who pulls the image, even if a later layer deletes them: pass them to the one RUN that needs them with `RUN --mount=type=secret,id=NAME` and `berth build --secret id=NAME,src=FILE`, and rotate the ones already shipped.".into());
    }
    Ok(out)
}

/// Parses a byte size like `10MB`, `1.5GiB`, `512k`, `100` (bytes).
pub fn parse_size(s: &str) -> Option<u64> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let n: f64 = t[..split].parse().ok()?;
    let mult: f64 = match t[split..].trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "k" | "kb" => 1e3,
        "kib" => 1024.0,
        "m" | "mb" => 1e6,
        "mib" => 1048576.0,
        "g" | "gb" => 1e9,
        "gib" => 1073741824.0,
        _ => return None,
    };
    Some((n * mult) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::imageconfig::History;
    use crate::layertar::{EntryMeta, LayerWriter};

    const M: EntryMeta = EntryMeta {
        mode: 0o644,
        uid: 0,
        gid: 0,
        mtime: 0,
    };

    fn layer(files: &[(&str, &[u8])]) -> Vec<u8> {
        let mut w = LayerWriter::new(Vec::new(), None);
        for (p, c) in files {
            w.file(p, M, c.len() as u64, *c).expect("file");
        }
        w.finish().expect("tar")
    }

    fn run(layers: Vec<Vec<u8>>, config: &ImageConfig) -> Analysis {
        let streams: Vec<(String, Box<dyn Read>)> = layers
            .into_iter()
            .enumerate()
            .map(|(i, l)| {
                (
                    format!("sha256:{i}"),
                    Box::new(io::Cursor::new(l)) as Box<dyn Read>,
                )
            })
            .collect();
        analyze(config, streams).expect("analyze")
    }

    #[test]
    fn bigfile_deleted_later_is_wasted() {
        let big = vec![0u8; 1 << 20];
        let a = run(
            vec![
                layer(&[("bin/sh", b"sh")]),
                layer(&[("BigFile", &big)]),
                layer(&[(".wh.BigFile", b"")]),
            ],
            &ImageConfig::default(),
        );
        assert_eq!(a.wasted_bytes, 1 << 20);
        assert_eq!(a.wasted[0].path, "/BigFile");
        assert_eq!((a.wasted[0].added_in, a.wasted[0].hidden_in), (1, 2));
        assert_eq!(a.layers[1].added, 1 << 20);
        assert_eq!(a.layers[2].removed, 1 << 20);
        assert_eq!(a.visible_bytes, 2);
        assert!(a.advice[0].contains("same RUN"));
    }

    #[test]
    fn overwrite_and_opaque() {
        let a = run(
            vec![
                layer(&[("etc/conf", b"12345"), ("d/x", b"xx"), ("d/y", b"y")]),
                layer(&[("etc/conf", b"123"), ("d/.wh..wh..opq", b"")]),
            ],
            &ImageConfig::default(),
        );
        assert_eq!(a.layers[1].changed, 3);
        assert_eq!(a.layers[1].removed, 3);
        assert_eq!(a.wasted_bytes, 5 + 3);
        assert_eq!(a.wasted[0].how, "overwritten");
    }

    #[test]
    fn secrets_in_layers_config_and_history() {
        let key = b"-----BEGIN OPENSSH PRIVATE KEY-----\nabc\n-----END OPENSSH PRIVATE KEY-----\n";
        let mut config = ImageConfig::default();
        config.config.env = vec!["DB_PASSWORD=hunter2".into(), "PATH=/bin".into()];
        config.history = vec![
            History {
                created_by: Some("COPY id_rsa /root/.ssh/id_rsa".into()),
                ..Default::default()
            },
            History {
                created_by: Some("RUN rm /root/.ssh/id_rsa".into()),
                ..Default::default()
            },
            History {
                created_by: Some("RUN |1 API_TOKEN=abcdef123 /bin/sh -c x".into()),
                empty_layer: true,
                ..Default::default()
            },
        ];
        let a = run(
            vec![
                layer(&[
                    ("root/.ssh/id_rsa", key),
                    ("app/creds", b"AKIAABCDEFGHIJKLMNOP"),
                ]),
                layer(&[("root/.ssh/.wh.id_rsa", b"")]),
            ],
            &config,
        );
        let key_hit = a
            .secrets
            .iter()
            .find(|s| s.path == "/root/.ssh/id_rsa")
            .expect("key found");
        assert!(key_hit.deleted_later);
        assert!(a
            .secrets
            .iter()
            .any(|s| s.what == "AWS access key" && s.path == "/app/creds"));
        assert!(a
            .secrets
            .iter()
            .any(|s| s.place == "config" && s.path == "Env DB_PASSWORD"));
        assert!(a
            .secrets
            .iter()
            .any(|s| s.place == "history" && s.index == Some(2)));
        assert!(a.advice.iter().any(|x| x.contains("--mount=type=secret")));
        assert_eq!(a.layers[0].created_by, "COPY id_rsa /root/.ssh/id_rsa");
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("10MB"), Some(10_000_000));
        assert_eq!(parse_size("1.5KiB"), Some(1536));
        assert_eq!(parse_size("7"), Some(7));
        assert_eq!(parse_size("x"), None);
    }
}
