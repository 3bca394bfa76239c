//! The list of intermediates the local CA replaced, kept in its folder: the
//! key identifiers of their certificates, so renewal information can tell the
//! leaves they signed to renew at once (and answer 404 for any other).

use std::fs;
use std::io::ErrorKind;
use std::path::Path;

use super::files::{LocalCaError, write_atomic};

/// Key identifiers of earlier intermediates, one hex line each, oldest first.
/// Leaves they signed may still be in use; renewal information tells those to
/// renew now, and answers 404 for identifiers this CA never had.
pub(super) const RETIRED_FILE: &str = "retired-intermediates";
/// Enough for years of yearly rotations and a few root replacements; an
/// intermediate older than that has ended, and so have its leaves.
const MAX_RETIRED: usize = 32;
/// [`MAX_RETIRED`] lines of at most 128 hex digits (a 64-byte key identifier)
/// fit; a file beyond this was not written by quire and is refused.
const MAX_RETIRED_BYTES: u64 = 8192;
const MAX_KEY_ID_HEX: usize = 128;

/// The key identifiers in the retired-intermediates file, oldest first.
pub(super) fn read_retired(path: &Path) -> Result<Vec<Vec<u8>>, LocalCaError> {
    use std::io::Read;
    let damaged = |reason: String| LocalCaError::RetiredList {
        path: path.to_owned(),
        reason,
    };
    let unreadable = |source| LocalCaError::RetiredListUnreadable {
        path: path.to_owned(),
        source,
    };
    let file = match fs::File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => return Err(unreadable(source)),
    };
    let mut bytes = Vec::new();
    file.take(MAX_RETIRED_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(unreadable)?;
    if bytes.len() as u64 > MAX_RETIRED_BYTES {
        return Err(damaged(format!(
            "it is larger than {MAX_RETIRED_BYTES} bytes"
        )));
    }
    let text = String::from_utf8(bytes).map_err(|_| damaged("it is not text".into()))?;
    text.lines()
        .enumerate()
        .map(|(i, line)| {
            let bad = || damaged(format!("line {} is not a hex key identifier", i + 1));
            let line = line.trim();
            if line.is_empty() || line.len() % 2 != 0 || line.len() > MAX_KEY_ID_HEX {
                return Err(bad());
            }
            (0..line.len())
                .step_by(2)
                .map(|at| u8::from_str_radix(&line[at..at + 2], 16).map_err(|_| bad()))
                .collect()
        })
        .collect()
}

/// Adds `key_id` to the retired list (once), keeping the newest [`MAX_RETIRED`].
pub(super) fn retire(
    path: &Path,
    retired: &mut Vec<Vec<u8>>,
    key_id: Vec<u8>,
) -> Result<(), LocalCaError> {
    if retired.contains(&key_id) {
        return Ok(());
    }
    retired.push(key_id);
    let excess = retired.len().saturating_sub(MAX_RETIRED);
    retired.drain(..excess);
    let text: String = retired
        .iter()
        .map(|id| {
            let mut line: String = id.iter().map(|b| format!("{b:02x}")).collect();
            line.push('\n');
            line
        })
        .collect();
    write_atomic(path, &text)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn the_retired_list_keeps_each_key_once_and_only_the_newest() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(RETIRED_FILE);
        let mut retired = Vec::new();
        for n in 0..MAX_RETIRED + 3 {
            retire(&path, &mut retired, vec![n as u8, 0xab]).unwrap();
            retire(&path, &mut retired, vec![n as u8, 0xab]).unwrap();
        }
        let expected: Vec<Vec<u8>> = (3..MAX_RETIRED + 3).map(|n| vec![n as u8, 0xab]).collect();
        assert_eq!(retired, expected);
        assert_eq!(read_retired(&path).unwrap(), expected);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
}
