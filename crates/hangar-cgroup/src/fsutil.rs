//! Small file helpers for cgroupfs that attach the path to every error.
//!
//! cgroupfs files are tiny text files; reading them whole and writing each
//! value with a single `write(2)` is what the kernel expects.

use std::fs;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use crate::CgroupError;

/// Reads a cgroup file to a string.
pub(crate) fn read(path: &Path) -> Result<String, CgroupError> {
    fs::read_to_string(path).map_err(|source| CgroupError::Read {
        path: path.to_path_buf(),
        source,
    })
}

/// Reads a cgroup file, treating a missing file as absent.
pub(crate) fn read_opt(path: &Path) -> Result<Option<String>, CgroupError> {
    match fs::read_to_string(path) {
        Ok(text) => Ok(Some(text)),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(source) => Err(CgroupError::Read {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// Writes one value to a cgroup file.
pub(crate) fn write(path: &Path, value: &str) -> Result<(), CgroupError> {
    fs::write(path, value).map_err(|source| CgroupError::Write {
        path: path.to_path_buf(),
        value: value.to_owned(),
        source,
    })
}

/// Creates a directory unless it already exists.
pub(crate) fn mkdir(path: &Path) -> Result<(), CgroupError> {
    match fs::create_dir(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == ErrorKind::AlreadyExists => Ok(()),
        Err(source) => Err(CgroupError::CreateDir {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// Parses a decimal number from a cgroup file's trimmed content.
pub(crate) fn parse_u64(path: &Path, text: &str) -> Result<u64, CgroupError> {
    let value = text.trim();
    value.parse().map_err(|_| parse_error(path, value))
}

/// Parses a number or the word `max` (no limit) from a cgroup file.
pub(crate) fn parse_max(path: &Path, text: &str) -> Result<Option<u64>, CgroupError> {
    match text.trim() {
        "max" => Ok(None),
        _ => parse_u64(path, text).map(Some),
    }
}

/// Finds `key value` in a flat-keyed file such as `memory.stat` or `cpu.stat`.
pub(crate) fn keyed(path: &Path, text: &str, key: &str) -> Result<Option<u64>, CgroupError> {
    for line in text.lines() {
        let mut fields = line.split_whitespace();
        if fields.next() == Some(key) {
            let value = fields.next().unwrap_or("");
            return value.parse().map(Some).map_err(|_| parse_error(path, line));
        }
    }
    Ok(None)
}

/// Parses the pids listed in a `cgroup.procs` file, sorted and without duplicates
/// (cgroup v1 promises neither).
pub(crate) fn parse_procs(path: &Path, text: &str) -> Result<Vec<i32>, CgroupError> {
    let mut pids = text
        .split_whitespace()
        .map(|s| s.parse::<i32>().map_err(|_| parse_error(path, s)))
        .collect::<Result<Vec<_>, _>>()?;
    pids.sort_unstable();
    pids.dedup();
    Ok(pids)
}

fn parse_error(path: &Path, value: &str) -> CgroupError {
    CgroupError::Parse {
        path: PathBuf::from(path),
        value: value.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keyed_finds_exact_key_only() {
        let text = "total_rss 5\nrss 7\n";
        assert_eq!(keyed(Path::new("m"), text, "rss").unwrap(), Some(7));
    }

    #[test]
    fn keyed_reports_garbage_value() {
        let err = keyed(Path::new("m"), "anon x\n", "anon").unwrap_err();
        assert!(matches!(err, CgroupError::Parse { .. }));
    }

    #[test]
    fn parse_max_reads_word_max_as_no_limit() {
        assert_eq!(parse_max(Path::new("p"), "max\n").unwrap(), None);
        assert_eq!(parse_max(Path::new("p"), "12\n").unwrap(), Some(12));
    }

    #[test]
    fn parse_procs_sorts_and_dedups() {
        let pids = parse_procs(Path::new("c"), "9\n3\n9\n").unwrap();
        assert_eq!(pids, vec![3, 9]);
    }
}
