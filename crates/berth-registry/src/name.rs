//! Repository names and tags, validated as the distribution spec defines them.

use std::fmt;

/// The longest repository name accepted (the distribution registry's limit).
pub const MAX_NAME_LEN: usize = 255;

/// Why a repository name or tag is not valid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// The repository name breaks the spec's grammar.
    #[error("invalid repository name {name:?}: {reason}")]
    InvalidName {
        /// The name given (cut to 300 characters).
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The tag breaks the spec's grammar.
    #[error("invalid tag {0:?}: expected [A-Za-z0-9_][A-Za-z0-9._-]{{0,127}}")]
    InvalidTag(String),
}

/// A repository name such as `library/busybox`, valid by construction.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RepoName(String);

impl RepoName {
    /// Validates `name`: path components of `[a-z0-9]+` joined by `.`, `_`, `__` or `-+`,
    /// separated by `/`, at most 255 characters in all.
    pub fn new(name: &str) -> Result<RepoName, NameError> {
        let bad = |reason| NameError::InvalidName {
            name: name.chars().take(300).collect(),
            reason,
        };
        if name.is_empty() {
            return Err(bad("empty"));
        }
        if name.len() > MAX_NAME_LEN {
            return Err(bad("longer than 255 characters"));
        }
        for component in name.split('/') {
            berth_oci::reference::check_path_component(component).map_err(|f| bad(f.reason()))?;
        }
        Ok(RepoName(name.to_owned()))
    }

    /// The name as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RepoName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for RepoName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RepoName({})", self.0)
    }
}

/// Checks a tag: `[A-Za-z0-9_][A-Za-z0-9._-]{0,127}`.
pub fn validate_tag(tag: &str) -> Result<(), NameError> {
    let b = tag.as_bytes();
    let ok = !b.is_empty()
        && b.len() <= 128
        && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
        && b[1..]
            .iter()
            .all(|&x| x.is_ascii_alphanumeric() || matches!(x, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(NameError::InvalidTag(tag.chars().take(200).collect()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_spec_names() {
        for n in [
            "busybox",
            "library/busybox",
            "a/b/c",
            "my-app__x.y",
            "a--b",
            "k8s.io/pause",
        ] {
            RepoName::new(n).unwrap_or_else(|e| panic!("{n}: {e}"));
        }
    }

    #[test]
    fn rejects_bad_names() {
        let long = "a".repeat(300);
        for n in [
            "", "..", "a/../b", "Upper", "a//b", "-a", "a-", "a..b", "a___b", &long, "a/.b",
        ] {
            assert!(RepoName::new(n).is_err(), "{n} accepted");
        }
    }

    #[test]
    fn tags() {
        assert!(validate_tag("latest").is_ok());
        assert!(validate_tag("v1.0_rc-2").is_ok());
        assert!(validate_tag(".x").is_err());
        assert!(validate_tag("").is_err());
        assert!(validate_tag(&"a".repeat(129)).is_err());
    }
}
