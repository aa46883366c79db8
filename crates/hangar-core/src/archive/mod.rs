//! The backup archive of `hangar export` and `hangar import` (layout and member names:
//! [`hangar_model::backup`]): a tar stream of ustar headers with PAX records (long
//! paths and link targets, extended attributes as `SCHILY.xattr.NAME`), compressed
//! with zstd (with its frame checksum), ending with a member that holds the SHA-256
//! of every byte of the tar stream before it. Both ends stream: nothing holds a
//! guest's files in memory, and a reader on a pipe checks the digest as it goes.
//!
//! Owners are the guest's own ids (0-65535): a guest's files are stored on the host
//! shifted into its context's range, and the shift is taken off on the way out and
//! put on for the importing guest's range on the way in ([`Ids`]); ids inside file
//! capabilities and POSIX ACLs go the same way.

pub mod layers;
pub mod pack;
pub mod unpack;

use sha2::{Digest as _, Sha256};
use std::cell::RefCell;
use std::io::{Read, Write};
use std::rc::Rc;

/// How owners go between a tree on the host and the archive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ids {
    /// A guest's tree shifted to host ids `base..base+65536`: the archive holds the
    /// guest's ids. Host ids outside the range (the guest sees them as its overflow
    /// id, nobody) are written as 65534.
    Shifted { base: u32 },
    /// A privileged guest's tree: host ids as they are.
    Raw,
}

/// The id a guest sees for host ids outside its range (the kernel's overflow id).
pub const OVERFLOW_ID: u32 = 65534;

impl Ids {
    /// The id the archive holds for host id `id`.
    pub fn to_archive(self, id: u32) -> u32 {
        match self {
            Ids::Raw => id,
            Ids::Shifted { base } => id
                .checked_sub(base)
                .filter(|g| *g < hangar_model::ctx::ID_RANGE)
                .unwrap_or(OVERFLOW_ID),
        }
    }

    /// The host id for id `id` of the archive; None when it is no id of a guest (an
    /// unprivileged guest has 0-65535; -1 means "no owner" to chown).
    pub fn to_host(self, id: u64) -> Option<u32> {
        let id = u32::try_from(id).ok().filter(|i| *i != u32::MAX)?;
        match self {
            Ids::Raw => Some(id),
            Ids::Shifted { base } => (id < hangar_model::ctx::ID_RANGE).then_some(base + id),
        }
    }
}

/// How far a long piece of work has come: bytes done, and the total when known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    pub done: u64,
    pub total: Option<u64>,
}

/// Bytes as lowercase hex digits.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A writer that hashes everything written through it.
struct HashWriter<W> {
    inner: W,
    hasher: Sha256,
}

impl<W: Write> HashWriter<W> {
    fn new(inner: W) -> Self {
        HashWriter {
            inner,
            hasher: Sha256::new(),
        }
    }

    /// Hex SHA-256 of every byte written so far.
    fn digest(&self) -> String {
        hex(&self.hasher.clone().finalize())
    }
}

impl<W: Write> Write for HashWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// The digest of a stream being read, able to say what it was at an offset a little
/// behind the reader: the checksum member's header, which covers none of the bytes it
/// follows, is read before the reader knows it is the checksum's.
struct Digest {
    hasher: Sha256,
    /// Bytes read but not hashed yet (the last [`Digest::KEEP`] at least).
    pending: Vec<u8>,
    /// Offset of `pending[0]` in the stream.
    hashed: u64,
}

impl Digest {
    const KEEP: usize = 4096;
    const FLUSH: usize = 64 * 1024;

    fn absorb(&mut self, buf: &[u8]) {
        self.pending.extend_from_slice(buf);
        if self.pending.len() >= Self::FLUSH {
            let n = self.pending.len() - Self::KEEP;
            self.hasher.update(&self.pending[..n]);
            self.pending.drain(..n);
            self.hashed += n as u64;
        }
    }

    /// Hex SHA-256 of the stream's first `at` bytes (None when `at` is out of reach).
    fn at(&self, at: u64) -> Option<String> {
        let n = usize::try_from(at.checked_sub(self.hashed)?).ok()?;
        let mut h = self.hasher.clone();
        h.update(self.pending.get(..n)?);
        Some(hex(&h.finalize()))
    }
}

/// A reader that feeds what it reads to a shared [`Digest`].
struct HashReader<R> {
    inner: R,
    digest: Rc<RefCell<Digest>>,
}

impl<R: Read> HashReader<R> {
    fn new(inner: R) -> (Self, Rc<RefCell<Digest>>) {
        let digest = Rc::new(RefCell::new(Digest {
            hasher: Sha256::new(),
            pending: Vec::new(),
            hashed: 0,
        }));
        let r = HashReader {
            inner,
            digest: digest.clone(),
        };
        (r, digest)
    }
}

impl<R: Read> Read for HashReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.digest.borrow_mut().absorb(&buf[..n]);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_shifted_both_ways_and_strangers_are_nobody() {
        let ids = Ids::Shifted { base: 7 * 65536 };
        assert_eq!(ids.to_archive(7 * 65536 + 1000), 1000);
        assert_eq!(ids.to_archive(0), OVERFLOW_ID);
        assert_eq!(ids.to_archive(8 * 65536), OVERFLOW_ID);
        assert_eq!(ids.to_host(1000), Some(7 * 65536 + 1000));
        assert_eq!(ids.to_host(65536), None);
        assert_eq!(Ids::Raw.to_archive(123_456), 123_456);
        assert_eq!(Ids::Raw.to_host(123_456), Some(123_456));
        assert_eq!(Ids::Raw.to_host(u64::from(u32::MAX)), None);
    }

    #[test]
    fn a_digest_is_known_a_little_behind_the_reader() {
        let data: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        let (mut r, digest) = HashReader::new(&data[..]);
        let mut out = vec![0u8; 150_000];
        r.read_exact(&mut out).unwrap();
        let at = 150_000 - 512;
        let want = hex(&Sha256::digest(&data[..at]));
        assert_eq!(digest.borrow().at(at as u64), Some(want));
        assert_eq!(digest.borrow().at(1000), None, "long hashed");
        assert_eq!(digest.borrow().at(150_001), None, "not read yet");
    }
}
