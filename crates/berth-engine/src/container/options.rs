//! Parsing and validation of `run`/`create` flag values, with Docker's messages.
//!
//! Each function takes the raw text a user typed and returns a typed value or an
//! [`OptionError`] whose message is the one-liner Docker prints for the same input.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// A flag value that does not parse or does not make sense.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OptionError {
    /// A value that does not parse as the flag's type.
    #[error("invalid argument \"{value}\" for \"{flag}\" flag: {reason}")]
    BadValue {
        /// The flag as Docker names it, e.g. `-m, --memory`.
        flag: &'static str,
        /// The value typed.
        value: String,
        /// Why it does not parse.
        reason: String,
    },
    /// Values that parse but contradict each other or the engine's limits.
    #[error("{0}")]
    Conflict(String),
}

impl OptionError {
    /// The kind of failure: always bad input.
    pub fn kind(&self) -> super::ErrorKind {
        super::ErrorKind::InvalidArgument
    }

    fn bad(flag: &'static str, value: &str, reason: impl Into<String>) -> Self {
        OptionError::BadValue {
            flag,
            value: value.to_string(),
            reason: reason.into(),
        }
    }
}

/// Parses a size such as `200m`, `1G`, `64MiB`, `1024` into bytes (binary units, as Docker's
/// `RAMInBytes`).
pub fn parse_size(flag: &'static str, value: &str) -> Result<i64, OptionError> {
    let invalid = || OptionError::bad(flag, value, format!("invalid size: '{value}'"));
    let s = value.trim();
    let num_end = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(num_end);
    if num.is_empty() || num.starts_with('.') || num.ends_with('.') {
        return Err(invalid());
    }
    let n: f64 = num.parse().map_err(|_| invalid())?;
    let unit = unit.strip_prefix(' ').unwrap_or(unit).to_ascii_lowercase();
    let mut chars = unit.chars();
    let mult: f64 = match chars.next() {
        None => 1.0,
        Some('b') if unit.len() == 1 => 1.0,
        Some(c) => {
            let m = match c {
                'k' => 1u64 << 10,
                'm' => 1 << 20,
                'g' => 1 << 30,
                't' => 1 << 40,
                'p' => 1 << 50,
                _ => return Err(invalid()),
            };
            let rest: String = chars.collect();
            if !matches!(rest.as_str(), "" | "b" | "i" | "ib") {
                return Err(invalid());
            }
            m as f64
        }
    };
    let bytes = n * mult;
    if !bytes.is_finite() || bytes > i64::MAX as f64 {
        return Err(invalid());
    }
    Ok(bytes as i64)
}

/// Parses `--memory-swap`: `-1` (unlimited) or a size.
pub fn parse_swap(value: &str) -> Result<i64, OptionError> {
    if value.trim() == "-1" {
        return Ok(-1);
    }
    parse_size("--memory-swap", value)
}

/// Parses a signed integer flag (`--cpu-shares`, `--pids-limit`, ...).
pub fn parse_int(flag: &'static str, value: &str) -> Result<i64, OptionError> {
    value.trim().parse::<i64>().map_err(|_| {
        OptionError::bad(
            flag,
            value,
            format!("strconv.ParseInt: parsing \"{value}\": invalid syntax"),
        )
    })
}

/// Parses `--cpus 1.5` into nano-CPUs.
pub fn parse_cpus(value: &str) -> Result<i64, OptionError> {
    let bad = || {
        OptionError::bad(
            "--cpus",
            value,
            format!("failed to parse {value} as a rational number"),
        )
    };
    let f: f64 = value.trim().parse().map_err(|_| bad())?;
    if !f.is_finite() || f < 0.0 {
        return Err(bad());
    }
    let nano = (f * 1e9).round();
    if nano > i64::MAX as f64 {
        return Err(bad());
    }
    Ok(nano as i64)
}

/// Validates a cpuset list such as `0-2,4`.
pub fn parse_cpuset(value: &str) -> Result<String, OptionError> {
    let bad = || OptionError::Conflict(format!("invalid value {value} for cpuset cpus"));
    let v = value.trim();
    if v.is_empty() {
        return Err(bad());
    }
    for part in v.split(',') {
        let (a, b) = match part.split_once('-') {
            Some((a, b)) => (a, b),
            None => (part, part),
        };
        let a: u32 = a.parse().map_err(|_| bad())?;
        let b: u32 = b.parse().map_err(|_| bad())?;
        if a > b {
            return Err(bad());
        }
    }
    Ok(v.to_string())
}

/// Docker's `--restart` policy.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestartPolicy {
    /// `no`, `always`, `unless-stopped` or `on-failure`.
    #[serde(rename = "Name")]
    pub name: String,
    /// For `on-failure`: how many restarts at most (0 = no limit).
    #[serde(rename = "MaximumRetryCount")]
    pub maximum_retry_count: i64,
}

impl RestartPolicy {
    /// Parses `no|always|unless-stopped|on-failure[:N]`.
    pub fn parse(value: &str) -> Result<Self, OptionError> {
        let (name, count) = match value.split_once(':') {
            Some((n, c)) => (n, Some(c)),
            None => (value, None),
        };
        let bad = |why: &str| OptionError::bad("--restart", value, why.to_string());
        match (name, count) {
            ("" | "no", None) => Ok(RestartPolicy {
                name: "no".into(),
                maximum_retry_count: 0,
            }),
            ("always" | "unless-stopped", None) => Ok(RestartPolicy {
                name: name.into(),
                maximum_retry_count: 0,
            }),
            ("always" | "unless-stopped" | "no", Some(_)) => Err(bad(&format!(
                "maximum retry count cannot be used with restart policy '{name}'"
            ))),
            ("on-failure", None) => Ok(RestartPolicy {
                name: name.into(),
                maximum_retry_count: 0,
            }),
            ("on-failure", Some(c)) => {
                let n: i64 = c
                    .parse()
                    .map_err(|_| bad("maximum retry count must be an integer"))?;
                if n < 0 {
                    return Err(bad("maximum retry count cannot be negative"));
                }
                Ok(RestartPolicy {
                    name: name.into(),
                    maximum_retry_count: n,
                })
            }
            _ => Err(bad(&format!("invalid restart policy '{name}'"))),
        }
    }

    /// True for the policy `no`.
    pub fn is_none(&self) -> bool {
        self.name.is_empty() || self.name == "no"
    }

    /// Whether a container that exited with `code` should be started again, given how many
    /// times it was restarted already and whether the user stopped it.
    pub fn should_restart(&self, code: i32, restarts: i64, stopped_by_user: bool) -> bool {
        if stopped_by_user {
            return false;
        }
        match self.name.as_str() {
            "always" | "unless-stopped" => true,
            "on-failure" => {
                code != 0 && (self.maximum_retry_count == 0 || restarts < self.maximum_retry_count)
            }
            _ => false,
        }
    }
}

/// Parses a signal given by name (`TERM`, `SIGTERM`, `sigkill`) or number.
pub fn parse_signal(flag: &'static str, value: &str) -> Result<i32, OptionError> {
    let v = value.trim();
    if let Ok(n) = v.parse::<i32>() {
        if (1..=64).contains(&n) {
            return Ok(n);
        }
        return Err(OptionError::Conflict(format!("Invalid signal: {value}")));
    }
    let upper = v.to_ascii_uppercase();
    let name = upper.strip_prefix("SIG").unwrap_or(&upper);
    let n = match name {
        "HUP" => 1,
        "INT" => 2,
        "QUIT" => 3,
        "ILL" => 4,
        "TRAP" => 5,
        "ABRT" | "IOT" => 6,
        "BUS" => 7,
        "FPE" => 8,
        "KILL" => 9,
        "USR1" => 10,
        "SEGV" => 11,
        "USR2" => 12,
        "PIPE" => 13,
        "ALRM" => 14,
        "TERM" => 15,
        "STKFLT" => 16,
        "CHLD" => 17,
        "CONT" => 18,
        "STOP" => 19,
        "TSTP" => 20,
        "TTIN" => 21,
        "TTOU" => 22,
        "URG" => 23,
        "XCPU" => 24,
        "XFSZ" => 25,
        "VTALRM" => 26,
        "PROF" => 27,
        "WINCH" => 28,
        "IO" | "POLL" => 29,
        "PWR" => 30,
        "SYS" => 31,
        _ => {
            if let Some(rest) = name.strip_prefix("RTMIN+") {
                if let Ok(k) = rest.parse::<i32>() {
                    if (0..=30).contains(&k) {
                        return Ok(34 + k);
                    }
                }
            }
            let _ = flag;
            return Err(OptionError::Conflict(format!("Invalid signal: {value}")));
        }
    };
    Ok(n)
}

/// Parses `KEY=VALUE` pairs of `-e`, taking `KEY` alone from `host_env` (dropped when unset).
pub fn parse_env(
    values: &[String],
    host_env: &dyn Fn(&str) -> Option<String>,
) -> Result<Vec<String>, OptionError> {
    let mut out = Vec::new();
    for v in values {
        match v.split_once('=') {
            Some(("", _)) => {
                return Err(OptionError::bad(
                    "-e, --env",
                    v,
                    "invalid environment variable: ".to_string() + v,
                ))
            }
            Some(_) => out.push(v.clone()),
            None => {
                if v.is_empty() {
                    return Err(OptionError::bad(
                        "-e, --env",
                        v,
                        "invalid environment variable: ",
                    ));
                }
                if let Some(val) = host_env(v) {
                    out.push(format!("{v}={val}"));
                }
            }
        }
    }
    Ok(out)
}

/// Reads an `--env-file`: one `KEY=VALUE` a line, `#` comments and blank lines skipped, a
/// bare `KEY` taken from `host_env`.
pub fn parse_env_file(
    path: &Path,
    host_env: &dyn Fn(&str) -> Option<String>,
) -> Result<Vec<String>, OptionError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| OptionError::Conflict(format!("open {}: {}", path.display(), io_text(&e))))?;
    let mut lines = Vec::new();
    for line in text.lines() {
        let l = line.trim_start();
        if l.is_empty() || l.starts_with('#') {
            continue;
        }
        if let Some((k, _)) = l.split_once('=') {
            if k.is_empty() || k.contains(char::is_whitespace) {
                return Err(OptionError::Conflict(format!(
                    "variable '{k}' contains whitespaces"
                )));
            }
        }
        lines.push(l.to_string());
    }
    parse_env(&lines, host_env)
}

/// The text of an I/O error without Rust's "(os error N)" suffix.
pub fn io_text(e: &std::io::Error) -> String {
    let s = e.to_string();
    match s.find(" (os error") {
        Some(i) => s[..i].to_string().to_lowercase(),
        None => s,
    }
}

/// Where a container's network lives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum NetworkMode {
    /// Its own namespace with only `lo`.
    None,
    /// The host's namespace.
    Host,
    /// A named bridge network (`bridge` is the default one).
    Bridge(String),
}

impl NetworkMode {
    /// Parses `--network`.
    pub fn parse(value: &str) -> Result<Self, OptionError> {
        match value {
            "none" => Ok(NetworkMode::None),
            "host" => Ok(NetworkMode::Host),
            "" | "default" | "bridge" => Ok(NetworkMode::Bridge("bridge".into())),
            v if v.starts_with("container:") => Err(OptionError::Conflict(format!(
                "network mode {v} is not supported"
            ))),
            v => Ok(NetworkMode::Bridge(v.to_string())),
        }
    }

    /// Docker's text for `HostConfig.NetworkMode`.
    pub fn as_str(&self) -> &str {
        match self {
            NetworkMode::None => "none",
            NetworkMode::Host => "host",
            NetworkMode::Bridge(n) => n,
        }
    }
}

/// What a mount is: a host path, a volume, or a tmpfs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MountKind {
    /// A host path bound in (`-v /host:/ctr`, `--mount type=bind`).
    Bind,
    /// A named or anonymous volume (`-v name:/ctr`, `-v /ctr`, `--mount type=volume`).
    Volume,
    /// A tmpfs (`--mount type=tmpfs`).
    Tmpfs,
}

/// One `-v` / `--volume` or `--mount` (or a volume the image declares, or one taken from
/// `--volumes-from`): where it comes from and where it goes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VolumeSpec {
    /// Host path (absolute) or volume name; `None` for an anonymous volume (until create
    /// names it) and a tmpfs.
    pub source: Option<String>,
    /// Path inside the container (absolute).
    pub destination: String,
    /// Mounted read-only.
    pub read_only: bool,
    /// The kind; `None` in containers an older berth made (then the source decides).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<MountKind>,
    /// Bind propagation (`rprivate` when empty).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub propagation: String,
    /// `bind-nonrecursive`: submounts of the source are not bound.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub nonrecursive: bool,
    /// `volume-nocopy` / `-v ...:nocopy`: a new volume is not filled from the image.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub nocopy: bool,
    /// `volume-opt`: driver options for a volume this mount creates.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub volume_options: BTreeMap<String, String>,
    /// `volume-label`: labels for a volume this mount creates.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub volume_labels: BTreeMap<String, String>,
    /// `tmpfs-size` in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tmpfs_size: Option<i64>,
    /// `tmpfs-mode` (octal permission bits).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tmpfs_mode: Option<u32>,
    /// An anonymous volume (`-v /ctr`, the image's `VOLUME`): `rm -v` removes it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub anonymous: bool,
    /// From `--mount`: a missing bind source is an error (`-v` creates it).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub strict_source: bool,
}

/// Docker's rule for local volume names: `[a-zA-Z0-9][a-zA-Z0-9_.-]+`.
pub fn valid_volume_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphanumeric())
        && name.len() >= 2
        && name.len() <= 255
        && chars.all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
}

/// Docker's message for a bad volume name (also what a relative host path gets).
pub fn bad_volume_name(name: &str) -> String {
    format!(
        "create {name}: \"{name}\" includes invalid characters for a local volume name, \
         only \"[a-zA-Z0-9][a-zA-Z0-9_.-]\" are allowed. If you intended to pass a host \
         directory, use absolute path"
    )
}

const PROPAGATIONS: &[&str] = &[
    "rprivate", "private", "rslave", "slave", "rshared", "shared",
];

/// Checks what every mount needs: an absolute target other than `/`, without `..`.
fn check_destination(dest: &str, bad: &dyn Fn(&str) -> OptionError) -> Result<(), OptionError> {
    if !dest.starts_with('/') {
        return Err(bad(&format!(
            "invalid mount path: '{dest}' mount path must be absolute"
        )));
    }
    if dest.split('/').all(|c| c.is_empty() || c == ".") {
        return Err(bad("invalid specification: destination can't be '/'"));
    }
    if dest.split('/').any(|c| c == "..") {
        return Err(bad(&format!(
            "invalid mount path: '{dest}' must not contain '..'"
        )));
    }
    Ok(())
}

impl VolumeSpec {
    fn new(kind: MountKind, source: Option<String>, destination: String) -> Self {
        VolumeSpec {
            source,
            destination,
            read_only: false,
            kind: Some(kind),
            propagation: String::new(),
            nonrecursive: false,
            nocopy: false,
            volume_options: BTreeMap::new(),
            volume_labels: BTreeMap::new(),
            tmpfs_size: None,
            tmpfs_mode: None,
            anonymous: false,
            strict_source: false,
        }
    }

    /// An anonymous volume at `destination` (`-v /ctr`, the image's `VOLUME`).
    pub fn anonymous_at(destination: &str) -> Self {
        let mut v = VolumeSpec::new(MountKind::Volume, None, destination.to_string());
        v.anonymous = true;
        v
    }

    /// Parses `-v`: `host:ctr[:opts]`, `name:ctr[:opts]` or `/ctr`; opts are `ro`, `rw`,
    /// a propagation, `nocopy`, `z`/`Z`.
    pub fn parse(value: &str) -> Result<Self, OptionError> {
        let bad = |why: &str| {
            OptionError::Conflict(format!("invalid volume specification: '{value}': {why}"))
        };
        let parts: Vec<&str> = value.split(':').collect();
        let (source, dest, opts) = match parts.as_slice() {
            [d] => (None, *d, ""),
            [s, d] => (Some(*s), *d, ""),
            [s, d, o] => (Some(*s), *d, *o),
            _ => return Err(bad("too many colons")),
        };
        if source.is_some_and(str::is_empty) || dest.is_empty() {
            return Err(bad("invalid volume specification"));
        }
        check_destination(dest, &|why| bad(why))?;
        let kind = match source {
            Some(s) if s.starts_with('/') => MountKind::Bind,
            _ => MountKind::Volume,
        };
        let mut v = VolumeSpec::new(kind, source.map(str::to_string), dest.to_string());
        v.anonymous = source.is_none();
        for o in opts.split(',').filter(|o| !o.is_empty()) {
            match o {
                "ro" => v.read_only = true,
                "rw" => v.read_only = false,
                "nocopy" if kind == MountKind::Volume => v.nocopy = true,
                "z" | "Z" => {}
                p if PROPAGATIONS.contains(&p) && kind == MountKind::Bind => {
                    v.propagation = p.to_string()
                }
                _ => return Err(bad(&format!("invalid mode: {opts}"))),
            }
        }
        if let Some(s) = source.filter(|_| kind == MountKind::Volume) {
            if !valid_volume_name(s) {
                return Err(OptionError::Conflict(bad_volume_name(s)));
            }
        }
        Ok(v)
    }

    /// Parses `--mount type=bind|volume|tmpfs,source=..,target=..,...` with Docker's keys.
    pub fn parse_mount(value: &str) -> Result<Self, OptionError> {
        let flag_err = |why: String| OptionError::BadValue {
            flag: "--mount",
            value: value.to_string(),
            reason: why,
        };
        let bool_of = |k: &str, v: Option<&str>| -> Result<bool, OptionError> {
            match v.map(str::to_ascii_lowercase).as_deref() {
                None | Some("1") | Some("true") => Ok(true),
                Some("0") | Some("false") => Ok(false),
                Some(other) => Err(flag_err(format!("invalid value for {k}: {other}"))),
            }
        };
        let mut kind = MountKind::Volume;
        let mut source = None;
        let mut target = None;
        let mut read_only = false;
        let mut propagation = String::new();
        let mut nonrecursive = false;
        let mut nocopy = false;
        let mut volume_options = BTreeMap::new();
        let mut volume_labels = BTreeMap::new();
        let mut tmpfs_size = None;
        let mut tmpfs_mode = None;
        // Which group of options was used, to refuse those of another type.
        let (mut bind_opts, mut volume_opts, mut tmpfs_opts) = (false, false, false);
        for field in split_csv(value).map_err(flag_err)? {
            let (key, val) = match field.split_once('=') {
                Some((k, v)) => (k.trim().to_ascii_lowercase(), Some(v.to_string())),
                None => (field.trim().to_ascii_lowercase(), None),
            };
            let need = |val: &Option<String>| -> Result<String, OptionError> {
                val.clone().ok_or_else(|| {
                    flag_err(format!("invalid field '{field}' must be a key=value pair"))
                })
            };
            match key.as_str() {
                "type" => {
                    kind = match need(&val)?.as_str() {
                        "bind" => MountKind::Bind,
                        "volume" => MountKind::Volume,
                        "tmpfs" => MountKind::Tmpfs,
                        t => return Err(flag_err(format!("unsupported mount type: {t}"))),
                    }
                }
                "source" | "src" => source = Some(need(&val)?),
                "target" | "dst" | "destination" => target = Some(need(&val)?),
                "readonly" | "ro" => read_only = bool_of(&key, val.as_deref())?,
                "consistency" => {
                    need(&val)?;
                }
                "bind-propagation" => {
                    bind_opts = true;
                    let p = need(&val)?.to_ascii_lowercase();
                    if !PROPAGATIONS.contains(&p.as_str()) {
                        return Err(flag_err(format!("invalid propagation mode: {p}")));
                    }
                    propagation = p;
                }
                "bind-nonrecursive" => {
                    bind_opts = true;
                    nonrecursive = bool_of(&key, val.as_deref())?;
                }
                "volume-nocopy" => {
                    volume_opts = true;
                    nocopy = bool_of(&key, val.as_deref())?;
                }
                "volume-driver" => {
                    volume_opts = true;
                    let d = need(&val)?;
                    if d != "local" {
                        return Err(OptionError::Conflict(format!(
                            "error looking up volume plugin {d}: plugin \"{d}\" not found"
                        )));
                    }
                }
                "volume-opt" | "volume-label" => {
                    volume_opts = true;
                    let kv = need(&val)?;
                    let (k, v) = kv
                        .split_once('=')
                        .ok_or_else(|| flag_err(format!("invalid value for {key}: {kv}")))?;
                    let map = if key == "volume-opt" {
                        &mut volume_options
                    } else {
                        &mut volume_labels
                    };
                    map.insert(k.to_string(), v.to_string());
                }
                "tmpfs-size" => {
                    tmpfs_opts = true;
                    tmpfs_size = Some(parse_size("--mount", &need(&val)?)?);
                }
                "tmpfs-mode" => {
                    tmpfs_opts = true;
                    let m = need(&val)?;
                    tmpfs_mode = Some(
                        u32::from_str_radix(&m, 8)
                            .map_err(|_| flag_err(format!("invalid value for {key}: {m}")))?,
                    );
                }
                _ => {
                    return Err(flag_err(format!("unexpected key '{key}' in '{field}'")));
                }
            }
        }
        let ty = match kind {
            MountKind::Bind => "bind",
            MountKind::Volume => "volume",
            MountKind::Tmpfs => "tmpfs",
        };
        let cfg = |why: &str| {
            OptionError::Conflict(format!("invalid mount config for type \"{ty}\": {why}"))
        };
        let target = target.filter(|t| !t.is_empty());
        let Some(target) = target else {
            return Err(cfg("field Target must not be empty"));
        };
        check_destination(&target, &|why| cfg(why))?;
        let source = source.filter(|s| !s.is_empty());
        match kind {
            MountKind::Bind => {
                if volume_opts {
                    return Err(cfg("field VolumeOptions must not be specified"));
                }
                if tmpfs_opts {
                    return Err(cfg("field TmpfsOptions must not be specified"));
                }
                let Some(s) = &source else {
                    return Err(cfg("field Source must not be empty"));
                };
                if !s.starts_with('/') {
                    return Err(cfg(&format!(
                        "invalid mount path: '{s}' mount path must be absolute"
                    )));
                }
            }
            MountKind::Volume => {
                if bind_opts {
                    return Err(cfg("field BindOptions must not be specified"));
                }
                if tmpfs_opts {
                    return Err(cfg("field TmpfsOptions must not be specified"));
                }
                if let Some(s) = &source {
                    if !valid_volume_name(s) {
                        return Err(OptionError::Conflict(bad_volume_name(s)));
                    }
                }
            }
            MountKind::Tmpfs => {
                if source.is_some() {
                    return Err(cfg("field Source must not be specified"));
                }
                if bind_opts {
                    return Err(cfg("field BindOptions must not be specified"));
                }
                if volume_opts {
                    return Err(cfg("field VolumeOptions must not be specified"));
                }
            }
        }
        let mut v = VolumeSpec::new(kind, source, target);
        v.anonymous = kind == MountKind::Volume && v.source.is_none();
        v.read_only = read_only;
        v.propagation = propagation;
        v.nonrecursive = nonrecursive;
        v.nocopy = nocopy;
        v.volume_options = volume_options;
        v.volume_labels = volume_labels;
        v.tmpfs_size = tmpfs_size;
        v.tmpfs_mode = tmpfs_mode;
        v.strict_source = true;
        Ok(v)
    }

    /// The kind (for a container an older berth made: a bind when the source is a path).
    pub fn mount_kind(&self) -> MountKind {
        self.kind.unwrap_or(
            if self.source.as_deref().is_some_and(|s| s.starts_with('/')) {
                MountKind::Bind
            } else {
                MountKind::Volume
            },
        )
    }

    /// True when the source is a host path rather than a volume or a tmpfs.
    pub fn is_bind(&self) -> bool {
        self.mount_kind() == MountKind::Bind
    }

    /// True for a named or anonymous volume.
    pub fn is_volume(&self) -> bool {
        self.mount_kind() == MountKind::Volume
    }

    /// The bind propagation in effect (Docker's default `rprivate`).
    pub fn propagation_or_default(&self) -> &str {
        if self.propagation.is_empty() {
            "rprivate"
        } else {
            &self.propagation
        }
    }
}

/// Splits `--mount`'s value as a CSV record (Docker's CLI reads it with Go's csv reader):
/// fields may be quoted, with `""` for a quote inside.
fn split_csv(value: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut chars = value.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                chars.next();
                cur.push('"');
            }
            ('"', true) => quoted = false,
            ('"', false) => quoted = true,
            (',', false) => out.push(std::mem::take(&mut cur)),
            (c, _) => cur.push(c),
        }
    }
    if quoted {
        return Err("extraneous or missing \" in quoted-field".into());
    }
    out.push(cur);
    Ok(out.into_iter().filter(|f| !f.is_empty()).collect())
}

/// Parses `--volumes-from CONTAINER[:ro|rw]` into (container, read-only override).
pub fn parse_volumes_from(value: &str) -> Result<(String, Option<bool>), OptionError> {
    let (c, mode) = match value.split_once(':') {
        Some((c, m)) => (c, Some(m)),
        None => (value, None),
    };
    let ro = match mode {
        None => None,
        Some("ro") => Some(true),
        Some("rw") => Some(false),
        Some(m) => {
            return Err(OptionError::Conflict(format!(
                "invalid mode for volumes-from: {m}"
            )))
        }
    };
    if c.is_empty() {
        return Err(OptionError::Conflict(format!(
            "invalid volumes-from: '{value}'"
        )));
    }
    Ok((c.to_string(), ro))
}

/// Parses `--tmpfs /path[:opts]` into (path, options).
pub fn parse_tmpfs(value: &str) -> Result<(String, String), OptionError> {
    let (path, opts) = value.split_once(':').unwrap_or((value, ""));
    if !path.starts_with('/') {
        return Err(OptionError::Conflict(format!(
            "invalid tmpfs mount '{value}': the path must be absolute"
        )));
    }
    for o in opts.split(',').filter(|o| !o.is_empty()) {
        let key = o.split('=').next().unwrap_or(o);
        if !matches!(
            key,
            "size"
                | "mode"
                | "uid"
                | "gid"
                | "nr_inodes"
                | "nr_blocks"
                | "ro"
                | "rw"
                | "exec"
                | "noexec"
                | "suid"
                | "nosuid"
                | "dev"
                | "nodev"
                | "sync"
                | "async"
                | "noatime"
                | "atime"
                | "relatime"
                | "strictatime"
                | "nodiratime"
        ) {
            return Err(OptionError::Conflict(format!(
                "invalid tmpfs option \"{o}\" in '{value}'"
            )));
        }
    }
    Ok((path.to_string(), opts.to_string()))
}

/// Normalises a capability name: `net_admin`, `CAP_NET_ADMIN` -> `CAP_NET_ADMIN`; `ALL` kept.
pub fn parse_capability(value: &str) -> Result<String, OptionError> {
    let upper = value.trim().to_ascii_uppercase();
    if upper == "ALL" {
        return Ok(upper);
    }
    let name = if upper.starts_with("CAP_") {
        upper
    } else {
        format!("CAP_{upper}")
    };
    if !ALL_CAPS.contains(&name.as_str()) {
        return Err(OptionError::Conflict(format!(
            "invalid capability: {value}"
        )));
    }
    Ok(name)
}

/// Every capability Linux knows, in bit order.
pub const ALL_CAPS: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

/// Every capability in this process's bounding set: what `--privileged` and `--cap-add
/// ALL` give (as Docker, which cannot grant what the host does not have either).
pub fn host_caps() -> Vec<String> {
    let bounding = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("CapBnd:"))
                .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        })
        .unwrap_or(u64::MAX);
    ALL_CAPS
        .iter()
        .enumerate()
        .filter(|(bit, _)| bounding & (1u64 << bit) != 0)
        .map(|(_, c)| c.to_string())
        .collect()
}

/// Docker's 14 default capabilities: the runtime's list, so both always agree.
pub const DEFAULT_CAPS: &[&str] = &berth_runtime::spec::DEFAULT_CAPABILITIES;

/// The set of capabilities after `--cap-add`/`--cap-drop` (add wins over drop, as Docker).
pub fn effective_caps(add: &[String], drop: &[String], privileged: bool) -> Vec<String> {
    if privileged || add.iter().any(|c| c == "ALL") {
        return host_caps();
    }
    let mut caps: Vec<String> = if drop.iter().any(|c| c == "ALL") {
        Vec::new()
    } else {
        DEFAULT_CAPS
            .iter()
            .filter(|c| !drop.iter().any(|d| d == *c))
            .map(|s| s.to_string())
            .collect()
    };
    for a in add {
        if !caps.contains(a) {
            caps.push(a.clone());
        }
    }
    caps
}

/// What `--security-opt` asked for.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecurityOpts {
    /// `seccomp=unconfined`.
    pub seccomp_unconfined: bool,
    /// `seccomp=FILE`: a profile in Docker's JSON format.
    pub seccomp_profile: Option<PathBuf>,
    /// `no-new-privileges`.
    pub no_new_privileges: bool,
}

impl SecurityOpts {
    /// Parses every `--security-opt` value.
    pub fn parse(values: &[String]) -> Result<Self, OptionError> {
        let mut out = SecurityOpts::default();
        for v in values {
            let (k, val) = v
                .split_once(['=', ':'])
                .map(|(k, v)| (k, Some(v)))
                .unwrap_or((v.as_str(), None));
            match (k, val) {
                ("seccomp", Some("unconfined")) => out.seccomp_unconfined = true,
                ("seccomp", Some(path)) if !path.is_empty() => {
                    out.seccomp_profile = Some(PathBuf::from(path))
                }
                ("no-new-privileges", None | Some("true")) => out.no_new_privileges = true,
                ("no-new-privileges", Some("false")) => out.no_new_privileges = false,
                ("apparmor" | "label", Some(_)) => {}
                _ => {
                    return Err(OptionError::Conflict(format!(
                        "Invalid --security-opt: {v:?}"
                    )))
                }
            }
        }
        Ok(out)
    }
}

/// Parses `--label k=v` / `-l k` into a map.
pub fn parse_labels(values: &[String]) -> BTreeMap<String, String> {
    values
        .iter()
        .map(|v| match v.split_once('=') {
            Some((k, val)) => (k.to_string(), val.to_string()),
            None => (v.clone(), String::new()),
        })
        .collect()
}

/// Validates a container name as Docker does: `[a-zA-Z0-9][a-zA-Z0-9_.-]+`.
pub fn validate_name(name: &str) -> Result<String, OptionError> {
    let n = name.strip_prefix('/').unwrap_or(name);
    let mut chars = n.chars();
    let ok = match chars.next() {
        Some(c) if c.is_ascii_alphanumeric() => {
            n.len() >= 2 && chars.all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
        }
        _ => false,
    };
    if !ok || n.len() > 253 {
        return Err(OptionError::Conflict(format!(
            "Invalid container name ({name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"
        )));
    }
    Ok(n.to_string())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_as_docker() {
        assert_eq!(parse_size("-m, --memory", "200m").unwrap(), 200 << 20);
        assert_eq!(parse_size("-m, --memory", "64M").unwrap(), 64 << 20);
        assert_eq!(parse_size("-m, --memory", "1g").unwrap(), 1 << 30);
        assert_eq!(parse_size("-m, --memory", "1GiB").unwrap(), 1 << 30);
        assert_eq!(parse_size("-m, --memory", "1024").unwrap(), 1024);
        assert_eq!(parse_size("-m, --memory", "1.5k").unwrap(), 1536);
        let e = parse_size("-m, --memory", "200x").unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid argument \"200x\" for \"-m, --memory\" flag: invalid size: '200x'"
        );
        assert!(parse_size("-m, --memory", "").is_err());
        assert!(parse_size("-m, --memory", "-1").is_err());
        assert!(parse_size("-m, --memory", "m").is_err());
        assert!(parse_size("-m, --memory", "99999999999999999999p").is_err());
        assert_eq!(parse_swap("-1").unwrap(), -1);
    }

    #[test]
    fn cpus_and_cpusets() {
        assert_eq!(parse_cpus("1.5").unwrap(), 1_500_000_000);
        assert!(parse_cpus("x").is_err());
        assert!(parse_cpus("-1").is_err());
        assert!(parse_cpuset("0-1,3").is_ok());
        assert!(parse_cpuset("1-0").is_err());
        assert!(parse_cpuset("a").is_err());
    }

    #[test]
    fn restart_policies() {
        assert!(RestartPolicy::parse("no").unwrap().is_none());
        let p = RestartPolicy::parse("on-failure:3").unwrap();
        assert_eq!(p.maximum_retry_count, 3);
        assert!(p.should_restart(1, 2, false));
        assert!(!p.should_restart(1, 3, false));
        assert!(!p.should_restart(0, 0, false));
        assert!(RestartPolicy::parse("always")
            .unwrap()
            .should_restart(0, 100, false));
        assert!(!RestartPolicy::parse("always")
            .unwrap()
            .should_restart(0, 0, true));
        assert!(RestartPolicy::parse("sometimes").is_err());
        assert!(RestartPolicy::parse("always:3").is_err());
        assert!(RestartPolicy::parse("on-failure:x").is_err());
    }

    #[test]
    fn signals() {
        assert_eq!(parse_signal("-s", "TERM").unwrap(), 15);
        assert_eq!(parse_signal("-s", "sigkill").unwrap(), 9);
        assert_eq!(parse_signal("-s", "10").unwrap(), 10);
        assert_eq!(parse_signal("-s", "SIGRTMIN+1").unwrap(), 35);
        assert!(parse_signal("-s", "NOPE").is_err());
        assert!(parse_signal("-s", "0").is_err());
    }

    #[test]
    fn env_values() {
        let host = |k: &str| (k == "HOME").then(|| "/root".to_string());
        let v = parse_env(
            &["A=1".into(), "HOME".into(), "UNSET".into(), "B=".into()],
            &host,
        )
        .unwrap();
        assert_eq!(v, vec!["A=1", "HOME=/root", "B="]);
        assert!(parse_env(&["=x".into()], &host).is_err());
    }

    #[test]
    fn env_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("env");
        std::fs::write(&p, "# c\n\nA=1\nB=two words\n").unwrap();
        let v = parse_env_file(&p, &|_| None).unwrap();
        assert_eq!(v, vec!["A=1", "B=two words"]);
        let e = parse_env_file(&dir.path().join("missing"), &|_| None).unwrap_err();
        assert!(e.to_string().contains("no such file"), "{e}");
    }

    #[test]
    fn volumes() {
        let v = VolumeSpec::parse("/host:/ctr:ro").unwrap();
        assert!(v.read_only && v.is_bind());
        let v = VolumeSpec::parse("/data").unwrap();
        assert!(v.source.is_none());
        assert!(VolumeSpec::parse("/h:rel").is_err());
        assert!(VolumeSpec::parse("/h:/c:bogus").is_err());
        assert!(VolumeSpec::parse("/h:/").is_err());
        assert!(VolumeSpec::parse("na me:/c").is_err());
        assert!(VolumeSpec::parse("/h:/a/../b").is_err());
        let e = VolumeSpec::parse("rel/dir:/c").unwrap_err().to_string();
        assert!(
            e.contains("includes invalid characters for a local volume name"),
            "{e}"
        );
        let v = VolumeSpec::parse("data:/c:ro,nocopy").unwrap();
        assert!(v.is_volume() && v.read_only && v.nocopy && !v.anonymous);
        assert!(VolumeSpec::parse("/data").unwrap().anonymous);
        // A container stored by an older berth (no kind) still reads as before.
        let old: VolumeSpec =
            serde_json::from_str(r#"{"source":"/h","destination":"/c","read_only":false}"#)
                .unwrap();
        assert!(old.is_bind());
    }

    #[test]
    fn mounts_parse_as_docker() {
        let m = VolumeSpec::parse_mount(
            "type=bind,src=/h,dst=/c,readonly,bind-propagation=rslave,bind-nonrecursive",
        )
        .unwrap();
        assert!(m.is_bind() && m.read_only && m.nonrecursive && m.strict_source);
        assert_eq!(m.propagation, "rslave");
        let m = VolumeSpec::parse_mount(
            "source=v1,target=/d,volume-nocopy,volume-opt=type=tmpfs,volume-label=a=b",
        )
        .unwrap();
        assert!(m.is_volume() && m.nocopy && !m.anonymous);
        assert_eq!(m.volume_options["type"], "tmpfs");
        assert_eq!(m.volume_labels["a"], "b");
        let m = VolumeSpec::parse_mount("type=tmpfs,destination=/t,tmpfs-size=1m,tmpfs-mode=1770")
            .unwrap();
        assert_eq!((m.tmpfs_size, m.tmpfs_mode), (Some(1 << 20), Some(0o1770)));
        assert!(
            VolumeSpec::parse_mount("type=volume,target=/x")
                .unwrap()
                .anonymous
        );
        let err = |v: &str| VolumeSpec::parse_mount(v).unwrap_err().to_string();
        assert_eq!(
            err("type=bind,target=/x"),
            "invalid mount config for type \"bind\": field Source must not be empty"
        );
        assert_eq!(
            err("type=bind,src=/h,target=/x,foo=bar"),
            "invalid argument \"type=bind,src=/h,target=/x,foo=bar\" for \"--mount\" flag: \
             unexpected key 'foo' in 'foo=bar'"
        );
        assert!(err("type=volume,src=v").contains("field Target must not be empty"));
        assert!(err("type=tmpfs,src=x,dst=/t").contains("field Source must not be specified"));
        assert!(err("type=volume,dst=/t,bind-propagation=shared").contains("BindOptions"));
        assert!(err("type=bind,src=rel,dst=/t").contains("must be absolute"));
        assert!(err("type=nope,dst=/t").contains("unsupported mount type"));
        assert!(err("type=volume,src=a/b,dst=/t").contains("invalid characters"));
        assert_eq!(
            parse_volumes_from("web:ro").unwrap(),
            ("web".into(), Some(true))
        );
        assert!(parse_volumes_from("web:x").is_err());
    }

    #[test]
    fn caps() {
        assert_eq!(parse_capability("net_admin").unwrap(), "CAP_NET_ADMIN");
        assert!(parse_capability("bogus").is_err());
        let c = effective_caps(&["CAP_NET_ADMIN".into()], &["CAP_CHOWN".into()], false);
        assert_eq!(c.len(), 14);
        assert!(c.contains(&"CAP_NET_ADMIN".to_string()));
        assert!(!c.contains(&"CAP_CHOWN".to_string()));
        assert_eq!(effective_caps(&[], &["ALL".into()], false).len(), 0);
    }

    #[test]
    fn names_and_security_opts() {
        assert!(validate_name("web-1").is_ok());
        assert!(validate_name("-x").is_err());
        assert!(validate_name("a b").is_err());
        let s = SecurityOpts::parse(&["seccomp=unconfined".into(), "no-new-privileges".into()])
            .unwrap();
        assert!(s.seccomp_unconfined && s.no_new_privileges);
        assert!(SecurityOpts::parse(&["bogus".into()]).is_err());
        assert!(parse_tmpfs("/run:size=10m").is_ok());
        assert!(parse_tmpfs("run").is_err());
        assert!(parse_tmpfs("/run:bogus").is_err());
    }
}
