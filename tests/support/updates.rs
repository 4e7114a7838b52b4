//! The ways a secret file gets updated in the wild: an in-place write, a truncate then a
//! later write, a temp file renamed over it, delete then recreate, and the kubelet's
//! `..data` symlink swap.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// A way of updating the secret file.
pub type Update = fn(&Path, &str);

pub fn write_in_place(path: &Path, content: &str) {
    std::fs::write(path, content).unwrap();
}

pub fn truncate_then_write(path: &Path, content: &str) {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(path)
        .unwrap();
    f.flush().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(60));
    f.write_all(content.as_bytes()).unwrap();
}

pub fn rename_over(path: &Path, content: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, content).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

pub fn delete_then_recreate(path: &Path, content: &str) {
    std::fs::remove_file(path).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(60));
    std::fs::write(path, content).unwrap();
}

/// Writes `content` the way the kubelet updates a secret volume. The layout Kubernetes writes: `token -> ..data/token`, `..data -> ..<timestamp>`.
pub fn k8s_write(dir: &Path, generation: usize, content: &str) {
    let ts = format!("..2026_11_24_{generation:04}");
    std::fs::create_dir(dir.join(&ts)).unwrap();
    std::fs::set_permissions(dir.join(&ts), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::write(dir.join(&ts).join("token"), content).unwrap();
    std::os::unix::fs::symlink(&ts, dir.join("..data_tmp")).unwrap();
    std::fs::rename(dir.join("..data_tmp"), dir.join("..data")).unwrap();
    if !dir.join("token").exists() {
        std::os::unix::fs::symlink("..data/token", dir.join("token")).unwrap();
    }
    if generation > 0 {
        std::fs::remove_dir_all(dir.join(format!("..2026_11_24_{:04}", generation - 1))).unwrap();
    }
}
