//! `images`: the list of images, filtered as `--filter` asks.

use berth_oci::{Digest, ImageRef};

use super::ImageError;
use crate::{Engine, Error};

/// One `--filter` of `images`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageFilter {
    /// `dangling=true|false`: images without any tag (or with).
    Dangling(bool),
    /// `reference=PATTERN`: a glob on `name` or `name:tag` (familiar form).
    Reference(String),
    /// `before=IMAGE`: created before that image.
    Before(String),
    /// `since=IMAGE`: created after that image.
    Since(String),
    /// `label=KEY` or `label=KEY=VALUE`.
    Label(String, Option<String>),
}

impl ImageFilter {
    /// Parses `key=value` as Docker's `--filter` does.
    pub fn parse(s: &str) -> Result<ImageFilter, ImageError> {
        let (k, v) = s
            .split_once('=')
            .ok_or_else(|| ImageError::BadFilter(s.to_owned()))?;
        match k.to_ascii_lowercase().as_str() {
            "dangling" => match v.to_ascii_lowercase().as_str() {
                "true" | "1" => Ok(ImageFilter::Dangling(true)),
                "false" | "0" => Ok(ImageFilter::Dangling(false)),
                _ => Err(ImageError::BadFilter(s.to_owned())),
            },
            "reference" => Ok(ImageFilter::Reference(v.to_owned())),
            "before" => Ok(ImageFilter::Before(v.to_owned())),
            "since" => Ok(ImageFilter::Since(v.to_owned())),
            "label" => Ok(match v.split_once('=') {
                Some((k, v)) => ImageFilter::Label(k.to_owned(), Some(v.to_owned())),
                None => ImageFilter::Label(v.to_owned(), None),
            }),
            _ => Err(ImageError::BadFilter(s.to_owned())),
        }
    }
}

/// What `images` lists.
#[derive(Debug, Clone, Default)]
pub struct ListOptions {
    /// `-a`: include intermediate images (berth keeps none apart, so the same list).
    pub all: bool,
    /// `--filter`s, all of which must match.
    pub filters: Vec<ImageFilter>,
}

/// One image as `images` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageSummary {
    /// Image ID.
    pub id: Digest,
    /// Tags, familiar form (`busybox:latest`), sorted.
    pub tags: Vec<String>,
    /// References by digest, familiar form (`busybox@sha256:...`).
    pub repo_digests: Vec<String>,
    /// The manifest digest.
    pub manifest_digest: Digest,
    /// Creation time from the config (RFC 3339).
    pub created: String,
    /// The same in Unix seconds.
    pub created_unix: i64,
    /// Unpacked size in bytes.
    pub size: u64,
    /// How many users (containers) hold it.
    pub containers: usize,
}

impl Engine {
    /// Lists images, newest first.
    pub fn list_images(&self, opts: &ListOptions) -> Result<Vec<ImageSummary>, Error> {
        let mut bounds = Vec::new();
        for f in &opts.filters {
            match f {
                ImageFilter::Before(i) | ImageFilter::Since(i) => {
                    let id = self.resolve_image(i)?;
                    let created = self.image_record(&id)?.created_unix;
                    bounds.push((matches!(f, ImageFilter::Before(_)), created, id));
                }
                _ => {}
            }
        }
        // `reference=` (and `images REPO`) select tags, not images: only the tags that
        // match some pattern are shown, as Docker does.
        let patterns: Vec<&str> = opts
            .filters
            .iter()
            .filter_map(|f| match f {
                ImageFilter::Reference(p) => Some(p.as_str()),
                _ => None,
            })
            .collect();
        let wanted = |full: &String| {
            patterns.is_empty() || patterns.iter().any(|p| reference_matches(p, full))
        };
        let mut out = Vec::new();
        for rec in self.store.list_images()? {
            let tags: Vec<String> = rec
                .tags
                .iter()
                .filter(|t| wanted(t))
                .map(|t| super::familiar(t))
                .collect();
            let digests: Vec<String> = rec
                .repo_digests
                .iter()
                .filter(|t| wanted(t))
                .map(|t| super::familiar(t))
                .collect();
            let mut keep = true;
            for f in &opts.filters {
                keep &= match f {
                    ImageFilter::Dangling(d) => tags.is_empty() == *d,
                    ImageFilter::Reference(_) => !tags.is_empty() || !digests.is_empty(),
                    ImageFilter::Label(k, v) => {
                        let cfg = self.image_config(&rec.id)?;
                        match cfg.pointer(&format!("/config/Labels/{}", k.replace('/', "~1"))) {
                            Some(have) => v.as_ref().is_none_or(|v| have.as_str() == Some(v)),
                            None => false,
                        }
                    }
                    ImageFilter::Before(_) | ImageFilter::Since(_) => true,
                };
            }
            for (before, created, id) in &bounds {
                keep &= *id != rec.id
                    && if *before {
                        rec.created_unix < *created
                    } else {
                        rec.created_unix > *created
                    };
            }
            if !keep {
                continue;
            }
            out.push(ImageSummary {
                id: rec.id,
                tags,
                repo_digests: digests,
                manifest_digest: rec.manifest_digest,
                created: rec.created,
                created_unix: rec.created_unix,
                size: rec.size,
                containers: 0,
            });
        }
        Ok(out)
    }
}

/// Docker's `reference=` match: the pattern against the familiar `name` and `name:tag`,
/// `*` not crossing `/`.
fn reference_matches(pattern: &str, full: &str) -> bool {
    let Ok(r) = ImageRef::parse_no_default(full) else {
        return false;
    };
    let name = r.familiar();
    let opts = glob::MatchOptions {
        case_sensitive: true,
        require_literal_separator: true,
        require_literal_leading_dot: false,
    };
    let Ok(p) = glob::Pattern::new(pattern) else {
        return false;
    };
    p.matches_with(&name, opts) || p.matches_with(&r.familiar_string(), opts)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn reference_filter() {
        assert!(reference_matches(
            "busybox",
            "docker.io/library/busybox:latest"
        ));
        assert!(reference_matches("busy*", "docker.io/library/busybox:1"));
        assert!(reference_matches(
            "busybox:1",
            "docker.io/library/busybox:1"
        ));
        assert!(!reference_matches(
            "busybox:2",
            "docker.io/library/busybox:1"
        ));
        assert!(!reference_matches("*", "docker.io/a/b:1"));
        assert!(reference_matches("*/*", "docker.io/a/b:1"));
    }

    #[test]
    fn parse_filters() {
        assert_eq!(
            ImageFilter::parse("dangling=true").unwrap(),
            ImageFilter::Dangling(true)
        );
        assert!(ImageFilter::parse("bogus=1").is_err());
        assert!(ImageFilter::parse("dangling").is_err());
    }
}
