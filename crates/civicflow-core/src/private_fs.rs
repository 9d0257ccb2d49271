//! Owner-only directories and files: how the store creates everything it keeps. Case titles,
//! descriptions and the vault hold personal details, so no other local user may read them: every
//! directory the store creates is 0700 and every file it writes itself 0600.
//!
//! sled creates its own files (`db`, `conf`, `snap.*`, `blobs/`) with the process's umask, so
//! the directories around them are what protects them; [`tighten`] also takes the group and
//! other bits off whatever is in such a directory when the store opens and closes it, so that
//! a listing shows no readable file. The process's umask is left alone: it is the operator's,
//! it is global to the process (an embedder's other files would change too), and setting it
//! needs `unsafe` code, which this workspace forbids; the 0700 directories make it moot here.
//!
//! The storage modules (`sled/`, `vault/`) use these, and the one file the engine writes beside
//! them (the deadline index's snapshot). On other platforms than Unix these are the plain calls.

use std::fs::{File, OpenOptions};
use std::io;
use std::path::Path;

/// Creates `path` and any missing parent owner-only (0700); an existing `path` is tightened to
/// 0700 (a store made before this was 0755).
pub(crate) fn create_dir_all(path: &Path) -> io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(path)?;
    restrict(path)
}

/// Creates (or truncates) `path` for writing, owner-only (0600) when it is created.
pub(crate) fn create_file(path: &Path) -> io::Result<File> {
    let mut options = OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path)
}

/// Takes the group and other permission bits off `dir` and everything in it (files sled made
/// with the umask); what cannot be changed (another owner's file) is left for the directory
/// to guard.
pub(crate) fn tighten(dir: &Path) -> io::Result<()> {
    restrict(dir)?;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let kind = entry.file_type()?;
        if kind.is_dir() {
            tighten(&entry.path())?;
        } else if kind.is_file() {
            restrict(&entry.path())?;
        }
    }
    Ok(())
}

/// `path` without its group and other bits.
#[cfg(unix)]
fn restrict(path: &Path) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path)?.permissions().mode();
    if mode & 0o077 == 0 {
        return Ok(());
    }
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode & 0o7700))
}

#[cfg(not(unix))]
fn restrict(_: &Path) -> io::Result<()> {
    Ok(())
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path)
            .expect("metadata")
            .permissions()
            .mode()
            & 0o777
    }

    #[test]
    fn directories_and_files_are_owner_only_and_old_ones_are_tightened() {
        let root =
            std::env::temp_dir().join(format!("civicflow-private-fs-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let nested = root.join("a").join("b");
        create_dir_all(&nested).expect("created");
        assert_eq!(mode(&root), 0o700, "a missing parent too");
        assert_eq!(mode(&nested), 0o700);
        create_file(&nested.join("f")).expect("created");
        assert_eq!(mode(&nested.join("f")), 0o600);

        // What an older version (or sled, under umask 022) made.
        let old = root.join("old");
        std::fs::create_dir(&old).expect("created");
        std::fs::set_permissions(&old, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        std::fs::write(old.join("db"), b"x").expect("written");
        std::fs::set_permissions(old.join("db"), std::fs::Permissions::from_mode(0o644))
            .expect("chmod");
        create_dir_all(&old).expect("an existing directory");
        assert_eq!(mode(&old), 0o700, "tightened");
        tighten(&root).expect("tightened");
        assert_eq!(mode(&old.join("db")), 0o600);
        std::fs::remove_dir_all(&root).expect("removed");
    }
}
