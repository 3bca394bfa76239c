//! Throwaway sites: a temporary folder with content/, static/ and
//! quire.toml, the fixtures written into it, and checks on what quire wrote.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::{BIN, REPO};

/// The fixture site's content, relative to the repository.
const FIXTURE: &str = "tests/fixtures/site/content";

/// A site in a temporary folder: content/, static/, and quire.toml.
pub struct SiteDir {
    pub dir: tempfile::TempDir,
}

impl SiteDir {
    /// An empty site with a config that serves plain HTTP on a free port.
    pub fn empty(extra_config: &str) -> SiteDir {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::create_dir_all(dir.path().join("content/posts")).unwrap();
        std::fs::create_dir_all(dir.path().join("static")).unwrap();
        let config = format!(
            "[site]\ntitle = \"Test blog\"\nbase_url = \"https://blog.test/\"\nauthor = \"Tess Ter\"\n\n[listen]\nhttp = \"127.0.0.1:0\"\nmetrics = \"127.0.0.1:0\"\n\n[tls]\nmode = \"off\"\n{extra_config}"
        );
        std::fs::write(dir.path().join("quire.toml"), config).unwrap();
        SiteDir { dir }
    }

    /// The fixture site, tests/fixtures/site/: the example posts as they
    /// shipped, with the theme compiled into the binary. Not the repository's
    /// content/ and static/, which are the user's to change: a post added
    /// there must not change what a test sees.
    pub fn example(extra_config: &str) -> SiteDir {
        let site = SiteDir::empty(extra_config);
        copy_tree(&Path::new(REPO).join(FIXTURE), &site.path("content"));
        site
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    pub fn config(&self) -> PathBuf {
        self.path("quire.toml")
    }

    /// The site's `quire.toml` as `quire serve` would load it (no flags,
    /// no environment), for a server started in the test's process.
    pub fn load_config(&self) -> quire::config::Config {
        let overrides = quire::config::Overrides {
            config_file: Some(self.config()),
            ..Default::default()
        };
        quire::config::Config::load(&overrides, &quire::config::no_env).unwrap()
    }

    pub fn write(&self, rel: &str, text: &str) {
        let path = self.path(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        // Write then rename, as editors do, so the watcher never sees half a file.
        let tmp = path.with_extension("partial~");
        std::fs::write(&tmp, text).unwrap();
        std::fs::rename(&tmp, &path).unwrap();
    }

    /// Runs a `quire` command to completion: (exit code, stdout, stderr).
    pub fn run(&self, args: &[&str]) -> (i32, String, String) {
        let out = Command::new(BIN)
            .args(args)
            .current_dir(self.dir.path())
            .env_remove("RUST_LOG")
            .output()
            .expect("run quire");
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }
}

/// Sets the permission bits of `rel` in a [`SiteDir`].
pub fn chmod(site: &SiteDir, rel: &str, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(site.path(rel), std::fs::Permissions::from_mode(mode)).unwrap();
}

fn copy_tree(from: &Path, to: &Path) {
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            std::fs::create_dir_all(&target).unwrap();
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// The example site in local mode on free ports, certified for `localhost`.
pub fn local_site(extra: &str) -> SiteDir {
    let site = SiteDir::example("");
    let config = format!(
        "[site]\ntitle = \"Test blog\"\n\n[listen]\nhttp = \"127.0.0.1:0\"\nmetrics = \"127.0.0.1:0\"\nhttps = \"127.0.0.1:0\"\nlocal_ca = \"127.0.0.1:0\"\n\n[tls]\nmode = \"local\"\n{extra}"
    );
    std::fs::write(site.config(), config).unwrap();
    site
}

/// A post with TOML front matter.
pub fn post(title: &str, date: &str, extra: &str, body: &str) -> String {
    format!("+++\ntitle = \"{title}\"\ndate = {date}\n{extra}+++\n\n{body}\n")
}

/// Asserts that everything under `dir` is private to its owner: directories
/// 0700, files (keys, certificates, sled's, archives) without group or other
/// permissions.
pub fn assert_private(dir: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::symlink_metadata(dir).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o700, "{} is {mode:o}", dir.display());
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_dir() {
            assert_private(&entry.path());
        } else {
            let mode = entry.metadata().unwrap().permissions().mode() & 0o777;
            assert_eq!(mode & 0o077, 0, "{} is {mode:o}", entry.path().display());
        }
    }
}
