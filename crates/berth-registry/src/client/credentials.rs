//! Credentials in a `~/.docker/config.json`-compatible file: `auths` entries of
//! base64(`user:password`), as `docker login` writes them, read and written without
//! disturbing the file's other keys. `DOCKER_CONFIG` names the directory when set.

use std::path::{Path, PathBuf};

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde_json::{Map, Value};

use super::{ClientError, Credentials};

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

    /// The credentials stored for a registry host.
    pub fn get(&self, host: &str) -> Result<Option<Credentials>, ClientError> {
        let doc = self.load()?;
        let want = registry_key(host);
        let Some(Value::Object(auths)) = doc.get("auths") else {
            return Ok(None);
        };
        for (key, entry) in auths {
            if normalize_key(key) != want {
                continue;
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

    /// Stores credentials for a host (replacing older ones).
    pub fn store(&self, host: &str, c: &Credentials) -> Result<(), ClientError> {
        let mut doc = self.load()?;
        let key = registry_key(host);
        let auths = doc
            .entry("auths".to_owned())
            .or_insert_with(|| Value::Object(Map::new()));
        if !auths.is_object() {
            *auths = Value::Object(Map::new());
        }
        if let Value::Object(a) = auths {
            a.retain(|k, _| normalize_key(k) != key);
            let mut entry = Map::new();
            entry.insert(
                "auth".into(),
                Value::String(STANDARD.encode(format!("{}:{}", c.username, c.password))),
            );
            a.insert(key, Value::Object(entry));
        }
        self.save(&doc)
    }

    /// Removes a host's credentials; `false` when there were none.
    pub fn remove(&self, host: &str) -> Result<bool, ClientError> {
        let mut doc = self.load()?;
        let key = registry_key(host);
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
