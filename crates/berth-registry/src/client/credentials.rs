//! Credentials in a `~/.docker/config.json`-compatible file: `auths` entries of
//! base64(`user:password`), as `docker login` writes them, read and written without
//! disturbing the file's other keys. `DOCKER_CONFIG` names the directory when set.
//!
//! As with Docker, `credHelpers` (per registry) and `credsStore` (for all) name credential
//! helpers: `docker-credential-NAME get|store|erase`, found on `PATH`, talking JSON on stdin
//! and stdout (`{"ServerURL","Username","Secret"}`), so a password never appears in process
//! arguments. With a helper, the file keeps only an empty `auths` entry for the registry.
//! A user name of `<token>` means the secret is an identity (OAuth2 refresh) token.

use std::path::{Path, PathBuf};

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde_json::{Map, Value};

use super::{ClientError, Credentials};

/// The user name that marks an identity token (Docker's convention for helpers).
pub const IDENTITY_TOKEN_USER: &str = "<token>";

/// The key Docker uses for Docker Hub in `auths`.
pub const DOCKER_HUB_KEY: &str = "https://index.docker.io/v1/";

/// One `auths` entry, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthEntry {
    /// The registry key as written.
    pub registry: String,
    /// The credentials.
    pub credentials: Credentials,
}

/// A credentials file.
#[derive(Debug, Clone)]
pub struct CredentialStore {
    path: PathBuf,
}

/// The key under which credentials for `host` are stored (Docker Hub's legacy URL for
/// `docker.io`).
pub fn registry_key(host: &str) -> String {
    match host {
        "docker.io" | "index.docker.io" | "registry-1.docker.io" => DOCKER_HUB_KEY.to_owned(),
        h => h.to_owned(),
    }
}

fn normalize_key(key: &str) -> String {
    let k = key
        .trim_start_matches("https://")
        .trim_start_matches("http://");
    let k = k.split('/').next().unwrap_or(k);
    registry_key(k)
}

impl CredentialStore {
    /// The default file: `$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`.
    pub fn default_location() -> CredentialStore {
        let dir = std::env::var_os("DOCKER_CONFIG")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".docker")))
            .unwrap_or_else(|| PathBuf::from("/root/.docker"));
        CredentialStore {
            path: dir.join("config.json"),
        }
    }

    /// A specific file.
    pub fn at(path: impl Into<PathBuf>) -> CredentialStore {
        CredentialStore { path: path.into() }
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn bad(&self, reason: impl Into<String>) -> ClientError {
        ClientError::Credentials {
            path: self.path.clone(),
            reason: reason.into(),
        }
    }

    fn load(&self) -> Result<Map<String, Value>, ClientError> {
        match std::fs::read(&self.path) {
            Ok(b) if b.iter().all(|c| c.is_ascii_whitespace()) => Ok(Map::new()),
            Ok(b) => match serde_json::from_slice::<Value>(&b) {
                Ok(Value::Object(m)) => Ok(m),
                Ok(_) => Err(self.bad("not a JSON object")),
                Err(e) => Err(self.bad(format!("not valid JSON: {e}"))),
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Map::new()),
            Err(e) => Err(ClientError::Io {
                path: self.path.clone(),
                source: e,
            }),
        }
    }

    fn save(&self, doc: &Map<String, Value>) -> Result<(), ClientError> {
        use std::io::Write;
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        let io = |source| ClientError::Io {
            path: self.path.clone(),
            source,
        };
        let dir = self.path.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).map_err(io)?;
        let tmp = dir.join(format!(".config.json.{}", std::process::id()));
        let text = serde_json::to_vec_pretty(&Value::Object(doc.clone()))
            .map_err(|e| self.bad(e.to_string()))?;
        let result = (|| {
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&tmp)?;
            f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
            f.write_all(&text)?;
            f.write_all(b"\n")?;
            f.sync_all()?;
            std::fs::rename(&tmp, &self.path)
        })();
        if result.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        result.map_err(io)
    }

    /// The credential helper configured for a host: `credHelpers` by host name, else
    /// `credsStore`.
    fn helper_for(doc: &Map<String, Value>, host: &str) -> Option<String> {
        let key = registry_key(host);
        let hostname = normalize_hostname(&key);
        if let Some(Value::Object(helpers)) = doc.get("credHelpers") {
            for (k, v) in helpers {
                if normalize_hostname(k) == hostname {
                    if let Some(name) = v.as_str().filter(|n| !n.is_empty()) {
                        return Some(name.to_owned());
                    }
                }
            }
        }
        doc.get("credsStore")
            .and_then(|v| v.as_str())
            .filter(|n| !n.is_empty())
            .map(str::to_owned)
    }

    /// Runs `docker-credential-NAME VERB` with `input` on stdin: (success, output).
    fn run_helper(
        &self,
        name: &str,
        verb: &str,
        input: &[u8],
    ) -> Result<(bool, String), ClientError> {
        use std::io::Write;
        use std::process::{Command, Stdio};
        let program = format!("docker-credential-{name}");
        let failed = |e: std::io::Error| {
            let err = if e.kind() == std::io::ErrorKind::NotFound {
                format!("exec: \"{program}\": executable file not found in $PATH")
            } else {
                format!("exec: \"{program}\": {e}")
            };
            helper_error(verb, &err, "")
        };
        let mut child = Command::new(&program)
            .arg(verb)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(failed)?;
        if let Some(mut stdin) = child.stdin.take() {
            // A helper may exit without reading (e.g. on a bad verb): its status tells.
            let _ = stdin.write_all(input);
        }
        let out = child.wait_with_output().map_err(failed)?;
        let mut text = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        if text.is_empty() {
            text = String::from_utf8_lossy(&out.stderr).trim().to_owned();
        }
        Ok((out.status.success(), text))
    }

    fn helper_get(&self, name: &str, host: &str) -> Result<Option<Credentials>, ClientError> {
        let server = registry_key(host);
        let (ok, text) = self.run_helper(name, "get", server.as_bytes())?;
        if !ok {
            if text.contains("credentials not found") {
                return Ok(None);
            }
            return Err(helper_error("get", "exit status 1", first_line(&text)));
        }
        let v: Value = serde_json::from_str(&text)
            .map_err(|e| helper_error("get", &format!("not JSON: {e}"), ""))?;
        let field = |k: &str| v.get(k).and_then(|x| x.as_str()).unwrap_or("").to_owned();
        let (username, password) = (field("Username"), field("Secret"));
        if password.is_empty() {
            return Ok(None);
        }
        Ok(Some(Credentials { username, password }))
    }

    /// Which credential helper, if any, holds the credentials of a host (`None`: the file).
    pub fn helper(&self, host: &str) -> Result<Option<String>, ClientError> {
        Ok(Self::helper_for(&self.load()?, host))
    }

    /// The credentials stored for a registry host.
    pub fn get(&self, host: &str) -> Result<Option<Credentials>, ClientError> {
        let doc = self.load()?;
        if let Some(name) = Self::helper_for(&doc, host) {
            return self.helper_get(&name, host);
        }
        let want = registry_key(host);
        let Some(Value::Object(auths)) = doc.get("auths") else {
            return Ok(None);
        };
        for (key, entry) in auths {
            if normalize_key(key) != want {
                continue;
            }
            // An identity token wins over `auth` (Docker writes both, the password empty).
            if let Some(t) = entry
                .get("identitytoken")
                .and_then(|v| v.as_str())
                .filter(|t| !t.is_empty())
            {
                return Ok(Some(Credentials {
                    username: IDENTITY_TOKEN_USER.to_owned(),
                    password: t.to_owned(),
                }));
            }
            if let Some(auth) = entry.get("auth").and_then(|a| a.as_str()) {
                let raw = STANDARD
                    .decode(auth.trim())
                    .map_err(|_| self.bad(format!("auths[{key:?}].auth is not base64")))?;
                let text = String::from_utf8(raw)
                    .map_err(|_| self.bad(format!("auths[{key:?}].auth is not UTF-8")))?;
                let (u, p) = text
                    .split_once(':')
                    .ok_or_else(|| self.bad(format!("auths[{key:?}].auth is not user:password")))?;
                return Ok(Some(Credentials {
                    username: u.to_owned(),
                    password: p.to_owned(),
                }));
            }
            if let (Some(u), Some(p)) = (
                entry.get("username").and_then(|v| v.as_str()),
                entry.get("password").and_then(|v| v.as_str()),
            ) {
                return Ok(Some(Credentials {
                    username: u.to_owned(),
                    password: p.to_owned(),
                }));
            }
        }
        Ok(None)
    }

    /// Stores credentials for a host (replacing older ones): in its credential helper when
    /// one is configured (the file then keeps an empty entry, as Docker's does), else in the
    /// file.
    pub fn store(&self, host: &str, c: &Credentials) -> Result<(), ClientError> {
        let mut doc = self.load()?;
        let key = registry_key(host);
        let helper = Self::helper_for(&doc, host);
        if let Some(name) = &helper {
            let input = serde_json::json!({
                "ServerURL": key,
                "Username": c.username,
                "Secret": c.password,
            });
            let (ok, text) = self.run_helper(name, "store", input.to_string().as_bytes())?;
            if !ok {
                return Err(helper_error("store", "exit status 1", first_line(&text)));
            }
        }
        let auths = doc
            .entry("auths".to_owned())
            .or_insert_with(|| Value::Object(Map::new()));
        if !auths.is_object() {
            *auths = Value::Object(Map::new());
        }
        if let Value::Object(a) = auths {
            a.retain(|k, _| normalize_key(k) != key);
            let mut entry = Map::new();
            if helper.is_none() {
                if c.username == IDENTITY_TOKEN_USER {
                    entry.insert("identitytoken".into(), Value::String(c.password.clone()));
                } else {
                    entry.insert(
                        "auth".into(),
                        Value::String(STANDARD.encode(format!("{}:{}", c.username, c.password))),
                    );
                }
            }
            a.insert(key, Value::Object(entry));
        }
        self.save(&doc)
    }

    /// Removes a host's credentials (from its credential helper too); `false` when the
    /// file had no entry for it.
    pub fn remove(&self, host: &str) -> Result<bool, ClientError> {
        let mut doc = self.load()?;
        let key = registry_key(host);
        if let Some(name) = Self::helper_for(&doc, host) {
            let (ok, text) = self.run_helper(&name, "erase", key.as_bytes())?;
            if !ok && !text.contains("not found") {
                return Err(helper_error("erase", "exit status 1", first_line(&text)));
            }
        }
        let mut removed = false;
        if let Some(Value::Object(a)) = doc.get_mut("auths") {
            let before = a.len();
            a.retain(|k, _| normalize_key(k) != key);
            removed = a.len() != before;
        }
        if removed {
            self.save(&doc)?;
        }
        Ok(removed)
    }
}

/// Docker's wording: ``error getting credentials - err: exec: "docker-credential-x":
/// executable file not found in $PATH, out: ` ` ``.
fn helper_error(verb: &str, err: &str, out: &str) -> ClientError {
    let doing = match verb {
        "get" => "getting",
        "store" => "storing",
        _ => "erasing",
    };
    ClientError::CredentialHelper {
        message: format!("error {doing} credentials - err: {err}, out: `{out}`"),
    }
}

fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or("(no output)")
}

/// `https://index.docker.io/v1/` -> `index.docker.io`; `localhost:5000` stays.
fn normalize_hostname(key: &str) -> String {
    let k = key
        .trim_start_matches("https://")
        .trim_start_matches("http://");
    k.split('/').next().unwrap_or(k).to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_keeps_other_keys() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        // As docker login writes it.
        std::fs::write(
            &path,
            r#"{"auths":{"https://index.docker.io/v1/":{"auth":"dTpw"}},"credsStore":"","experimental":"enabled"}"#,
        )
        .unwrap();
        let s = CredentialStore::at(&path);
        let hub = s.get("docker.io").unwrap().unwrap();
        assert_eq!((hub.username.as_str(), hub.password.as_str()), ("u", "p"));
        let c = Credentials {
            username: "alice".into(),
            password: "s3:cret".into(),
        };
        s.store("localhost:5000", &c).unwrap();
        assert_eq!(s.get("localhost:5000").unwrap(), Some(c));
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains("experimental"));
        assert!(!text.contains("s3:cret"), "password stored in clear");
        assert!(s.remove("localhost:5000").unwrap());
        assert!(!s.remove("localhost:5000").unwrap());
        assert_eq!(s.get("localhost:5000").unwrap(), None);
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
}
