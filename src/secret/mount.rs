//! Telling whether the secret file is itself a mount point: a single file bind-mounted
//! into the container is pinned to its inode, so an update by rename is never seen.

use std::path::{Path, PathBuf};

/// What to tell an operator whose secret file is a single-file bind mount.
pub fn single_file_mount_problem(path: &Path) -> Option<String> {
    let text = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    is_mount_point(&text, &absolute(path)).then(|| {
        format!(
            "secret file {} is a single-file bind mount: it is pinned to the file's inode, so an \
             update that replaces the file (an editor, a rename, Vault Agent, a Kubernetes \
             secret) is never seen here; mount the directory that holds it instead \
             (e.g. -v ./secrets:/run/secrets:ro)",
            path.display()
        )
    })
}

fn absolute(path: &Path) -> PathBuf {
    if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir()
            .map(|d| d.join(path))
            .unwrap_or_else(|_| path.to_path_buf())
    }
}

/// Whether `path` is the mount point of a line of `/proc/self/mountinfo` (field 5, with
/// the kernel's octal escapes for space, tab, newline and backslash).
fn is_mount_point(mountinfo: &str, path: &Path) -> bool {
    mountinfo.lines().any(|line| {
        line.split(' ')
            .nth(4)
            .is_some_and(|mp| Path::new(&unescape(mp)) == path)
    })
}

fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('\\') {
        out.push_str(&rest[..i]);
        let code = rest.get(i + 1..i + 4);
        match code.and_then(|c| u8::from_str_radix(c, 8).ok()) {
            Some(b) => {
                out.push(b as char);
                rest = &rest[i + 4..];
            }
            None => {
                out.push('\\');
                rest = &rest[i + 1..];
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const INFO: &str = "22 1 0:21 / / rw - overlay overlay rw\n\
        612 22 254:1 /srv/secrets/token /run/secrets/claude\\040token ro,relatime - ext4 /dev/vda rw\n\
        613 22 254:1 /srv/dir /run/dir ro,relatime - ext4 /dev/vda rw\n";

    #[test]
    fn a_file_mounted_by_itself_is_told_from_one_in_a_mounted_directory() {
        assert!(is_mount_point(INFO, Path::new("/run/secrets/claude token")));
        assert!(!is_mount_point(INFO, Path::new("/run/dir/token")));
        assert!(!is_mount_point(INFO, Path::new("/run/secrets/other")));
    }
}
