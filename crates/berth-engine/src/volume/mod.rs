//! Volumes of the local driver: `volume create|ls|inspect|rm|prune`, and what containers
//! need of them (named and anonymous volumes, the image's `VOLUME`s, filling a new volume
//! from the image, mounting volumes made with `-o type=...`).
//!
//! A volume's data is `ROOT/volumes/<name>/_data` (Docker's layout); its row is in the
//! store ([`berth_store::volumes`]), which decides creation (once per name) and whether
//! it is in use (a container with a row claims it, running or not). Names are checked
//! against Docker's `[a-zA-Z0-9][a-zA-Z0-9_.-]+` before anything is made, so a name never
//! reaches outside `ROOT/volumes`.
//!
//! Filling a new volume from the image ([`copy::copy_up`]) reads the image through
//! [`crate::container::layered::LayeredTree`] (symlinks resolved inside the image, never
//! followed to the host) and writes through directory handles of the volume (nothing
//! created is followed either).

pub mod copy;
pub mod mount;
pub mod plan;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use berth_store::{Store, VolumeRecord, VolumeStoreError};

use crate::container::options::{bad_volume_name, valid_volume_name};

/// Docker's label on anonymous volumes (Docker 23+ prunes only these by default).
pub const ANONYMOUS_LABEL: &str = "com.docker.volume.anonymous";

/// The driver options the local driver takes.
const LOCAL_OPTIONS: &[&str] = &["type", "device", "o", "size"];

/// Errors of volumes.
#[derive(Debug, thiserror::Error)]
pub enum VolumeError {
    /// The name breaks Docker's rule.
    #[error("{}", bad_volume_name(.0))]
    InvalidName(String),
    /// A driver other than `local`.
    #[error("error looking up volume plugin {0}: plugin \"{0}\" not found")]
    UnknownDriver(String),
    /// A driver option the local driver does not know, or options that do not fit.
    #[error("{0}")]
    BadOption(String),
    /// A filter that is not known or does not parse.
    #[error("{0}")]
    BadFilter(String),
    /// The volume tables failed or refused (not found, in use).
    #[error(transparent)]
    Store(#[from] VolumeStoreError),
    /// A file operation failed.
    #[error("{op} {}: {source}", path.display())]
    Io {
        /// What was being done.
        op: &'static str,
        /// The path concerned.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// Mounting a volume made with `-o type=...` failed.
    #[error("error while mounting volume '{}': failed to mount local volume: mount {device}:{}, {detail}", path.display(), path.display())]
    Mount {
        /// The volume's `_data`.
        path: PathBuf,
        /// The device option.
        device: String,
        /// What failed.
        detail: String,
    },
}

impl VolumeError {
    /// The kind of failure.
    pub fn kind(&self) -> crate::ErrorKind {
        use berth_store::ErrorKind as S;
        match self {
            VolumeError::InvalidName(_) | VolumeError::BadOption(_) | VolumeError::BadFilter(_) => {
                crate::ErrorKind::InvalidArgument
            }
            VolumeError::UnknownDriver(_) => crate::ErrorKind::NotFound,
            VolumeError::Store(e) => match e.kind() {
                S::NotFound => crate::ErrorKind::NotFound,
                S::Conflict | S::AlreadyExists => crate::ErrorKind::Conflict,
                _ => crate::ErrorKind::Internal,
            },
            VolumeError::Io { .. } | VolumeError::Mount { .. } => crate::ErrorKind::Internal,
        }
    }

    pub(crate) fn io(op: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.to_owned();
        move |source| VolumeError::Io { op, path, source }
    }
}

type Result<T, E = VolumeError> = std::result::Result<T, E>;

/// `volume create` as asked.
#[derive(Debug, Clone, Default)]
pub struct VolumeCreate {
    /// The name; a random one (64 hex digits) when `None`.
    pub name: Option<String>,
    /// `-d`: only `local`.
    pub driver: Option<String>,
    /// `--label`.
    pub labels: BTreeMap<String, String>,
    /// `-o`.
    pub options: BTreeMap<String, String>,
}

/// A volume as `volume inspect` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Volume {
    /// Its name.
    pub name: String,
    /// `local`.
    pub driver: String,
    /// `ROOT/volumes/<name>/_data`.
    pub mountpoint: PathBuf,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// Driver options.
    pub options: BTreeMap<String, String>,
    /// Made for a container's `-v /path` or an image's `VOLUME`.
    pub anonymous: bool,
    /// Unix nanoseconds.
    pub created: i64,
}

impl Volume {
    fn from_record(root: &Path, r: VolumeRecord) -> Volume {
        Volume {
            mountpoint: data_dir(root, &r.name),
            labels: serde_json::from_str(&r.labels).unwrap_or_default(),
            options: serde_json::from_str(&r.options).unwrap_or_default(),
            anonymous: r.anonymous,
            created: r.created,
            driver: r.driver,
            name: r.name,
        }
    }

    /// Docker's `volume inspect` document.
    pub fn to_json(&self) -> serde_json::Value {
        let created = time::OffsetDateTime::from_unix_timestamp_nanos(self.created as i128)
            .ok()
            .and_then(|t| {
                t.format(&time::format_description::well_known::Rfc3339)
                    .ok()
            })
            .unwrap_or_default();
        serde_json::json!({
            "CreatedAt": created,
            "Driver": self.driver,
            "Labels": self.labels,
            "Mountpoint": self.mountpoint,
            "Name": self.name,
            "Options": self.options,
            "Scope": "local",
        })
    }
}

/// `ROOT/volumes/<name>/_data`.
pub fn data_dir(root: &Path, name: &str) -> PathBuf {
    root.join("volumes").join(name).join("_data")
}

/// What `volume ls` and `volume prune` filter on (`--filter key=value`, all of one key
/// or-ed, keys and-ed, as Docker).
#[derive(Debug, Clone, Default)]
pub struct VolumeFilters {
    /// `dangling=true|false`: not used by any container / used.
    pub dangling: Option<bool>,
    /// `name=`: substrings of the name.
    pub names: Vec<String>,
    /// `driver=`.
    pub drivers: Vec<String>,
    /// `label=key` or `label=key=value`.
    pub labels: Vec<(String, Option<String>)>,
    /// `label!=key` or `label!=key=value` (prune).
    pub not_labels: Vec<(String, Option<String>)>,
}

impl VolumeFilters {
    /// Parses `--filter` values as Docker words their errors.
    pub fn parse(values: &[String]) -> Result<VolumeFilters> {
        let mut f = VolumeFilters::default();
        for v in values {
            let Some((k, val)) = v.split_once('=') else {
                return Err(VolumeError::BadFilter(
                    "bad format of filter (expected name=value)".into(),
                ));
            };
            let kv = |s: &str| match s.split_once('=') {
                Some((a, b)) => (a.to_string(), Some(b.to_string())),
                None => (s.to_string(), None),
            };
            match k {
                "dangling" => {
                    f.dangling = Some(match val.to_ascii_lowercase().as_str() {
                        "true" | "1" => true,
                        "false" | "0" => false,
                        _ => {
                            return Err(VolumeError::BadFilter(format!(
                                "invalid filter 'dangling={val}'"
                            )))
                        }
                    })
                }
                "name" => f.names.push(val.to_string()),
                "driver" => f.drivers.push(val.to_string()),
                "label" => f.labels.push(kv(val)),
                // `label!=k` reaches us as key `label!` when split at the first '='.
                "label!" => f.not_labels.push(kv(val)),
                _ => return Err(VolumeError::BadFilter(format!("invalid filter '{k}'"))),
            }
        }
        Ok(f)
    }

    fn label_match(labels: &BTreeMap<String, String>, (k, v): &(String, Option<String>)) -> bool {
        match (labels.get(k), v) {
            (Some(_), None) => true,
            (Some(have), Some(want)) => have == want,
            (None, _) => false,
        }
    }

    /// Whether `v` (used by `users` containers) passes.
    pub fn matches(&self, v: &Volume, users: usize) -> bool {
        self.dangling.is_none_or(|d| d == (users == 0))
            && (self.names.is_empty() || self.names.iter().any(|n| v.name.contains(n.as_str())))
            && (self.drivers.is_empty() || self.drivers.contains(&v.driver))
            && self.labels.iter().all(|l| Self::label_match(&v.labels, l))
            && !self
                .not_labels
                .iter()
                .any(|l| Self::label_match(&v.labels, l))
    }
}

/// What `volume prune` removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PruneReport {
    /// Names of the removed volumes.
    pub removed: Vec<String>,
    /// Bytes their data took.
    pub space_reclaimed: u64,
}

/// One volume's line of `system df -v`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeUsage {
    /// The volume.
    pub name: String,
    /// How many containers use it.
    pub links: usize,
    /// Bytes of its data.
    pub size: u64,
}

/// A new random name: 64 hex digits, as Docker names anonymous volumes.
pub fn random_name() -> String {
    crate::container::names::new_id()
}

/// Checks the options of the local driver (`type`, `device`, `o`, `size`).
pub fn check_options(options: &BTreeMap<String, String>) -> Result<()> {
    for k in options.keys() {
        if !LOCAL_OPTIONS.contains(&k.as_str()) {
            return Err(VolumeError::BadOption(format!("invalid option key: {k:?}")));
        }
    }
    let ty = options.get("type").map(String::as_str).unwrap_or("");
    let device = options.get("device").map(String::as_str).unwrap_or("");
    if !ty.is_empty() && device.is_empty() {
        return Err(VolumeError::BadOption(
            "missing required option: \"device\"".into(),
        ));
    }
    if ty.is_empty() && !device.is_empty() {
        return Err(VolumeError::BadOption(
            "missing required option: \"type\"".into(),
        ));
    }
    if options.contains_key("size") && ty != "tmpfs" {
        return Err(VolumeError::BadOption(
            "quota size requested but no quota support".into(),
        ));
    }
    if mount::is_bind(options) && !device.starts_with('/') {
        return Err(VolumeError::BadOption(format!(
            "invalid device path {device:?}: a bind device must be an absolute path"
        )));
    }
    Ok(())
}

fn record(
    name: &str,
    labels: &BTreeMap<String, String>,
    options: &BTreeMap<String, String>,
    anonymous: bool,
) -> VolumeRecord {
    VolumeRecord {
        name: name.to_string(),
        driver: "local".into(),
        labels: serde_json::to_string(labels).unwrap_or_else(|_| "{}".into()),
        options: serde_json::to_string(options).unwrap_or_else(|_| "{}".into()),
        anonymous,
        created: crate::container::now_nanos(),
    }
}

/// The record of a volume a container's mount creates when it is missing.
pub fn record_for_mount(
    name: &str,
    anonymous: bool,
    labels: &BTreeMap<String, String>,
    options: &BTreeMap<String, String>,
) -> Result<VolumeRecord> {
    check_options(options)?;
    let mut labels = labels.clone();
    if anonymous {
        labels.insert(ANONYMOUS_LABEL.into(), String::new());
    }
    Ok(record(name, &labels, options, anonymous))
}

/// Makes `ROOT/volumes/<name>/_data` when missing (closed to other users above `_data`,
/// which is `0755` root's as Docker's).
pub fn make_data_dir(root: &Path, name: &str) -> Result<PathBuf> {
    use std::os::unix::fs::DirBuilderExt;
    let volumes = root.join("volumes");
    berth_store::private_dir(&volumes).map_err(|e| VolumeError::Io {
        op: "creating",
        path: volumes.clone(),
        source: std::io::Error::other(e.to_string()),
    })?;
    let dir = volumes.join(name);
    match fs::DirBuilder::new().mode(0o701).create(&dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(VolumeError::io("creating", &dir)(e)),
    }
    let data = dir.join("_data");
    match fs::DirBuilder::new().mode(0o755).create(&data) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(VolumeError::io("creating", &data)(e)),
    }
    Ok(data)
}

/// Creates a volume (or returns the one of that name, as Docker's local driver does).
/// Nothing is left when it fails: a row this call added goes again if its directory cannot
/// be made.
pub fn create(store: &Store, req: &VolumeCreate) -> Result<Volume> {
    let name = match &req.name {
        Some(n) if !valid_volume_name(n) => return Err(VolumeError::InvalidName(n.clone())),
        Some(n) => n.clone(),
        None => random_name(),
    };
    match req.driver.as_deref() {
        None | Some("") | Some("local") => {}
        Some(d) => return Err(VolumeError::UnknownDriver(d.to_string())),
    }
    check_options(&req.options)?;
    let (rec, created) = store.create_volume(&record(&name, &req.labels, &req.options, false))?;
    if let Err(e) = make_data_dir(store.root(), &name) {
        if created {
            let _ = store.delete_volume(&name, true, |_| {
                let _ = fs::remove_dir_all(store.volume_dir(&name));
                Ok(())
            });
        }
        return Err(e);
    }
    Ok(Volume::from_record(store.root(), rec))
}

/// The volume named `name`.
pub fn inspect(store: &Store, name: &str) -> Result<Volume> {
    match store.volume(name)? {
        Some(r) => Ok(Volume::from_record(store.root(), r)),
        None => Err(VolumeStoreError::NotFound(name.to_string()).into()),
    }
}

/// Every volume that passes `filters`, by name.
pub fn list(store: &Store, filters: &VolumeFilters) -> Result<Vec<Volume>> {
    let counts = store.volume_user_counts()?;
    Ok(store
        .list_volumes()?
        .into_iter()
        .map(|r| Volume::from_record(store.root(), r))
        .filter(|v| filters.matches(v, counts.get(&v.name).copied().unwrap_or(0)))
        .collect())
}

/// Where a removed volume's directory goes before it is deleted: `ROOT/volumes/.trash-<name>`
/// (a dot is never the first character of a volume name).
fn trash_of(store: &Store, name: &str) -> PathBuf {
    store.root().join("volumes").join(format!(".trash-{name}"))
}

/// Unmounts what `-o type=...` mounted, then renames the directory aside.
fn set_aside(store: &Store, name: &str) -> std::io::Result<()> {
    mount::unmount_data(&data_dir(store.root(), name))?;
    let trash = trash_of(store, name);
    let _ = fs::remove_dir_all(&trash);
    match fs::rename(store.volume_dir(name), &trash) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

fn delete_trash(store: &Store, name: &str) -> u64 {
    let trash = trash_of(store, name);
    let size = dir_size(&trash);
    if let Err(e) = fs::remove_dir_all(&trash) {
        if e.kind() != std::io::ErrorKind::NotFound {
            log::warn!("removing {}: {e}", trash.display());
        }
    }
    size
}

/// Removes the volume `name`; a volume that a container uses (running or not) is refused
/// with Docker's `volume is in use - [IDs]`.
pub fn remove(store: &Store, name: &str) -> Result<()> {
    store.delete_volume(name, false, |_| set_aside(store, name))?;
    delete_trash(store, name);
    Ok(())
}

/// Removes the unused volumes that pass `filters`: only anonymous ones unless `all` (Docker
/// 23+).
pub fn prune(store: &Store, filters: &VolumeFilters, all: bool) -> Result<PruneReport> {
    let removed = store.prune_volumes(
        |r| {
            let v = Volume::from_record(store.root(), r.clone());
            !(all || v.anonymous || v.labels.contains_key(ANONYMOUS_LABEL))
                || !filters.matches(&v, 0)
        },
        |r| set_aside(store, &r.name),
    )?;
    let mut report = PruneReport::default();
    for r in removed {
        report.space_reclaimed += delete_trash(store, &r.name);
        report.removed.push(r.name);
    }
    Ok(report)
}

/// Each volume with its users and size (`system df`).
pub fn usage(store: &Store) -> Result<Vec<VolumeUsage>> {
    let counts = store.volume_user_counts()?;
    Ok(store
        .list_volumes()?
        .into_iter()
        .map(|r| VolumeUsage {
            links: counts.get(&r.name).copied().unwrap_or(0),
            size: dir_size(&data_dir(store.root(), &r.name)),
            name: r.name,
        })
        .collect())
}

/// Bytes of the regular files under `dir` (not following symlinks, not crossing into other
/// file systems' mounts).
pub fn dir_size(dir: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let Ok(top) = fs::symlink_metadata(dir) else {
        return 0;
    };
    let dev = top.dev();
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = fs::read_dir(&d) else { continue };
        for e in rd.flatten() {
            let Ok(md) = e.metadata() else { continue };
            if md.is_dir() {
                if md.dev() == dev {
                    stack.push(e.path());
                }
            } else if md.is_file() {
                total += md.blocks() * 512;
            }
        }
    }
    total
}

/// Removes a container's anonymous volumes (`rm -v`): one that another container still
/// uses (through `--volumes-from`) stays, as in Docker.
pub fn remove_anonymous(store: &Store, names: &[String]) -> Result<()> {
    for n in names {
        match store.volume(n)? {
            Some(r) if r.anonymous => match remove(store, n) {
                Ok(()) => {}
                Err(VolumeError::Store(VolumeStoreError::InUse { .. })) => {}
                Err(VolumeError::Store(VolumeStoreError::NotFound(_))) => {}
                Err(e) => return Err(e),
            },
            _ => {}
        }
    }
    Ok(())
}

impl crate::Engine {
    /// `volume create`.
    pub fn create_volume(&self, req: &VolumeCreate) -> Result<Volume, crate::Error> {
        Ok(create(&self.store, req)?)
    }

    /// `volume inspect`.
    pub fn inspect_volume(&self, name: &str) -> Result<Volume, crate::Error> {
        Ok(inspect(&self.store, name)?)
    }

    /// `volume ls`.
    pub fn list_volumes(&self, filters: &VolumeFilters) -> Result<Vec<Volume>, crate::Error> {
        Ok(list(&self.store, filters)?)
    }

    /// `volume rm` (one volume).
    pub fn remove_volume(&self, name: &str) -> Result<(), crate::Error> {
        Ok(remove(&self.store, name)?)
    }

    /// `volume prune` (and `system prune --volumes`): the unused volumes that pass
    /// `filters`, anonymous ones only unless `all`.
    pub fn prune_volumes(
        &self,
        filters: &VolumeFilters,
        all: bool,
    ) -> Result<PruneReport, crate::Error> {
        Ok(prune(&self.store, filters, all)?)
    }

    /// Each volume's links and size (`system df`).
    pub fn volume_usage(&self) -> Result<Vec<VolumeUsage>, crate::Error> {
        Ok(usage(&self.store)?)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn names_options_and_filters() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let bad = create(
            &store,
            &VolumeCreate {
                name: Some("../x".into()),
                ..Default::default()
            },
        )
        .unwrap_err();
        assert!(
            bad.to_string().contains("includes invalid characters"),
            "{bad}"
        );
        let opt = |k: &str, v: &str| BTreeMap::from([(k.to_string(), v.to_string())]);
        for (o, why) in [
            (opt("bogus", "1"), "invalid option key: \"bogus\""),
            (opt("type", "tmpfs"), "missing required option: \"device\""),
        ] {
            let e = create(
                &store,
                &VolumeCreate {
                    name: Some("v1".into()),
                    options: o,
                    ..Default::default()
                },
            )
            .unwrap_err();
            assert_eq!(e.to_string(), why);
        }
        // Nothing was made by the failures.
        assert!(store.list_volumes().unwrap().is_empty());
        assert!(!dir.path().join("volumes/v1").exists());
        let v = create(
            &store,
            &VolumeCreate {
                name: Some("v1".into()),
                labels: opt("team", "a"),
                ..Default::default()
            },
        )
        .unwrap();
        assert!(v.mountpoint.is_dir());
        let f = VolumeFilters::parse(&["label=team=a".into(), "dangling=true".into()]).unwrap();
        assert_eq!(list(&store, &f).unwrap().len(), 1);
        let f = VolumeFilters::parse(&["label=team=b".into()]).unwrap();
        assert!(list(&store, &f).unwrap().is_empty());
        assert!(VolumeFilters::parse(&["bogus=1".into()]).is_err());
        // Named volumes are kept by a default prune, removed by prune -a.
        assert!(prune(&store, &VolumeFilters::default(), false)
            .unwrap()
            .removed
            .is_empty());
        let r = prune(&store, &VolumeFilters::default(), true).unwrap();
        assert_eq!(r.removed, vec!["v1".to_string()]);
        assert!(!dir.path().join("volumes/v1").exists());
        assert!(!dir.path().join("volumes/.trash-v1").exists());
    }
}
