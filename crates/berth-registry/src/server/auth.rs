//! Who may do what: htpasswd users, public and private repositories, and the built-in token
//! service that issues HMAC-SHA256-signed, JWT-shaped bearer tokens scoped to repositories
//! and actions.
//!
//! A request carries no credentials, `Basic` credentials checked against the htpasswd file,
//! or a `Bearer` token from the token service. Anonymous requests may pull public repositories;
//! everything else needs a user, limited by the rules of the configuration.

use std::collections::{HashMap, HashSet};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

/// An action on a repository.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Action {
    /// Read manifests and blobs.
    Pull,
    /// Write manifests and blobs.
    Push,
    /// Delete manifests, tags and blobs.
    Delete,
}

impl Action {
    /// The action's name in scopes.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Pull => "pull",
            Action::Push => "push",
            Action::Delete => "delete",
        }
    }

    fn parse_list(s: &str) -> Vec<Action> {
        let mut out = Vec::new();
        for a in s.split(',') {
            match a.trim() {
                "pull" => out.push(Action::Pull),
                "push" => out.push(Action::Push),
                "delete" => out.push(Action::Delete),
                "*" => out.extend([Action::Pull, Action::Push, Action::Delete]),
                _ => {}
            }
        }
        out.sort();
        out.dedup();
        out
    }
}

/// What a request needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// The `/v2/` ping: any authenticated user, when auth is on.
    Ping,
    /// `/v2/_catalog`: any authenticated user.
    Catalog,
    /// Actions on repositories (a cross-repository mount needs two).
    Repositories(Vec<(String, Vec<Action>)>),
}

impl Scope {
    /// Actions on one repository.
    pub fn repo(name: &str, actions: &[Action]) -> Scope {
        Scope::Repositories(vec![(name.to_owned(), actions.to_vec())])
    }

    /// The scope string of a challenge, e.g. `repository:a/b:pull,push`.
    pub fn challenge_scope(&self) -> Option<String> {
        match self {
            Scope::Ping => None,
            Scope::Catalog => Some("registry:catalog:*".to_owned()),
            Scope::Repositories(list) => Some(
                list.iter()
                    .map(|(name, actions)| {
                        let a: Vec<&str> = actions.iter().map(|a| a.as_str()).collect();
                        format!("repository:{name}:{}", a.join(","))
                    })
                    .collect::<Vec<_>>()
                    .join(" "),
            ),
        }
    }
}

/// Why a configuration or credential could not be used.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// The htpasswd file could not be read.
    #[error("reading htpasswd file {path}: {source}")]
    HtpasswdRead {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A line of the htpasswd file is not `user:$2y$...` (bcrypt).
    #[error("htpasswd file {path} line {line}: expected user:bcrypt-hash (htpasswd -B)")]
    HtpasswdLine {
        /// The file.
        path: PathBuf,
        /// The 1-based line number.
        line: usize,
    },
    /// A rule pattern is not a valid glob.
    #[error("access rule pattern {0:?} is not a valid glob")]
    BadPattern(String),
}

impl AuthError {
    /// The kind: every auth configuration error is invalid input.
    pub fn kind(&self) -> crate::ErrorKind {
        crate::ErrorKind::InvalidArgument
    }
}

/// A rule granting users actions on repositories matching a glob.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct AccessRule {
    /// Glob over repository names, e.g. `team/*`.
    pub repository: String,
    /// Users the rule applies to; `*` for every authenticated user.
    pub users: Vec<String>,
    /// Actions granted: `pull`, `push`, `delete`, `*`.
    pub actions: Vec<String>,
}

/// The `[registry.auth]` table of the configuration.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    /// htpasswd file of users (bcrypt hashes, as `htpasswd -B` writes them).
    pub htpasswd: Option<PathBuf>,
    /// Repositories (globs) anyone may pull without credentials.
    #[serde(default)]
    pub public: Vec<String>,
    /// Rules for authenticated users; when empty, every user may do everything.
    #[serde(default, rename = "rule")]
    pub rules: Vec<AccessRule>,
    /// The token endpoint announced in challenges; default `<scheme>://<host>/token`.
    pub realm: Option<String>,
    /// The service name in tokens and challenges.
    pub service: Option<String>,
    /// The HMAC key for tokens; when unset, a key made once and kept in the storage
    /// (`signing-key`, shared by replicas of one storage, kept across restarts).
    pub token_secret: Option<String>,
    /// Access token lifetime in seconds (default 300).
    pub token_ttl: Option<u64>,
    /// Refresh (identity) token lifetime in seconds (default 90 days): what `docker login`
    /// and `berth login` keep. A new password in the htpasswd file revokes them.
    pub refresh_token_ttl: Option<u64>,
    /// Whether the token endpoint answers `GET` (default true); `false` leaves only the
    /// OAuth2 form `POST`, as some registries' token services do.
    pub token_get: Option<bool>,
}

/// The decision on a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Go ahead.
    Allow,
    /// Credentials are missing, wrong or insufficient: answer 401 with a challenge.
    Challenge,
    /// The user is known but may not do this: answer 403.
    Deny,
}

/// The identity behind a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Identity {
    /// No credentials.
    Anonymous,
    /// A user proven by password.
    User(String),
    /// A bearer token's grants.
    Token(Claims),
    /// Credentials were given but are wrong.
    Invalid,
}

/// One grant of a token: actions on a named resource.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    /// `repository` or `registry`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The repository name (or `catalog`).
    pub name: String,
    /// Actions granted.
    pub actions: Vec<String>,
}

/// The claims of a token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// Issuer.
    pub iss: String,
    /// Subject: the user, empty for anonymous.
    pub sub: String,
    /// Audience: the service.
    pub aud: String,
    /// Expiry (Unix seconds).
    pub exp: u64,
    /// Not before.
    pub nbf: u64,
    /// Issued at.
    pub iat: u64,
    /// Unique id.
    pub jti: String,
    /// What the token grants.
    pub access: Vec<Grant>,
    /// Refresh tokens: a MAC of the user's htpasswd entry when the token was issued; a
    /// changed password no longer matches, which revokes the token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cred: Option<String>,
}

/// The users of the htpasswd file, read again when the file changes.
struct Users {
    path: PathBuf,
    /// (mtime ns, size, inode) of the file read.
    stamp: (i128, u64, u64),
    hashes: HashMap<String, String>,
}

fn file_stamp(m: &std::fs::Metadata) -> (i128, u64, u64) {
    (
        i128::from(m.mtime()) * 1_000_000_000 + i128::from(m.mtime_nsec()),
        m.size(),
        m.ino(),
    )
}

/// Default life of a refresh token: 90 days.
pub const DEFAULT_REFRESH_TTL: u64 = 90 * 24 * 3600;

/// Users, rules and the token key of one registry.
pub struct Authorizer {
    users: RwLock<Users>,
    public: Vec<glob::Pattern>,
    rules: Vec<(glob::Pattern, Vec<String>, Vec<Action>)>,
    /// The realm announced, when configured.
    pub realm: Option<String>,
    /// The service name.
    pub service: String,
    tokens: TokenService,
    /// Whether the token endpoint answers `GET`.
    pub token_get: bool,
    // Proven (user, password) pairs, as sha256, so bcrypt runs once per credential.
    verified: Mutex<HashSet<[u8; 32]>>,
}

impl std::fmt::Debug for Authorizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authorizer")
            .field("users", &self.users.read().map(|u| u.hashes.len()).ok())
            .field("service", &self.service)
            .finish()
    }
}

/// Reads an htpasswd file of bcrypt entries.
pub fn read_htpasswd(path: &Path) -> Result<HashMap<String, String>, AuthError> {
    let text = std::fs::read_to_string(path).map_err(|source| AuthError::HtpasswdRead {
        path: path.to_owned(),
        source,
    })?;
    let mut users = HashMap::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let bad = || AuthError::HtpasswdLine {
            path: path.to_owned(),
            line: i + 1,
        };
        let (user, hash) = line.split_once(':').ok_or_else(bad)?;
        if user.is_empty() || !hash.starts_with("$2") {
            return Err(bad());
        }
        users.insert(user.to_owned(), hash.to_owned());
    }
    Ok(users)
}

fn pattern(p: &str) -> Result<glob::Pattern, AuthError> {
    glob::Pattern::new(p).map_err(|_| AuthError::BadPattern(p.to_owned()))
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl Authorizer {
    /// Builds the authorizer; `None` when the configuration names no users (auth off).
    pub fn new(config: &AuthConfig) -> Result<Option<Authorizer>, AuthError> {
        let Some(path) = &config.htpasswd else {
            return Ok(None);
        };
        let stamp = std::fs::metadata(path)
            .map(|m| file_stamp(&m))
            .map_err(|source| AuthError::HtpasswdRead {
                path: path.to_owned(),
                source,
            })?;
        let hashes = read_htpasswd(path)?;
        let public = config
            .public
            .iter()
            .map(|p| pattern(p))
            .collect::<Result<_, _>>()?;
        let rules = config
            .rules
            .iter()
            .map(|r| {
                Ok((
                    pattern(&r.repository)?,
                    r.users.clone(),
                    Action::parse_list(&r.actions.join(",")),
                ))
            })
            .collect::<Result<_, AuthError>>()?;
        let service = config
            .service
            .clone()
            .unwrap_or_else(|| "berth-registry".to_owned());
        let secret = match &config.token_secret {
            Some(s) => s.as_bytes().to_vec(),
            None => rand::random::<[u8; 32]>().to_vec(),
        };
        Ok(Some(Authorizer {
            users: RwLock::new(Users {
                path: path.clone(),
                stamp,
                hashes,
            }),
            public,
            rules,
            realm: config.realm.clone(),
            tokens: TokenService {
                secret,
                service: service.clone(),
                ttl: config.token_ttl.unwrap_or(300),
                refresh_ttl: config.refresh_token_ttl.unwrap_or(DEFAULT_REFRESH_TTL),
            },
            service,
            token_get: config.token_get.unwrap_or(true),
            verified: Mutex::new(HashSet::new()),
        }))
    }

    /// Replaces the signing key (the storage's, when the configuration names none).
    pub fn with_signing_key(mut self, key: Vec<u8>) -> Authorizer {
        self.tokens.secret = key;
        self
    }

    /// The htpasswd entry (hash) of a user, from the file as it is now: a password changed
    /// or a user removed takes effect without a restart.
    fn user_hash(&self, user: &str) -> Option<String> {
        let current = self.users.read().ok().and_then(|u| {
            let m = std::fs::metadata(&u.path).ok()?;
            (file_stamp(&m) == u.stamp).then(|| u.hashes.get(user).cloned())
        });
        if let Some(found) = current {
            return found;
        }
        let mut users = self.users.write().ok()?;
        let path = users.path.clone();
        match std::fs::metadata(&path) {
            Ok(m) if file_stamp(&m) != users.stamp => {
                // Stamped even when unreadable: one warning per change, not per request.
                users.stamp = file_stamp(&m);
                match read_htpasswd(&path) {
                    Ok(h) => users.hashes = h,
                    Err(e) => log::warn!("registry: {e} (keeping the users read before)"),
                }
            }
            Ok(_) => {}
            Err(e) => log::warn!(
                "registry: htpasswd file {}: {e} (keeping the users read before)",
                path.display()
            ),
        }
        users.hashes.get(user).cloned()
    }

    /// A MAC of a user's current htpasswd entry (bound into refresh tokens).
    fn credential_mark(&self, user: &str) -> Option<String> {
        let hash = self.user_hash(user)?;
        let mut input = Vec::with_capacity(user.len() + hash.len() + 10);
        input.extend_from_slice(b"htpasswd\0");
        input.extend_from_slice(user.as_bytes());
        input.push(0);
        input.extend_from_slice(hash.as_bytes());
        Some(hex::encode(&self.tokens.sign(&input)[..16]))
    }

    /// Checks a user's password against the htpasswd entry.
    pub fn check_password(&self, user: &str, password: &str) -> bool {
        let Some(hash) = self.user_hash(user) else {
            return false;
        };
        let hash = &hash;
        let mut h = Sha256::new();
        h.update(user.as_bytes());
        h.update([0]);
        h.update(password.as_bytes());
        h.update([0]);
        h.update(hash.as_bytes());
        let key: [u8; 32] = h.finalize().into();
        if let Ok(set) = self.verified.lock() {
            if set.contains(&key) {
                return true;
            }
        }
        let ok = bcrypt::verify(password, hash).unwrap_or(false);
        if ok {
            if let Ok(mut set) = self.verified.lock() {
                if set.len() > 10_000 {
                    set.clear();
                }
                set.insert(key);
            }
        }
        ok
    }

    /// Who sent a request, from its `Authorization` header.
    pub fn identify(&self, authorization: Option<&str>) -> Identity {
        let Some(value) = authorization else {
            return Identity::Anonymous;
        };
        if let Some(b64) = strip_scheme(value, "Basic") {
            let Some((user, pass)) = decode_basic(b64) else {
                return Identity::Invalid;
            };
            if self.check_password(&user, &pass) {
                Identity::User(user)
            } else {
                Identity::Invalid
            }
        } else if let Some(token) = strip_scheme(value, "Bearer") {
            match self.tokens.verify(token) {
                Some(c) => Identity::Token(c),
                None => Identity::Invalid,
            }
        } else {
            Identity::Invalid
        }
    }

    fn is_public(&self, repo: &str) -> bool {
        self.public.iter().any(|p| p.matches(repo))
    }

    /// The actions a user (or anonymous, `None`) may take on a repository.
    pub fn allowed(&self, user: Option<&str>, repo: &str) -> Vec<Action> {
        let mut out = Vec::new();
        if self.is_public(repo) {
            out.push(Action::Pull);
        }
        if let Some(user) = user {
            if self.rules.is_empty() {
                out.extend([Action::Pull, Action::Push, Action::Delete]);
            }
            for (pat, users, actions) in &self.rules {
                if pat.matches(repo) && users.iter().any(|u| u == "*" || u == user) {
                    out.extend(actions.iter().copied());
                }
            }
        }
        out.sort();
        out.dedup();
        out
    }

    /// Decides a request needing `scope`.
    pub fn decide(&self, id: &Identity, scope: &Scope) -> Decision {
        let user = match id {
            Identity::Invalid => return Decision::Challenge,
            Identity::Anonymous => None,
            Identity::User(u) => Some(u.as_str()),
            Identity::Token(claims) => {
                return if token_covers(claims, scope) {
                    Decision::Allow
                } else {
                    Decision::Challenge
                };
            }
        };
        match scope {
            Scope::Ping | Scope::Catalog => {
                if user.is_some() {
                    Decision::Allow
                } else {
                    Decision::Challenge
                }
            }
            Scope::Repositories(list) => {
                for (repo, actions) in list {
                    let allowed = self.allowed(user, repo);
                    if !actions.iter().all(|a| allowed.contains(a)) {
                        return if user.is_some() {
                            Decision::Deny
                        } else {
                            Decision::Challenge
                        };
                    }
                }
                Decision::Allow
            }
        }
    }

    /// The `WWW-Authenticate` value for a challenge.
    pub fn challenge(&self, realm: &str, scope: &Scope) -> String {
        let mut v = format!("Bearer realm=\"{realm}\",service=\"{}\"", self.service);
        if let Some(s) = scope.challenge_scope() {
            v.push_str(&format!(",scope=\"{s}\""));
        }
        v
    }

    /// A refresh token (OAuth2 offline access) for a user proven by password or by a
    /// refresh token: a signed, long-lived token granting only further tokens, bound to the
    /// user's current htpasswd entry (`None` for other identities: an access token, which
    /// may outlive a password change by minutes, never mints one).
    pub fn issue_refresh_token(&self, id: &Identity) -> Option<String> {
        let Identity::User(user) = id else {
            return None;
        };
        let cred = self.credential_mark(user)?;
        let grant = Grant {
            kind: REFRESH_GRANT.into(),
            name: self.service.clone(),
            actions: Vec::new(),
        };
        let t = self
            .tokens
            .issue_for(user, vec![grant], self.tokens.refresh_ttl, Some(cred));
        Some(t.token)
    }

    /// Who a refresh token names, if the user's password has not changed since it was
    /// issued; an access token is not a refresh token.
    pub fn refresh_identity(&self, token: &str) -> Identity {
        match self.tokens.verify(token) {
            Some(c)
                if !c.sub.is_empty()
                    && c.access
                        .iter()
                        .any(|g| g.kind == REFRESH_GRANT && g.name == self.service)
                    && c.cred.is_some()
                    && c.cred == self.credential_mark(&c.sub) =>
            {
                Identity::User(c.sub)
            }
            _ => Identity::Invalid,
        }
    }

    /// Answers the token endpoint: `None` when the credentials given are wrong. The token
    /// grants the requested scopes narrowed to what the identity may do.
    pub fn issue_token(&self, id: &Identity, scopes: &[String]) -> Option<TokenResponse> {
        let user = match id {
            Identity::Invalid => return None,
            Identity::Anonymous => None,
            Identity::User(u) => Some(u.clone()),
            Identity::Token(c) if !c.sub.is_empty() => Some(c.sub.clone()),
            Identity::Token(_) => None,
        };
        let mut access = Vec::new();
        for scope in scopes.iter().flat_map(|s| s.split(' ')) {
            let mut parts = scope.splitn(3, ':');
            let (Some(kind), Some(name), Some(actions)) =
                (parts.next(), parts.next(), parts.next())
            else {
                continue;
            };
            // Resource names may carry a port-less ":tag"-free repository only.
            match kind {
                "repository" => {
                    let allowed = self.allowed(user.as_deref(), name);
                    let granted: Vec<String> = Action::parse_list(actions)
                        .into_iter()
                        .filter(|a| allowed.contains(a))
                        .map(|a| a.as_str().to_owned())
                        .collect();
                    access.push(Grant {
                        kind: "repository".into(),
                        name: name.into(),
                        actions: granted,
                    });
                }
                "registry" if name == "catalog" && user.is_some() => access.push(Grant {
                    kind: "registry".into(),
                    name: "catalog".into(),
                    actions: vec!["*".into()],
                }),
                _ => {}
            }
        }
        Some(self.tokens.issue(user.as_deref().unwrap_or(""), access))
    }
}

fn token_covers(claims: &Claims, scope: &Scope) -> bool {
    match scope {
        // A valid token proves a login (or an anonymous session) for the ping.
        Scope::Ping => !claims.sub.is_empty(),
        Scope::Catalog => claims
            .access
            .iter()
            .any(|g| g.kind == "registry" && g.name == "catalog"),
        Scope::Repositories(list) => list.iter().all(|(repo, actions)| {
            actions.iter().all(|a| {
                claims.access.iter().any(|g| {
                    g.kind == "repository"
                        && &g.name == repo
                        && g.actions.iter().any(|x| x == a.as_str() || x == "*")
                })
            })
        }),
    }
}

fn strip_scheme<'a>(value: &'a str, scheme: &str) -> Option<&'a str> {
    let (s, rest) = value.trim().split_once(' ')?;
    s.eq_ignore_ascii_case(scheme).then(|| rest.trim())
}

/// Decodes `base64(user:password)`.
pub fn decode_basic(b64: &str) -> Option<(String, String)> {
    let raw = STANDARD.decode(b64.trim()).ok()?;
    let text = String::from_utf8(raw).ok()?;
    let (u, p) = text.split_once(':')?;
    Some((u.to_owned(), p.to_owned()))
}

/// The token endpoint's answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TokenResponse {
    /// The bearer token.
    pub token: String,
    /// The same token (OAuth2 name).
    pub access_token: String,
    /// Lifetime in seconds.
    pub expires_in: u64,
    /// RFC 3339 issue time.
    pub issued_at: String,
    /// An OAuth2 refresh token, when offline access was asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
}

/// The grant kind that marks a refresh token.
const REFRESH_GRANT: &str = "refresh";

/// Issues and verifies HS256 JWT-shaped tokens.
struct TokenService {
    secret: Vec<u8>,
    service: String,
    /// Access tokens' life, seconds.
    ttl: u64,
    /// Refresh tokens' life, seconds.
    refresh_ttl: u64,
}

type HmacSha256 = Hmac<Sha256>;

impl TokenService {
    fn sign(&self, input: &[u8]) -> Vec<u8> {
        // HMAC takes keys of any length.
        let mut mac = match HmacSha256::new_from_slice(&self.secret) {
            Ok(m) => m,
            Err(_) => return Vec::new(),
        };
        mac.update(input);
        mac.finalize().into_bytes().to_vec()
    }

    fn issue(&self, sub: &str, access: Vec<Grant>) -> TokenResponse {
        self.issue_for(sub, access, self.ttl, None)
    }

    fn issue_for(
        &self,
        sub: &str,
        access: Vec<Grant>,
        ttl: u64,
        cred: Option<String>,
    ) -> TokenResponse {
        let t = now();
        let claims = Claims {
            iss: "berth-registry".into(),
            sub: sub.into(),
            aud: self.service.clone(),
            exp: t + ttl,
            nbf: t.saturating_sub(5),
            iat: t,
            jti: crate::server::storage::random_id(),
            access,
            cred,
        };
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
        let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims).unwrap_or_default());
        let signing_input = format!("{header}.{payload}");
        let sig = URL_SAFE_NO_PAD.encode(self.sign(signing_input.as_bytes()));
        let token = format!("{signing_input}.{sig}");
        let issued_at = time::OffsetDateTime::from_unix_timestamp(t as i64)
            .ok()
            .and_then(|d| {
                d.format(&time::format_description::well_known::Rfc3339)
                    .ok()
            })
            .unwrap_or_default();
        TokenResponse {
            access_token: token.clone(),
            token,
            expires_in: ttl,
            issued_at,
            refresh_token: None,
        }
    }

    fn verify(&self, token: &str) -> Option<Claims> {
        let (signing_input, sig) = token.rsplit_once('.')?;
        let (header, payload) = signing_input.split_once('.')?;
        let sig = URL_SAFE_NO_PAD.decode(sig).ok()?;
        let mut mac = HmacSha256::new_from_slice(&self.secret).ok()?;
        mac.update(signing_input.as_bytes());
        mac.verify_slice(&sig).ok()?;
        let header: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header).ok()?).ok()?;
        if header.get("alg")?.as_str()? != "HS256" {
            return None;
        }
        let claims: Claims = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).ok()?).ok()?;
        let t = now();
        if claims.aud != self.service || claims.exp < t || claims.nbf > t + 60 {
            return None;
        }
        Some(claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn authorizer(dir: &Path) -> Authorizer {
        let hash = bcrypt::hash("secret", 4).unwrap();
        let ht = dir.join("htpasswd");
        std::fs::write(&ht, format!("alice:{hash}\nbob:{hash}\n")).unwrap();
        let cfg = AuthConfig {
            htpasswd: Some(ht),
            public: vec!["public/*".into()],
            rules: vec![
                AccessRule {
                    repository: "alice/*".into(),
                    users: vec!["alice".into()],
                    actions: vec!["*".into()],
                },
                AccessRule {
                    repository: "*".into(),
                    users: vec!["*".into()],
                    actions: vec!["pull".into()],
                },
            ],
            ..Default::default()
        };
        Authorizer::new(&cfg).unwrap().unwrap()
    }

    fn basic(u: &str, p: &str) -> String {
        format!("Basic {}", STANDARD.encode(format!("{u}:{p}")))
    }

    #[test]
    fn anonymous_pulls_public_only() {
        let dir = tempfile::tempdir().unwrap();
        let a = authorizer(dir.path());
        let anon = a.identify(None);
        assert_eq!(
            a.decide(&anon, &Scope::repo("public/x", &[Action::Pull])),
            Decision::Allow
        );
        assert_eq!(
            a.decide(&anon, &Scope::repo("public/x", &[Action::Push])),
            Decision::Challenge
        );
        assert_eq!(
            a.decide(&anon, &Scope::repo("alice/x", &[Action::Pull])),
            Decision::Challenge
        );
    }

    #[test]
    fn basic_users_and_rules() {
        let dir = tempfile::tempdir().unwrap();
        let a = authorizer(dir.path());
        let alice = a.identify(Some(&basic("alice", "secret")));
        assert_eq!(alice, Identity::User("alice".into()));
        assert_eq!(
            a.identify(Some(&basic("alice", "wrong"))),
            Identity::Invalid
        );
        assert_eq!(
            a.decide(
                &alice,
                &Scope::repo("alice/x", &[Action::Pull, Action::Push])
            ),
            Decision::Allow
        );
        let bob = a.identify(Some(&basic("bob", "secret")));
        assert_eq!(
            a.decide(&bob, &Scope::repo("alice/x", &[Action::Push])),
            Decision::Deny
        );
        assert_eq!(
            a.decide(&bob, &Scope::repo("alice/x", &[Action::Pull])),
            Decision::Allow
        );
    }

    #[test]
    fn token_for_repo_a_does_not_open_repo_b() {
        let dir = tempfile::tempdir().unwrap();
        let a = authorizer(dir.path());
        let alice = a.identify(Some(&basic("alice", "secret")));
        let t = a
            .issue_token(&alice, &["repository:alice/a:pull,push".into()])
            .unwrap();
        let id = a.identify(Some(&format!("Bearer {}", t.token)));
        assert_eq!(
            a.decide(&id, &Scope::repo("alice/a", &[Action::Pull, Action::Push])),
            Decision::Allow
        );
        assert_eq!(
            a.decide(&id, &Scope::repo("alice/b", &[Action::Push])),
            Decision::Challenge
        );
        // Tampered tokens are refused.
        // (A character inside the signature, changed to a different one: the last one was
        // 'A' one time in sixteen, which left the token intact.)
        let mut bad = t.token.clone().into_bytes();
        let i = bad.len() - 5;
        bad[i] = if bad[i] == b'A' { b'B' } else { b'A' };
        let bad = String::from_utf8(bad).unwrap();
        assert_eq!(
            a.identify(Some(&format!("Bearer {bad}"))),
            Identity::Invalid
        );
        // A token never grants more than the user has.
        let bob = a.identify(Some(&basic("bob", "secret")));
        let t = a
            .issue_token(&bob, &["repository:alice/a:pull,push".into()])
            .unwrap();
        let id = a.identify(Some(&format!("Bearer {}", t.token)));
        assert_eq!(
            a.decide(&id, &Scope::repo("alice/a", &[Action::Push])),
            Decision::Challenge
        );
        assert_eq!(
            a.decide(&id, &Scope::repo("alice/a", &[Action::Pull])),
            Decision::Allow
        );
    }

    #[test]
    fn refresh_tokens_live_long_and_die_with_the_password() {
        let dir = tempfile::tempdir().unwrap();
        let a = authorizer(dir.path()).with_signing_key(b"kept in the storage".to_vec());
        let alice = a.identify(Some(&basic("alice", "secret")));
        let refresh = a.issue_refresh_token(&alice).unwrap();
        let claims = a.tokens.verify(&refresh).unwrap();
        assert!(claims.exp - claims.iat >= DEFAULT_REFRESH_TTL, "{claims:?}");
        let access = a.issue_token(&alice, &[]).unwrap();
        assert_eq!(access.expires_in, 300);
        // An access token neither refreshes nor mints a refresh token.
        assert_eq!(a.refresh_identity(&access.token), Identity::Invalid);
        let by_access = a.identify(Some(&format!("Bearer {}", access.token)));
        assert_eq!(a.issue_refresh_token(&by_access), None);
        // Another process with the same key (a restart, a replica) takes it.
        let cfg = AuthConfig {
            htpasswd: Some(dir.path().join("htpasswd")),
            ..Default::default()
        };
        let b = Authorizer::new(&cfg)
            .unwrap()
            .unwrap()
            .with_signing_key(b"kept in the storage".to_vec());
        assert_eq!(b.refresh_identity(&refresh), Identity::User("alice".into()));
        // A new password in the file revokes it, without a restart; bob's stays good.
        let bob_refresh = b
            .issue_refresh_token(&Identity::User("bob".into()))
            .unwrap();
        let old = std::fs::read_to_string(dir.path().join("htpasswd")).unwrap();
        let bob_line = old.lines().find(|l| l.starts_with("bob:")).unwrap();
        let new_hash = bcrypt::hash("changed", 4).unwrap();
        std::fs::write(
            dir.path().join("htpasswd"),
            format!("alice:{new_hash}\n{bob_line}\n"),
        )
        .unwrap();
        assert_eq!(b.refresh_identity(&refresh), Identity::Invalid);
        assert_eq!(
            b.identify(Some(&basic("alice", "secret"))),
            Identity::Invalid
        );
        assert_eq!(
            b.identify(Some(&basic("alice", "changed"))),
            Identity::User("alice".into())
        );
        assert_eq!(
            b.refresh_identity(&bob_refresh),
            Identity::User("bob".into())
        );
        // A key of its own (the old per-process random key) takes nothing.
        let c = Authorizer::new(&cfg).unwrap().unwrap();
        assert_eq!(c.refresh_identity(&bob_refresh), Identity::Invalid);
    }
}
