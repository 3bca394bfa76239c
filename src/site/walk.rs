//! Which files under content/ or static/ may be published. Content arrives by
//! git, which carries symbolic links, so the walk is fenced: a link is followed
//! only while it resolves inside the folder being walked (a link back to a
//! folder being walked is reported, not looped round), and quire's data
//! directory is never entered, wherever it is configured. Folders that cannot
//! be listed are named, so that a build keeps what they held instead of
//! unpublishing it.

use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use super::problem::Problem;

/// What a walk found.
#[derive(Debug, Default)]
pub struct Listing {
    /// Relative `/`-separated path, full path, metadata of what it points to.
    pub files: Vec<(String, PathBuf, std::fs::Metadata)>,
    /// Folders whose entries could not be read.
    pub unreadable: Vec<PathBuf>,
}

impl Listing {
    /// Whether `path` lies in a folder that could not be read.
    pub fn hides(&self, path: &Path) -> bool {
        self.unreadable.iter().any(|dir| path.starts_with(dir))
    }
}

/// Files that editors and systems leave behind and nobody means to publish.
fn is_ignored(name: &str) -> bool {
    name.starts_with('.') || name.ends_with('~') || name.ends_with(".swp") || name.ends_with(".tmp")
}

/// Where a walk may go, resolved once per walk.
struct Fence<'a> {
    /// The walked folder as written, for messages.
    root: &'a Path,
    /// The walked folder with every link resolved; `None` when that fails,
    /// and then no link is followed.
    real_root: Option<PathBuf>,
    real_data: Option<PathBuf>,
    /// Device and inode of the data directory, to know it under any name.
    data_id: Option<(u64, u64)>,
}

impl Fence<'_> {
    fn new<'a>(root: &'a Path, data: &Path) -> Fence<'a> {
        Fence {
            root,
            real_root: root.canonicalize().ok(),
            real_data: data.canonicalize().ok(),
            data_id: std::fs::metadata(data).ok().map(|m| (m.dev(), m.ino())),
        }
    }

    /// Whether the walk may take `entry`; if not, why.
    fn admit(&self, entry: &walkdir::DirEntry) -> Result<(), Problem> {
        let refuse = |message: String| Err(Problem::new(entry.path().to_path_buf(), 0, message));
        if entry.path_is_symlink() {
            let target = match entry.path().canonicalize() {
                Ok(target) => target,
                Err(e) => return refuse(format!("cannot resolve the symbolic link: {e}")),
            };
            if self
                .real_data
                .as_ref()
                .is_some_and(|d| target.starts_with(d))
            {
                return refuse(format!(
                    "a symbolic link into quire's data directory ({}); quire never publishes it: remove the link",
                    target.display()
                ));
            }
            if !self
                .real_root
                .as_ref()
                .is_some_and(|r| target.starts_with(r))
            {
                return refuse(format!(
                    "a symbolic link to {}, outside {}; quire does not publish it: copy the file in instead",
                    target.display(),
                    self.root.display()
                ));
            }
        }
        if entry.file_type().is_dir()
            && let Some(id) = self.data_id
            && entry.metadata().is_ok_and(|m| (m.dev(), m.ino()) == id)
        {
            return refuse(format!(
                "quire's data directory is never published; set [paths] data to a folder outside {}",
                self.root.display()
            ));
        }
        Ok(())
    }
}

/// Lists the files under `root` that may be published, never entering `data`.
/// Everything refused or unreadable becomes a problem.
pub fn walk(root: &Path, data: &Path, problems: &mut Vec<Problem>) -> Listing {
    let fence = Fence::new(root, data);
    let mut listing = Listing::default();
    let mut refused = Vec::new();
    let walker = walkdir::WalkDir::new(root)
        .follow_links(true)
        .sort_by_file_name()
        .into_iter()
        .filter_entry(|e| {
            if e.depth() == 0 {
                return true;
            }
            if is_ignored(&e.file_name().to_string_lossy()) {
                return false;
            }
            fence.admit(e).map_err(|p| refused.push(p)).is_ok()
        });
    for entry in walker {
        let entry = match entry {
            Ok(entry) => entry,
            Err(e) => {
                let path = e.path().unwrap_or(root).to_path_buf();
                let message = if let Some(ancestor) = e.loop_ancestor() {
                    format!(
                        "a symbolic link back to {}, which would loop; quire does not follow it: remove the link",
                        ancestor.display()
                    )
                } else if path.is_symlink() && !path.exists() {
                    let target = std::fs::read_link(&path).unwrap_or_default();
                    format!(
                        "a symbolic link to {}, which does not exist; fix or remove the link",
                        target.display()
                    )
                } else {
                    let error = e
                        .into_io_error()
                        .unwrap_or_else(|| io::Error::other("unknown"));
                    if path.is_dir() {
                        listing.unreadable.push(path.clone());
                        format!(
                            "{}; until then what was read from it before stays published",
                            unreadable(&path, &error, true)
                        )
                    } else {
                        unreadable(&path, &error, false)
                    }
                };
                problems.push(Problem::new(path, 0, message));
                continue;
            }
        };
        if !entry.file_type().is_file() {
            continue;
        }
        let Ok(rel) = entry.path().strip_prefix(root) else {
            continue;
        };
        let Some(rel) = rel.to_str() else {
            problems.push(Problem::new(
                entry.path().to_path_buf(),
                0,
                "the file name is not UTF-8; rename it".into(),
            ));
            continue;
        };
        match entry.metadata() {
            Ok(meta) => {
                listing
                    .files
                    .push((rel.replace('\\', "/"), entry.path().to_path_buf(), meta))
            }
            Err(e) => {
                let error = e
                    .into_io_error()
                    .unwrap_or_else(|| io::Error::other("unknown"));
                problems.push(Problem::new(
                    entry.path().to_path_buf(),
                    0,
                    unreadable(entry.path(), &error, false),
                ));
            }
        }
    }
    problems.extend(refused);
    listing
}

/// Why `path` could not be read and what to do. A permission problem names the
/// user quire runs as, since that is whom the fix must let in.
pub fn unreadable(path: &Path, error: &io::Error, folder: bool) -> String {
    match error.kind() {
        io::ErrorKind::PermissionDenied => format!(
            "permission denied: quire runs as user {}; make the {} readable (chmod {} {})",
            user_name(),
            if folder { "folder" } else { "file" },
            if folder { "a+rx" } else { "a+r" },
            path.display()
        ),
        _ => format!("cannot read: {error}; check the file and the disk it is on"),
    }
}

/// The effective user, by name where the system knows it.
fn user_name() -> String {
    // SAFETY: geteuid has no preconditions.
    let uid = unsafe { libc::geteuid() };
    let mut buffer = vec![0 as libc::c_char; 4096];
    // SAFETY: passwd is plain data; getpwuid_r fills it with pointers into
    // `buffer`, which outlives every use of them below.
    let mut entry: libc::passwd = unsafe { std::mem::zeroed() };
    let mut found: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: every pointer is valid for the length given.
    let status = unsafe {
        libc::getpwuid_r(
            uid,
            &mut entry,
            buffer.as_mut_ptr(),
            buffer.len(),
            &mut found,
        )
    };
    if status == 0 && !found.is_null() && !entry.pw_name.is_null() {
        // SAFETY: a successful getpwuid_r leaves a NUL-terminated name in `buffer`.
        let name = unsafe { std::ffi::CStr::from_ptr(entry.pw_name) };
        format!("{} (uid {uid})", name.to_string_lossy())
    } else {
        format!("with uid {uid}")
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::symlink;

    use super::*;

    fn listed(listing: &Listing) -> Vec<&str> {
        listing
            .files
            .iter()
            .map(|(rel, _, _)| rel.as_str())
            .collect()
    }

    #[test]
    fn links_are_followed_only_inside_the_root_and_never_into_data() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("content");
        let data = root.join("data");
        std::fs::create_dir_all(root.join("posts")).unwrap();
        std::fs::create_dir_all(&data).unwrap();
        std::fs::write(root.join("notes.txt"), "notes").unwrap();
        std::fs::write(data.join("root.key"), "key").unwrap();
        std::fs::write(dir.path().join("secret.txt"), "secret").unwrap();
        symlink("notes.txt", root.join("same.txt")).unwrap();
        symlink("posts", root.join("articles")).unwrap();
        std::fs::write(root.join("posts/a.md"), "a").unwrap();
        symlink("../secret.txt", root.join("leak.txt")).unwrap();
        symlink("/", root.join("everything")).unwrap();
        symlink("data/root.key", root.join("key.txt")).unwrap();
        symlink("..", root.join("posts/up")).unwrap();
        symlink("gone.txt", root.join("broken.txt")).unwrap();

        let mut problems = Vec::new();
        let listing = walk(&root, &data, &mut problems);
        assert_eq!(
            listed(&listing),
            ["articles/a.md", "notes.txt", "posts/a.md", "same.txt"]
        );
        let mut found: Vec<String> = problems
            .iter()
            .map(|p| {
                let name = p.file.strip_prefix(&root).unwrap().display().to_string();
                format!("{name}: {}", p.message.split([',', ';']).next().unwrap())
            })
            .collect();
        found.sort();
        let real = |p: &Path| p.canonicalize().unwrap().display().to_string();
        assert_eq!(
            found,
            [
                // The same loop, met through the link to posts/.
                format!("articles/up: a symbolic link back to {}", root.display()),
                "broken.txt: a symbolic link to gone.txt".to_string(),
                "data: quire's data directory is never published".into(),
                "everything: a symbolic link to /".into(),
                format!(
                    "key.txt: a symbolic link into quire's data directory ({})",
                    real(&data.join("root.key"))
                ),
                format!(
                    "leak.txt: a symbolic link to {}",
                    real(&dir.path().join("secret.txt"))
                ),
                format!("posts/up: a symbolic link back to {}", root.display()),
            ]
        );
        assert!(listing.unreadable.is_empty());
    }

    #[test]
    fn a_root_reached_through_a_link_is_fenced_by_where_it_leads() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("real");
        std::fs::create_dir_all(&real).unwrap();
        std::fs::write(real.join("a.txt"), "a").unwrap();
        symlink("a.txt", real.join("b.txt")).unwrap();
        symlink("real", dir.path().join("content")).unwrap();
        let mut problems = Vec::new();
        let listing = walk(
            &dir.path().join("content"),
            &dir.path().join("data"),
            &mut problems,
        );
        assert_eq!(listed(&listing), ["a.txt", "b.txt"]);
        assert!(problems.is_empty(), "{problems:?}");
    }

    #[test]
    fn permission_problems_name_the_user_and_the_fix() {
        let denied = io::Error::from(io::ErrorKind::PermissionDenied);
        let message = unreadable(Path::new("content/posts/x.md"), &denied, false);
        assert!(
            message.starts_with("permission denied: quire runs as user "),
            "{message}"
        );
        assert!(
            message.ends_with("make the file readable (chmod a+r content/posts/x.md)"),
            "{message}"
        );
        let folder = unreadable(Path::new("content"), &denied, true);
        assert!(
            folder.ends_with("make the folder readable (chmod a+rx content)"),
            "{folder}"
        );
        let other = unreadable(Path::new("x"), &io::Error::other("disk on fire"), false);
        assert!(other.starts_with("cannot read: disk on fire"), "{other}");
    }
}
