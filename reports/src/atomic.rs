//! Atomic file writes: write a temporary file beside the target, then rename it over.

use std::io::Write;
use std::path::Path;

/// Writes `bytes` to `path` so that readers see either the old file or the whole new one.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("out");
    let tmp = dir.join(format!(".{name}{TMP}{}", std::process::id()));
    let written = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if written.is_err() {
        // Best effort: a failed write leaves no temporary behind.
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

/// The infix of a temporary file's name: `.{name}.tmp.{pid}`.
const TMP: &str = ".tmp.";

/// Removes the temporaries of writes a stopped process left in `dir` (nothing if `dir` does
/// not exist), so that a directory written again looks as if written once. Returns how many.
pub fn remove_leftovers(dir: &Path) -> std::io::Result<usize> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    let mut removed = 0;
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with('.') && name.contains(TMP) && entry.file_type()?.is_file() {
            std::fs::remove_file(entry.path())?;
            removed += 1;
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_the_file_and_leaves_no_temporary() {
        let dir = std::env::temp_dir().join(format!("dynsim-atomic-{}", std::process::id()));
        let p = dir.join("a.csv");
        write_atomic(&p, b"one").unwrap();
        write_atomic(&p, b"two").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"two");
        let names: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 1, "{names:?}");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn leftovers_of_a_stopped_write_go_and_nothing_else() {
        let dir = std::env::temp_dir().join(format!("dynsim-leftover-{}", std::process::id()));
        write_atomic(&dir.join("a.csv"), b"one").unwrap();
        std::fs::write(dir.join(".a.csv.tmp.12345"), b"half").unwrap();
        std::fs::write(dir.join(".hidden"), b"kept").unwrap();
        assert_eq!(remove_leftovers(&dir).unwrap(), 1);
        let mut names: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names, [".hidden", "a.csv"]);
        assert_eq!(remove_leftovers(&dir.join("absent")).unwrap(), 0);
        std::fs::remove_dir_all(dir).unwrap();
    }
}
