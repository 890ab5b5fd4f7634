//! Keys from a JWKS file, re-read when its modification time changes, so an operator (or a
//! timer that downloads the file) can rotate keys without a restart.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use jsonwebtoken::jwk::JwkSet;

use super::keys::{self, JwksError, Origin};

pub(super) struct FileKeys {
    path: PathBuf,
    loaded: Mutex<Loaded>,
}

struct Loaded {
    set: Arc<JwkSet>,
    modified: Option<SystemTime>,
    checked: Instant,
}

/// How often the file's modification time is looked at.
const RECHECK: Duration = Duration::from_secs(5);

impl FileKeys {
    pub(super) fn open(path: PathBuf) -> Result<FileKeys, JwksError> {
        let (set, modified) = read(&path)?;
        let loaded = Loaded { set: Arc::new(set), modified, checked: Instant::now() };
        Ok(FileKeys { path, loaded: Mutex::new(loaded) })
    }

    pub(super) fn current(&self) -> Arc<JwkSet> {
        let mut loaded = self.loaded.lock().expect("jwks file");
        if loaded.checked.elapsed() >= RECHECK {
            loaded.checked = Instant::now();
            let modified = std::fs::metadata(&self.path).and_then(|m| m.modified()).ok();
            if modified != loaded.modified {
                match read(&self.path) {
                    Ok((set, modified)) => {
                        tracing::info!(message = "Reloaded the JWKS file.", keys = set.keys.len());
                        loaded.set = Arc::new(set);
                        loaded.modified = modified;
                    }
                    // A half-written file is not a reason to lock everyone out.
                    Err(error) => {
                        tracing::warn!(message = "Could not reload the JWKS file; keeping the previous keys.", %error);
                    }
                }
            }
        }
        loaded.set.clone()
    }

    pub(super) fn reload(&self) -> Result<usize, JwksError> {
        let (set, modified) = read(&self.path)?;
        let n = set.keys.len();
        let mut loaded = self.loaded.lock().expect("jwks file");
        *loaded = Loaded { set: Arc::new(set), modified, checked: Instant::now() };
        Ok(n)
    }
}

fn read(path: &std::path::Path) -> Result<(JwkSet, Option<SystemTime>), JwksError> {
    let shown = path.display().to_string();
    // The time is taken before reading, so a write that lands during the read is seen next time.
    let modified = std::fs::metadata(path).and_then(|m| m.modified()).ok();
    let bytes = std::fs::read(path).map_err(|source| JwksError::Read { path: shown.clone(), source })?;
    Ok((keys::parse(&bytes, &shown, Origin::File)?, modified))
}
