//! A container resource's options (Wippy's names, and ours), each checked
//! when the resource is defined, with a message naming it.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};
use crate::core::command::{self, Bytes, Env};
use crate::core::remote::ssh::{self};


/// The container fields of an `exec.docker` resource (Wippy's names, and
/// ours: `engine`, `engine_args`, `engine_env`, `container`).
#[derive(Debug, Clone, Default)]
pub struct ContainerConfig {
    /// A fresh container of this image per process.
    pub image: Option<Bytes>,
    /// Or: run every process in this existing container with `exec`.
    pub container: Option<Bytes>,
    /// "docker", "podman" or an absolute path; `None`: the first that answers.
    pub engine: Option<Bytes>,
    /// Global arguments of the client, before the subcommand
    /// (`--root DIR` for podman, `--config DIR` for docker...).
    pub engine_args: Vec<Bytes>,
    /// The client's environment: ours, overlaid with these.
    pub engine_env: Option<Env>,
    /// The engine's address: `--host` for docker, `--url` for podman.
    pub host: Option<Bytes>,
    pub network_mode: Option<Bytes>,
    /// `host:container[:ro|rw]` bind mounts.
    pub volumes: Vec<Bytes>,
    pub user: Option<Bytes>,
    /// Bytes, or a number with a unit (b, k, m, g), as the clients take it.
    pub memory_limit: Option<Bytes>,
    /// Microseconds of CPU per 100 ms period (the CFS quota).
    pub cpu_quota: Option<i64>,
    pub pids_limit: Option<i64>,
    pub read_only_rootfs: Option<bool>,
    pub no_new_privileges: Option<bool>,
    pub cap_drop: Vec<Bytes>,
    pub cap_add: Vec<Bytes>,
    /// `path[:options]` tmpfs mounts.
    pub tmpfs: Vec<Bytes>,
    /// `--rm` (default true: nothing is left behind).
    pub auto_remove: Option<bool>,
}

/// A name-like value: not empty, no blank or control byte, no leading '-'
/// (it is always passed as `--flag=value` or after `--`, this only keeps
/// messages and engines sane).
pub(super) fn check_token(what: &str, v: &OsStr) -> Result<(), String> {
    let b = v.as_bytes();
    if b.is_empty() || b[0] == b'-' || b.iter().any(|c| c.is_ascii_whitespace() || c.is_ascii_control()) {
        return Err(format!("{what} '{}' is not valid (empty, starts with '-', or holds a blank or control character)", command::shown(b)));
    }
    Ok(())
}

pub(super) fn all_of(b: &[u8], ok: impl Fn(u8) -> bool) -> bool {
    !b.is_empty() && b.iter().all(|c| ok(*c))
}

pub(super) fn absolute_path(b: &[u8]) -> bool {
    b.first() == Some(&b'/') && !b.contains(&0)
}

/// Global arguments that choose the engine's address: `host` does that,
/// so that the library knows a remote engine (no `--pidfile` there).
pub(super) const ADDRESS_FLAGS: [&str; 8] = ["--remote", "-r", "--url", "--connection", "-c", "-H", "--host", "--context"];

impl ContainerConfig {
    /// Every field checked, with a message naming it.
    pub fn validate(&self) -> Result<(), String> {
        match (&self.image, &self.container) {
            (None, None) => return Err("image is required for kind exec.docker (or container, to run in an existing one)".into()),
            (Some(_), Some(_)) => {
                return Err("image and container cannot both be set: container runs every process in that existing container".into())
            }
            (Some(i), None) => check_token("image", i)?,
            (None, Some(c)) => check_token("container", c)?,
        }
        if self.container.is_some() {
            let fresh_only = [
                ("network_mode", self.network_mode.is_some()),
                ("volumes", !self.volumes.is_empty()),
                ("memory_limit", self.memory_limit.is_some()),
                ("cpu_quota", self.cpu_quota.is_some()),
                ("pids_limit", self.pids_limit.is_some()),
                ("read_only_rootfs", self.read_only_rootfs.is_some()),
                ("no_new_privileges", self.no_new_privileges.is_some()),
                ("cap_drop", !self.cap_drop.is_empty()),
                ("cap_add", !self.cap_add.is_empty()),
                ("tmpfs", !self.tmpfs.is_empty()),
                ("auto_remove", self.auto_remove.is_some()),
            ];
            if let Some((name, _)) = fresh_only.iter().find(|(_, set)| *set) {
                return Err(format!(
                    "{name} applies to a fresh container per process: with container = ..., the existing container's settings hold"
                ));
            }
        }
        if let Some(e) = &self.engine {
            let b = e.as_bytes();
            if !(b == b"docker" || b == b"podman" || (absolute_path(b) && !b.contains(&b'='))) {
                return Err(format!("engine must be \"docker\", \"podman\" or an absolute path (got '{}')", command::shown(b)));
            }
        }
        for a in &self.engine_args {
            let b = a.as_bytes();
            if b.is_empty() || b.contains(&0) {
                return Err("engine_args items must be non-empty strings without NUL bytes".into());
            }
            let flag = b.split(|c| *c == b'=').next().unwrap_or(b);
            if ADDRESS_FLAGS.iter().any(|f| f.as_bytes() == flag) {
                return Err(format!(
                    "engine_args: '{}' chooses the engine's address: use the option host instead",
                    command::shown(b)
                ));
            }
        }
        if let Some(env) = &self.engine_env {
            for (k, _) in env.iter() {
                // (The background commands get them through `env`.)
                ssh::check_env_name(k).map_err(|e| format!("engine_env: {e}"))?;
            }
        }
        if let Some(h) = &self.host {
            check_token("host", h)?;
        }
        if let Some(n) = &self.network_mode {
            check_token("network_mode", n)?;
        }
        for v in &self.volumes {
            let b = v.as_bytes();
            let parts: Vec<&[u8]> = b.split(|c| *c == b':').collect();
            let ok = (parts.len() == 2 || parts.len() == 3)
                && absolute_path(parts[0])
                && absolute_path(parts[1])
                && !b.iter().any(|c| c.is_ascii_control() || *c == b',')
                && (parts.len() == 2 || parts[2] == b"ro" || parts[2] == b"rw");
            if !ok {
                return Err(format!(
                    "volumes: '{}' is not 'host:container' or 'host:container:ro' (two absolute paths without ':' or ',', then ro or rw)",
                    command::shown(b)
                ));
            }
        }
        if let Some(u) = &self.user {
            let b = u.as_bytes();
            let name = |p: &[u8]| all_of(p, |c| c.is_ascii_alphanumeric() || b"_.-".contains(&c)) && p[0] != b'-';
            let ok = match b.iter().position(|c| *c == b':') {
                Some(i) => name(&b[..i]) && name(&b[i + 1..]),
                None => name(b),
            };
            if !ok {
                return Err(format!("user '{}' is not 'name', 'uid' or 'uid:gid'", command::shown(b)));
            }
        }
        if let Some(m) = &self.memory_limit {
            let b = m.as_bytes();
            let digits = b.strip_suffix(b"b").or(b.strip_suffix(b"k")).or(b.strip_suffix(b"m")).or(b.strip_suffix(b"g"));
            let digits = digits.unwrap_or(b);
            if !all_of(digits, |c| c.is_ascii_digit()) || digits.iter().all(|c| *c == b'0') {
                return Err(format!(
                    "memory_limit must be a number of bytes or a number with a unit b, k, m or g, above 0 (got '{}')",
                    command::shown(b)
                ));
            }
        }
        for (what, caps) in [("cap_drop", &self.cap_drop), ("cap_add", &self.cap_add)] {
            for c in caps {
                if !all_of(c.as_bytes(), |b| b.is_ascii_alphanumeric() || b == b'_') {
                    return Err(format!("{what}: '{}' is not a capability name (e.g. ALL, NET_RAW)", command::shown(c.as_bytes())));
                }
            }
        }
        for t in &self.tmpfs {
            let b = t.as_bytes();
            let (path, opts) = match b.iter().position(|c| *c == b':') {
                Some(i) => (&b[..i], &b[i + 1..]),
                None => (b, &b""[..]),
            };
            let ok = absolute_path(path)
                && !path.iter().any(|c| c.is_ascii_control() || *c == b',')
                && opts.iter().all(|c| c.is_ascii_alphanumeric() || b"=,._+-".contains(c));
            if !ok {
                return Err(format!(
                    "tmpfs: '{}' is not 'path' or 'path:options' (an absolute path, then options such as size=64m,mode=1777)",
                    command::shown(b)
                ));
            }
        }
        Ok(())
    }

    /// What the processes run in, for messages: the image or the container.
    pub(super) fn target(&self) -> String {
        command::shown(self.image.as_ref().or(self.container.as_ref()).map(|b| b.as_bytes()).unwrap_or(b""))
    }
}

/// A caller's `work_dir` (or the resource's default) for a container: an
/// absolute path there. Under `work_dir_within` it must lead inside once
/// `.` and `..` are resolved by name; the container's own symlinks are not
/// followed (they are the image's, inside the sandbox).
pub fn check_work_dir(dir: &Path, within: Option<&Path>, id: &str) -> Result<PathBuf, String> {
    if !dir.is_absolute() {
        return Err(format!("work_dir '{}' must be an absolute path in the container", command::shown_path(dir)));
    }
    let normal = lexical(dir);
    if let Some(root) = within {
        let root = lexical(root);
        if !normal.starts_with(&root) {
            return Err(format!(
                "work_dir '{}' is outside the work_dir_within of '{id}' ({})",
                command::shown_path(dir),
                command::shown_path(&root)
            ));
        }
    }
    Ok(normal)
}

/// `p` with `.` and `..` resolved by name (`/a/../..` is `/`).
pub(super) fn lexical(p: &Path) -> PathBuf {
    let mut out = PathBuf::from("/");
    for c in p.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::ParentDir => {
                out.pop();
            }
            _ => {}
        }
    }
    out
}
