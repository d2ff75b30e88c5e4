//! `exec`: one more process in a running container (its namespaces and cgroup).

use std::path::PathBuf;

use serde_json::json;

use super::create::merge_env;
use super::launch::wait_exit;
use super::layered::LayeredTree;
use super::runtime::{self, Stdio};
use super::{options, user, Container, ContainerError, ContainerStatus, Lifecycle, Result};

/// `exec` as asked.
#[derive(Debug, Clone, Default)]
pub struct ExecRequest {
    /// The command.
    pub cmd: Vec<String>,
    /// `-e`.
    pub env: Vec<String>,
    /// `-u`.
    pub user: Option<String>,
    /// `-w`.
    pub workdir: Option<String>,
    /// `-t`.
    pub tty: bool,
    /// `-i`.
    pub interactive: bool,
    /// `-d`.
    pub detach: bool,
    /// `--privileged`.
    pub privileged: bool,
}

impl Lifecycle {
    /// Runs `req` in `c`; returns its exit status (0 at once with `detach`).
    pub fn exec(&self, c: &Container, req: &ExecRequest) -> Result<i32> {
        if c.status != ContainerStatus::Running {
            return Err(ContainerError::BadStatus(format!(
                "container {} is not running",
                c.id()
            )));
        }
        if req.cmd.is_empty() {
            return Err(ContainerError::NoCommand);
        }
        let env_flags = options::parse_env(&req.env, &|k| std::env::var(k).ok())?;
        let env = merge_env(&c.spec.config.env, &env_flags);
        let (uid, gid, gids) = match &req.user {
            Some(u) => {
                let tree =
                    LayeredTree::new(vec![PathBuf::from(format!("/proc/{}/root", c.record.pid))]);
                let r = user::resolve_user(&tree, u)?;
                (r.uid, r.gid, r.additional_gids)
            }
            None => (c.spec.uid, c.spec.gid, c.spec.additional_gids.clone()),
        };
        let caps: Vec<String> = if req.privileged {
            options::host_caps()
        } else {
            c.spec.capabilities.clone()
        };
        let cwd = req
            .workdir
            .clone()
            .or_else(|| Some(c.spec.config.working_dir.clone()).filter(|w| !w.is_empty()))
            .unwrap_or_else(|| "/".into());
        let process = json!({
            "terminal": req.tty,
            "args": req.cmd,
            "env": env,
            "cwd": cwd,
            "user": {"uid": uid, "gid": gid, "additionalGids": gids},
            "capabilities": {"bounding": caps, "effective": caps, "permitted": caps},
            "noNewPrivileges": c.spec.security.no_new_privileges,
        });
        let rt = runtime::for_name(&c.spec.host_config.runtime);
        let state_root = self.runroot().join("runtime");
        let stdio = if req.interactive {
            Stdio::default()
        } else {
            let null = std::fs::File::open("/dev/null")
                .map_err(ContainerError::io("opening", "/dev/null"))?;
            Stdio {
                stdin: Some(null.into()),
                stdout: None,
                stderr: None,
            }
        };
        let launched = rt.exec(
            c.id(),
            &state_root,
            &self.container_dir(c.id()),
            &process,
            stdio,
        )?;
        if req.detach {
            return Ok(0);
        }
        let _fwd = super::signals::forward_to(launched.pid);
        Ok(wait_exit(launched.pid))
    }
}
