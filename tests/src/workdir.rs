//! The per-test scratch directory.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

static NEXT: AtomicU32 = AtomicU32::new(0);

/// `<target>/callbridge-tests/<name>-<pid>-<n>/`: config, logs and SIPp traces of one test.
///
/// Removed on drop when the test passed; kept (and its path printed to stderr) when the thread
/// is panicking, so a failed run leaves everything needed to debug it. Set
/// `CALLBRIDGE_TESTS_KEEP=1` to keep it after a pass too.
#[derive(Debug)]
pub struct Workdir {
    path: PathBuf,
}

impl Workdir {
    /// Creates a fresh, empty directory for the test `name`.
    ///
    /// # Panics
    /// If the directory cannot be created.
    #[must_use]
    pub fn new(name: &str) -> Self {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path = crate::target_dir()
            .join("callbridge-tests")
            .join(format!("{name}-{}-{n}", std::process::id()));
        if path.exists() {
            let _ = std::fs::remove_dir_all(&path);
        }
        std::fs::create_dir_all(&path)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", path.display()));
        Self { path }
    }

    /// The directory.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A path inside the directory.
    #[must_use]
    pub fn file(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    /// Writes `contents` to `name` inside the directory and returns its path.
    ///
    /// # Panics
    /// If the file cannot be written.
    pub fn write(&self, name: &str, contents: &str) -> PathBuf {
        let p = self.file(name);
        std::fs::write(&p, contents)
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", p.display()));
        p
    }
}

impl Drop for Workdir {
    fn drop(&mut self) {
        let keep = std::env::var_os("CALLBRIDGE_TESTS_KEEP").is_some_and(|v| v != "0");
        if std::thread::panicking() || keep {
            eprintln!("test artifacts kept in {}", self.path.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}
