//! Image references (`gcr.io/kuar-demo/kuard-amd64:1`), parsed and normalized with the grammar
//! of Docker's distribution reference package:
//!
//! ```text
//! reference       := name [ ":" tag ] [ "@" digest ]
//! name            := [domain "/"] path-component ["/" path-component]*
//! domain          := host [":" port]     host: DNS name, IPv4, or "[" IPv6 "]"
//! path-component  := [a-z0-9]+ ( separator [a-z0-9]+ )*     separator: "_" "__" "." or "-"+
//! tag             := [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}
//! ```
//!
//! Normalization follows Docker: the first component is a domain only if it holds a `.` or a
//! `:`, or is `localhost`, or has an uppercase letter; otherwise the domain is `docker.io`, and
//! a single-component name on `docker.io` gets `library/`. `index.docker.io` becomes
//! `docker.io`. A reference with neither tag nor digest gets the tag `latest`.

use std::fmt;
use std::str::FromStr;

use crate::digest::{Digest, DigestError};

/// The registry a name without a domain lives on.
pub const DEFAULT_DOMAIN: &str = "docker.io";
/// The legacy name of [`DEFAULT_DOMAIN`], normalized away.
pub const LEGACY_DEFAULT_DOMAIN: &str = "index.docker.io";
/// The namespace of single-component names on the default domain.
pub const OFFICIAL_REPO_PREFIX: &str = "library/";
/// The tag a reference without tag or digest gets.
pub const DEFAULT_TAG: &str = "latest";
/// The longest a repository name (domain and path) may be.
pub const NAME_TOTAL_LENGTH_MAX: usize = 255;
/// The longest a tag may be.
pub const TAG_LENGTH_MAX: usize = 128;

/// What kind of failure a [`ReferenceError`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReferenceErrorKind {
    /// The input does not follow the reference grammar.
    InvalidArgument,
}

/// Why a string is not an image reference; each variant names the rule broken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReferenceError {
    /// The reference is empty.
    #[error("invalid reference format: repository name must have at least one component")]
    Empty,
    /// The repository name is longer than 255 characters.
    #[error("invalid reference format: repository name {name:?} must not be more than 255 characters (it has {len})")]
    NameTooLong {
        /// The repository name.
        name: String,
        /// Its length.
        len: usize,
    },
    /// The repository path has an uppercase letter.
    #[error("invalid reference format: repository name {name:?} must be lowercase")]
    Uppercase {
        /// The repository name.
        name: String,
    },
    /// A path component is empty or breaks `[a-z0-9]+(separator[a-z0-9]+)*`.
    #[error("invalid reference format: repository name {name:?}: path component {component:?} must be lowercase letters and digits separated by single '.', '_', '__' or '-'s")]
    BadPathComponent {
        /// The repository name.
        name: String,
        /// The offending component.
        component: String,
    },
    /// The domain is not a host name, IPv4 or bracketed IPv6 address, with an optional port.
    #[error(
        "invalid reference format: {domain:?} in {reference:?} is not a valid registry host[:port]"
    )]
    BadDomain {
        /// The whole reference.
        reference: String,
        /// The domain part.
        domain: String,
    },
    /// The tag breaks `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`.
    #[error("invalid reference format: tag {tag:?} must be 1 to 128 letters, digits, '_', '.' or '-', not starting with '.' or '-'")]
    BadTag {
        /// The offending tag.
        tag: String,
    },
    /// The digest after `@` is not a valid digest.
    #[error("invalid reference format: bad digest in {reference:?}: {source}")]
    BadDigest {
        /// The whole reference.
        reference: String,
        /// Why the digest is invalid.
        source: DigestError,
    },
    /// The name is a 64-character hex string, which Docker reserves for image IDs.
    #[error("invalid repository name ({name}), cannot specify 64-byte hexadecimal strings")]
    HexName {
        /// The offending name.
        name: String,
    },
}

impl ReferenceError {
    /// The kind of failure (always an invalid argument).
    pub fn kind(&self) -> ReferenceErrorKind {
        ReferenceErrorKind::InvalidArgument
    }
}

/// A normalized image reference: domain, path, and a tag and/or digest.
///
/// ```
/// use berth_oci::ImageRef;
/// let r = ImageRef::parse("kuard-amd64:1").unwrap();
/// assert_eq!(r.to_string(), "docker.io/library/kuard-amd64:1");
/// assert_eq!(r.familiar(), "kuard-amd64");
/// assert_eq!(ImageRef::parse("busybox").unwrap().tag(), Some("latest"));
/// ```
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ImageRef {
    domain: String,
    path: String,
    tag: Option<String>,
    digest: Option<Digest>,
}

impl ImageRef {
    /// Parses and normalizes `s`; with neither tag nor digest the tag is `latest`.
    pub fn parse(s: &str) -> Result<ImageRef, ReferenceError> {
        let mut r = ImageRef::parse_no_default(s)?;
        if r.tag.is_none() && r.digest.is_none() {
            r.tag = Some(DEFAULT_TAG.to_owned());
        }
        Ok(r)
    }

    /// Parses and normalizes `s` without adding the default tag.
    pub fn parse_no_default(s: &str) -> Result<ImageRef, ReferenceError> {
        if s.is_empty() {
            return Err(ReferenceError::Empty);
        }
        if s.len() == 64
            && s.bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        {
            return Err(ReferenceError::HexName { name: s.to_owned() });
        }
        let (rest, digest) = match s.split_once('@') {
            Some((rest, d)) => {
                let digest = d
                    .parse::<Digest>()
                    .map_err(|source| ReferenceError::BadDigest {
                        reference: s.to_owned(),
                        source,
                    })?;
                (rest, Some(digest))
            }
            None => (s, None),
        };
        // A tag follows the last ':' unless that ':' is inside the domain (a port).
        let (name, tag) = match rest.rfind(':') {
            Some(i) if !rest[i + 1..].contains('/') => (&rest[..i], Some(&rest[i + 1..])),
            _ => (rest, None),
        };
        if name.is_empty() {
            return Err(ReferenceError::Empty);
        }
        if let Some(tag) = tag {
            check_tag(tag)?;
        }
        if name.len() > NAME_TOTAL_LENGTH_MAX {
            return Err(ReferenceError::NameTooLong {
                name: name.to_owned(),
                len: name.len(),
            });
        }
        let (domain, path) = split_domain(name);
        check_domain(domain, s)?;
        if path.bytes().any(|b| b.is_ascii_uppercase()) {
            return Err(ReferenceError::Uppercase {
                name: name.to_owned(),
            });
        }
        for component in path.split('/') {
            if !is_path_component(component) {
                return Err(ReferenceError::BadPathComponent {
                    name: name.to_owned(),
                    component: component.to_owned(),
                });
            }
        }
        let total = domain.len() + 1 + path.len();
        if total > NAME_TOTAL_LENGTH_MAX {
            return Err(ReferenceError::NameTooLong {
                name: format!("{domain}/{path}"),
                len: total,
            });
        }
        Ok(ImageRef {
            domain: domain.to_owned(),
            path,
            tag: tag.map(str::to_owned),
            digest,
        })
    }

    /// The registry host (and port): `docker.io`, `localhost:5000`, `gcr.io`.
    pub fn domain(&self) -> &str {
        &self.domain
    }

    /// The repository path on the registry: `library/busybox`, `kuar-demo/kuard-amd64`.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// Domain and path: `docker.io/library/busybox`.
    pub fn repository(&self) -> String {
        format!("{}/{}", self.domain, self.path)
    }

    /// The tag, if any.
    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    /// The digest, if any.
    pub fn digest(&self) -> Option<&Digest> {
        self.digest.as_ref()
    }

    /// The repository as Docker shows it: `busybox`, `someone/app`, `localhost:5000/a/b`,
    /// `gcr.io/x/y`.
    pub fn familiar(&self) -> String {
        if self.domain == DEFAULT_DOMAIN {
            match self.path.strip_prefix(OFFICIAL_REPO_PREFIX) {
                Some(short) if !short.contains('/') => short.to_owned(),
                _ => self.path.clone(),
            }
        } else {
            self.repository()
        }
    }

    /// The familiar repository with the tag and/or digest: `busybox:latest`.
    pub fn familiar_string(&self) -> String {
        let mut s = self.familiar();
        self.push_suffix(&mut s);
        s
    }

    /// This reference with the tag `tag` (and no digest).
    pub fn with_tag(&self, tag: &str) -> Result<ImageRef, ReferenceError> {
        check_tag(tag)?;
        Ok(ImageRef {
            domain: self.domain.clone(),
            path: self.path.clone(),
            tag: Some(tag.to_owned()),
            digest: None,
        })
    }

    /// This reference with the digest `digest` (and no tag).
    pub fn with_digest(&self, digest: Digest) -> ImageRef {
        ImageRef {
            domain: self.domain.clone(),
            path: self.path.clone(),
            tag: None,
            digest: Some(digest),
        }
    }

    /// Whether the registry is on this machine (`localhost`, `127.0.0.0/8`, `[::1]`, any port),
    /// which Docker reaches over plain HTTP.
    pub fn is_localhost(&self) -> bool {
        let host = match self.domain.strip_prefix('[') {
            Some(v6) => v6.split(']').next().unwrap_or(""),
            None => self.domain.split(':').next().unwrap_or(""),
        };
        host == "localhost" || host == "::1" || host.starts_with("127.")
    }

    fn push_suffix(&self, s: &mut String) {
        if let Some(tag) = &self.tag {
            s.push(':');
            s.push_str(tag);
        }
        if let Some(d) = &self.digest {
            s.push('@');
            s.push_str(&d.to_string());
        }
    }
}

impl fmt::Display for ImageRef {
    /// The full normalized form: `docker.io/library/busybox:latest`, `...@sha256:...`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = self.repository();
        self.push_suffix(&mut s);
        f.write_str(&s)
    }
}

impl fmt::Debug for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ImageRef({self})")
    }
}

impl serde::Serialize for ImageRef {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for ImageRef {
    /// Reads the normalized form back as written (no default tag is added).
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        ImageRef::parse_no_default(&s).map_err(serde::de::Error::custom)
    }
}

impl FromStr for ImageRef {
    type Err = ReferenceError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ImageRef::parse(s)
    }
}

/// Splits `name` into (domain, normalized path) the way Docker does.
fn split_domain(name: &str) -> (&str, String) {
    let (domain, rest) = match name.split_once('/') {
        Some((first, rest))
            if first.contains(['.', ':'])
                || first == "localhost"
                || first.bytes().any(|b| b.is_ascii_uppercase()) =>
        {
            (first, rest)
        }
        _ => (DEFAULT_DOMAIN, name),
    };
    let domain = if domain == LEGACY_DEFAULT_DOMAIN {
        DEFAULT_DOMAIN
    } else {
        domain
    };
    let path = if domain == DEFAULT_DOMAIN && !rest.contains('/') {
        format!("{OFFICIAL_REPO_PREFIX}{rest}")
    } else {
        rest.to_owned()
    };
    (domain, path)
}

fn check_tag(tag: &str) -> Result<(), ReferenceError> {
    let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let ok = !tag.is_empty()
        && tag.len() <= TAG_LENGTH_MAX
        && word(tag.as_bytes()[0])
        && tag.bytes().all(|b| word(b) || b == b'.' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(ReferenceError::BadTag {
            tag: tag.to_owned(),
        })
    }
}

fn check_domain(domain: &str, reference: &str) -> Result<(), ReferenceError> {
    let bad = || ReferenceError::BadDomain {
        reference: reference.to_owned(),
        domain: domain.to_owned(),
    };
    let (host, port) = if let Some(v6) = domain.strip_prefix('[') {
        let (addr, after) = v6.split_once(']').ok_or_else(bad)?;
        if addr.parse::<std::net::Ipv6Addr>().is_err() {
            return Err(bad());
        }
        match after {
            "" => ("", None),
            p => ("", Some(p.strip_prefix(':').ok_or_else(bad)?)),
        }
    } else {
        match domain.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (domain, None),
        }
    };
    if let Some(port) = port {
        if port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
    }
    if !domain.starts_with('[') {
        let component_ok = |c: &str| {
            !c.is_empty()
                && c.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !c.starts_with('-')
                && !c.ends_with('-')
        };
        if !host.split('.').all(component_ok) {
            return Err(bad());
        }
    }
    Ok(())
}

fn is_path_component(c: &str) -> bool {
    check_path_component(c).is_ok()
}

/// What is wrong with a repository path component (see [`check_path_component`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathComponentFault {
    /// The component is empty (`a//b`, or a leading or trailing `/`).
    Empty,
    /// It starts or ends with something other than `[a-z0-9]`.
    Edge,
    /// It holds a character or separator run the grammar does not allow.
    Separator,
}

impl PathComponentFault {
    /// The fault in words, as error messages quote it.
    pub fn reason(self) -> &'static str {
        match self {
            PathComponentFault::Empty => "empty path component",
            PathComponentFault::Edge => "each path component must start and end with [a-z0-9]",
            PathComponentFault::Separator => {
                "only lowercase letters, digits and single separators (. _ __ -) allowed"
            }
        }
    }
}

/// Checks one `/`-separated component of a repository path against the distribution
/// spec's grammar: `[a-z0-9]+` runs joined by `.`, `_`, `__` or one or more `-`.
pub fn check_path_component(c: &str) -> Result<(), PathComponentFault> {
    let b = c.as_bytes();
    if b.is_empty() {
        return Err(PathComponentFault::Empty);
    }
    let alnum = |x: u8| x.is_ascii_lowercase() || x.is_ascii_digit();
    if !alnum(b[0]) || !alnum(b[b.len() - 1]) {
        return Err(PathComponentFault::Edge);
    }
    let mut i = 0;
    while i < b.len() {
        if alnum(b[i]) {
            i += 1;
            continue;
        }
        // A separator run: ".", "_", "__", or one or more "-".
        let start = i;
        while i < b.len() && !alnum(b[i]) {
            i += 1;
        }
        let sep = &c[start..i];
        let ok = matches!(sep, "." | "_" | "__") || sep.bytes().all(|x| x == b'-');
        if !ok {
            return Err(PathComponentFault::Separator);
        }
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn norm(s: &str) -> String {
        ImageRef::parse(s).unwrap().to_string()
    }

    #[test]
    fn normalizes_like_docker() {
        assert_eq!(norm("kuard-amd64:1"), "docker.io/library/kuard-amd64:1");
        assert_eq!(norm("busybox"), "docker.io/library/busybox:latest");
        assert_eq!(norm("someone/app"), "docker.io/someone/app:latest");
        assert_eq!(
            norm("index.docker.io/busybox:1"),
            "docker.io/library/busybox:1"
        );
        assert_eq!(norm("docker.io/busybox:1"), "docker.io/library/busybox:1");
        assert_eq!(norm("localhost:5000/a/b:1"), "localhost:5000/a/b:1");
        assert_eq!(norm("localhost/a"), "localhost/a:latest");
        assert_eq!(
            norm("gcr.io/kuar-demo/kuard-amd64:1"),
            "gcr.io/kuar-demo/kuard-amd64:1"
        );
        assert_eq!(norm("[::1]:5000/x:y"), "[::1]:5000/x:y");
        assert_eq!(
            norm("a__b-c---d/e.f_g"),
            "docker.io/a__b-c---d/e.f_g:latest"
        );
        // A first component with a dot is a domain, and domains have no underscores.
        assert!(ImageRef::parse("a__b.c/x").is_err());
    }

    #[test]
    fn parts_and_familiar() {
        let r = ImageRef::parse("busybox").unwrap();
        assert_eq!(r.domain(), "docker.io");
        assert_eq!(r.path(), "library/busybox");
        assert_eq!(r.repository(), "docker.io/library/busybox");
        assert_eq!(r.familiar(), "busybox");
        assert_eq!(r.familiar_string(), "busybox:latest");
        assert!(!r.is_localhost());
        let r = ImageRef::parse("localhost:5000/a/b:1").unwrap();
        assert_eq!(r.familiar(), "localhost:5000/a/b");
        assert_eq!(r.tag(), Some("1"));
        assert!(r.is_localhost());
        assert!(ImageRef::parse("127.0.0.1:5000/x").unwrap().is_localhost());
        assert_eq!(
            ImageRef::parse("gcr.io/x/y").unwrap().familiar(),
            "gcr.io/x/y"
        );
        assert_eq!(
            ImageRef::parse("someone/app").unwrap().familiar(),
            "someone/app"
        );
        let t = r.with_tag("2").unwrap();
        assert_eq!(t.to_string(), "localhost:5000/a/b:2");
        assert!(r.with_tag("-x").is_err());
    }

    #[test]
    fn serde_round_trip() {
        let r = ImageRef::parse("localhost:5000/a/b:1").unwrap();
        let j = serde_json::to_string(&r).unwrap();
        assert_eq!(j, "\"localhost:5000/a/b:1\"");
        assert_eq!(serde_json::from_str::<ImageRef>(&j).unwrap(), r);
    }

    #[test]
    fn digests() {
        let d = Digest::of(b"x");
        let r = ImageRef::parse(&format!("busybox@{d}")).unwrap();
        assert_eq!(r.tag(), None);
        assert_eq!(r.digest(), Some(&d));
        assert_eq!(r.to_string(), format!("docker.io/library/busybox@{d}"));
        let r = ImageRef::parse(&format!("localhost:5000/busybox:1.36@{d}")).unwrap();
        assert_eq!(r.tag(), Some("1.36"));
        assert_eq!(r.digest(), Some(&d));
        assert_eq!(r.to_string(), format!("localhost:5000/busybox:1.36@{d}"));
        assert!(matches!(
            ImageRef::parse("busybox@sha256:abc"),
            Err(ReferenceError::BadDigest { .. })
        ));
    }

    #[test]
    fn rejects_with_rule() {
        assert_eq!(ImageRef::parse(""), Err(ReferenceError::Empty));
        assert!(matches!(
            ImageRef::parse("Busybox"),
            Err(ReferenceError::Uppercase { .. })
        ));
        assert!(matches!(
            ImageRef::parse("gcr.io/Kuar/x"),
            Err(ReferenceError::Uppercase { .. })
        ));
        assert!(matches!(
            ImageRef::parse("a/../b"),
            Err(ReferenceError::BadPathComponent { .. })
        ));
        assert!(matches!(
            ImageRef::parse("a..b"),
            Err(ReferenceError::BadPathComponent { .. })
        ));
        assert!(matches!(
            ImageRef::parse("a//b"),
            Err(ReferenceError::BadPathComponent { .. })
        ));
        assert!(matches!(
            ImageRef::parse("a/"),
            Err(ReferenceError::BadPathComponent { .. })
        ));
        assert!(matches!(
            ImageRef::parse(&"a".repeat(256)),
            Err(ReferenceError::NameTooLong { .. })
        ));
        // "docker.io/library/" is 18 characters: the normalized name counts.
        assert!(ImageRef::parse(&"a".repeat(237)).is_ok());
        assert!(matches!(
            ImageRef::parse(&"a".repeat(238)),
            Err(ReferenceError::NameTooLong { .. })
        ));
        assert!(matches!(
            ImageRef::parse("busybox:-x"),
            Err(ReferenceError::BadTag { .. })
        ));
        assert!(matches!(
            ImageRef::parse(&format!("busybox:{}", "t".repeat(129))),
            Err(ReferenceError::BadTag { .. })
        ));
        assert!(matches!(
            ImageRef::parse("busybox:"),
            Err(ReferenceError::BadTag { .. })
        ));
        assert!(matches!(
            ImageRef::parse("my-.host:5000/x"),
            Err(ReferenceError::BadDomain { .. })
        ));
        assert!(matches!(
            ImageRef::parse("localhost:50a0/x"),
            Err(ReferenceError::BadDomain { .. })
        ));
        assert!(matches!(
            ImageRef::parse(&"a".repeat(64)),
            Err(ReferenceError::HexName { .. })
        ));
        let e = ImageRef::parse("Busybox").unwrap_err().to_string();
        assert!(e.contains("must be lowercase"), "{e}");
    }
}
