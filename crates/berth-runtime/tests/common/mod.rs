//! Shared helpers of the runtime's root-only tests: a busybox rootfs and a spec for it.
#![allow(dead_code)]
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use berth_runtime::oci::Spec;

/// Tests of one binary run one at a time: the runtime forks, and a fork while another test
/// thread holds the allocator's lock would leave the child stuck (the runtime's callers are
/// single-threaded; nextest runs each test in its own process anyway).
pub fn serial() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// Skips the test when not root, unless CI is set (then it fails). Holds the test lock.
pub fn require_root() -> Option<std::sync::MutexGuard<'static, ()>> {
    if nix::unistd::geteuid().is_root() {
        return Some(serial());
    }
    if std::env::var_os("CI").is_some() {
        panic!("this test needs root (CI is set, so it fails instead of skipping)");
    }
    eprintln!("skipped: needs root (namespaces, mounts, cgroups)");
    None
}

fn busybox_tar() -> &'static PathBuf {
    // Shared by every test process (nextest runs each test alone): made once per busybox
    // binary, atomically (temp file + rename).
    static TAR: OnceLock<PathBuf> = OnceLock::new();
    TAR.get_or_init(|| {
        let meta = std::fs::metadata("/bin/busybox").expect("/bin/busybox (busybox-static)");
        let stamp = format!(
            "{}-{}",
            meta.len(),
            meta.modified()
                .unwrap()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_secs()
        );
        let tar = std::env::temp_dir().join(format!("berth-busybox-{stamp}.tar"));
        if tar.exists() {
            return tar;
        }
        let tmp =
            std::env::temp_dir().join(format!("berth-busybox-{stamp}.{}.tmp", std::process::id()));
        let script =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/mk-busybox-rootfs.sh");
        let st = Command::new("bash")
            .arg(script)
            .arg(&tmp)
            .status()
            .expect("run mk-busybox-rootfs.sh");
        assert!(st.success(), "mk-busybox-rootfs.sh failed");
        std::fs::rename(&tmp, &tar).unwrap();
        tar
    })
}

/// A bundle directory with a busybox `rootfs/` in it.
pub struct Bundle {
    pub dir: tempfile::TempDir,
    pub runroot: tempfile::TempDir,
}

impl Bundle {
    pub fn new() -> Bundle {
        let dir = tempfile::tempdir().unwrap();
        let rootfs = dir.path().join("rootfs");
        std::fs::create_dir(&rootfs).unwrap();
        let f = std::fs::File::open(busybox_tar()).unwrap();
        let mut ar = tar::Archive::new(f);
        ar.set_preserve_permissions(true);
        ar.set_preserve_ownerships(true);
        ar.unpack(&rootfs).unwrap();
        Bundle {
            dir,
            runroot: tempfile::tempdir().unwrap(),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn rootfs(&self) -> PathBuf {
        self.dir.path().join("rootfs")
    }

    pub fn state_dir(&self, id: &str) -> PathBuf {
        self.runroot.path().join("runtime").join(id)
    }

    /// Docker's default spec running `sh -c script`, hostname `id`, rootfs absolute.
    pub fn spec(&self, id: &str, script: &str) -> Spec {
        let mut spec = berth_runtime::spec::default_spec(&["sh", "-c", script]);
        spec.set_hostname(Some(id.to_string()));
        let mut root = spec.root().clone().unwrap();
        root.set_path(self.rootfs());
        spec.set_root(Some(root));
        spec
    }
}

/// A unique container id for a test.
pub fn unique_id(name: &str) -> String {
    format!(
        "t{}-{}-{name}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos()
    )
}

/// Runs `script` in a container with `spec` adjusted by `tweak`, returns (exit code, stdout).
pub fn run_capture(
    bundle: &Bundle,
    id: &str,
    script: &str,
    tweak: impl FnOnce(&mut Spec),
) -> (i32, String) {
    let mut spec = bundle.spec(id, script);
    tweak(&mut spec);
    let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).unwrap();
    let mut cfg =
        berth_runtime::ContainerConfig::new(id, bundle.state_dir(id), bundle.path(), spec);
    cfg.stdio.stdout = Some(w);
    let mut c = berth_runtime::run(cfg).unwrap_or_else(|e| panic!("run {id}: {e}"));
    let _reap = Reap(bundle.state_dir(id));
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        use std::io::Read;
        std::fs::File::from(r).read_to_string(&mut s).unwrap();
        s
    });
    let status = c.wait().unwrap().unwrap();
    let out = reader.join().unwrap();
    c.delete(false).unwrap();
    (status.code, out)
}

/// Force-deletes the container whose state is in the directory when dropped (a failing test
/// leaves no cgroup or process behind).
pub struct Reap(pub PathBuf);

impl Drop for Reap {
    fn drop(&mut self) {
        if let Ok(c) = berth_runtime::Container::load(&self.0) {
            let _ = c.delete(true);
        }
    }
}
