//! `--user name|uid[:group|gid]`, resolved in the image's /etc/passwd and /etc/group.
//!
//! The files are read through a [`RootFiles`] (an image's layers or a running container's
//! root), never by host paths: a symlink in the image cannot make berth read a host file.

use super::layered::RootFiles;

/// The user a container's process runs as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedUser {
    /// User ID.
    pub uid: u32,
    /// Primary group ID.
    pub gid: u32,
    /// Supplementary groups (from /etc/group membership).
    pub additional_gids: Vec<u32>,
    /// Home directory from /etc/passwd (for `HOME`), `/` when unknown.
    pub home: String,
}

/// A `--user` value that cannot be resolved.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UserError {
    /// A user name absent from /etc/passwd.
    #[error("unable to find user {0}: no matching entries in passwd file")]
    NoUser(String),
    /// A group name absent from /etc/group.
    #[error("unable to find group {0}: no matching entries in group file")]
    NoGroup(String),
    /// An empty or malformed value.
    #[error("invalid user specification: {0:?}")]
    Invalid(String),
}

impl UserError {
    /// The kind of failure: always bad input.
    pub fn kind(&self) -> super::ErrorKind {
        super::ErrorKind::InvalidArgument
    }
}

struct PasswdEntry {
    name: String,
    uid: u32,
    gid: u32,
    home: String,
}

struct GroupEntry {
    name: String,
    gid: u32,
    members: Vec<String>,
}

fn passwd(tree: &(impl RootFiles + ?Sized)) -> Vec<PasswdEntry> {
    let text = tree.read("/etc/passwd").unwrap_or_default();
    String::from_utf8_lossy(&text)
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            if f.len() < 4 {
                return None;
            }
            Some(PasswdEntry {
                name: f[0].to_string(),
                uid: f[2].parse().ok()?,
                gid: f[3].parse().ok()?,
                home: f.get(5).unwrap_or(&"/").to_string(),
            })
        })
        .collect()
}

fn groups(tree: &(impl RootFiles + ?Sized)) -> Vec<GroupEntry> {
    let text = tree.read("/etc/group").unwrap_or_default();
    String::from_utf8_lossy(&text)
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            if f.len() < 3 {
                return None;
            }
            Some(GroupEntry {
                name: f[0].to_string(),
                gid: f[2].parse().ok()?,
                members: f
                    .get(3)
                    .map(|m| {
                        m.split(',')
                            .filter(|s| !s.is_empty())
                            .map(str::to_string)
                            .collect()
                    })
                    .unwrap_or_default(),
            })
        })
        .collect()
}

/// `--group-add` values as GIDs: numbers as they are, names from the tree's /etc/group.
pub fn resolve_groups(
    tree: &(impl RootFiles + ?Sized),
    names: &[String],
) -> Result<Vec<u32>, UserError> {
    let mut table = None;
    names
        .iter()
        .map(|g| match g.parse::<u32>() {
            Ok(n) => Ok(n),
            Err(_) => table
                .get_or_insert_with(|| groups(tree))
                .iter()
                .find(|e| e.name == *g)
                .map(|e| e.gid)
                .ok_or_else(|| UserError::NoGroup(g.clone())),
        })
        .collect()
}

/// Resolves `spec` (empty = root) against the tree's /etc/passwd and /etc/group.
pub fn resolve_user(
    tree: &(impl RootFiles + ?Sized),
    spec: &str,
) -> Result<ResolvedUser, UserError> {
    let spec = spec.trim();
    let (user, group) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    if spec.contains(char::is_whitespace) || group == Some("") && user.is_empty() {
        return Err(UserError::Invalid(spec.to_string()));
    }
    let pw = passwd(tree);
    let (uid, mut gid, name, home) = if user.is_empty() {
        let root = pw.iter().find(|p| p.uid == 0);
        (
            0,
            0,
            root.map(|p| p.name.clone()),
            root.map(|p| p.home.clone()),
        )
    } else if let Ok(uid) = user.parse::<u32>() {
        match pw.iter().find(|p| p.uid == uid) {
            Some(p) => (uid, p.gid, Some(p.name.clone()), Some(p.home.clone())),
            None => (uid, 0, None, None),
        }
    } else {
        let p = pw
            .iter()
            .find(|p| p.name == user)
            .ok_or_else(|| UserError::NoUser(user.to_string()))?;
        (p.uid, p.gid, Some(p.name.clone()), Some(p.home.clone()))
    };
    let gr = groups(tree);
    if let Some(g) = group {
        gid = match g.parse::<u32>() {
            Ok(n) => n,
            Err(_) => gr
                .iter()
                .find(|e| e.name == g)
                .map(|e| e.gid)
                .ok_or_else(|| UserError::NoGroup(g.to_string()))?,
        };
    }
    let mut additional_gids = Vec::new();
    if group.is_none() {
        if let Some(n) = &name {
            for e in &gr {
                if e.gid != gid
                    && e.members.iter().any(|m| m == n)
                    && !additional_gids.contains(&e.gid)
                {
                    additional_gids.push(e.gid);
                }
            }
        }
    }
    Ok(ResolvedUser {
        uid,
        gid,
        additional_gids,
        home: home.filter(|h| !h.is_empty()).unwrap_or_else(|| "/".into()),
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::container::layered::LayeredTree;

    #[test]
    fn resolves_names_and_ids() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("etc")).unwrap();
        std::fs::write(
            d.path().join("etc/passwd"),
            "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/home/app:/bin/sh\n",
        )
        .unwrap();
        std::fs::write(
            d.path().join("etc/group"),
            "root:x:0:\nwheel:x:10:app\napp:x:1000:\n",
        )
        .unwrap();
        let t = LayeredTree::new(vec![d.path().to_path_buf()]);
        let r = resolve_user(&t, "").unwrap();
        assert_eq!((r.uid, r.gid, r.home.as_str()), (0, 0, "/root"));
        let a = resolve_user(&t, "app").unwrap();
        assert_eq!(
            (a.uid, a.gid, a.additional_gids.clone()),
            (1000, 1000, vec![10])
        );
        assert_eq!(a.home, "/home/app");
        let n = resolve_user(&t, "4242:wheel").unwrap();
        assert_eq!((n.uid, n.gid), (4242, 10));
        assert_eq!(resolve_user(&t, "1000").unwrap().gid, 1000);
        assert_eq!(
            resolve_user(&t, "nosuch").unwrap_err(),
            UserError::NoUser("nosuch".into())
        );
        assert!(resolve_user(&t, "app:nogroup").is_err());
    }
}
