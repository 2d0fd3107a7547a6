//! A zip archive of pictures, read one entry at a time into a [`FolderBuilder`] so that callers
//! can show progress (and, in the browser, yield between entries). Only stored and deflated
//! entries are read, the two methods every common zip tool writes; others are skipped with a reason.

use std::io::{Cursor, Read};

use crate::{FolderBuilder, SkipReason};

/// What one archive may unpack. A zip bomb (a small archive that inflates to gigabytes, or lists
/// millions of entries) must not take the browser tab down.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ZipLimits {
    /// More entries than this (folders included) and the archive is refused as a whole.
    pub max_entries: usize,
    /// An entry larger than this uncompressed is skipped as too large: no picture for a small
    /// model is that large.
    pub max_entry_bytes: u64,
    /// Once the entries read unpack to this much in all, the rest are skipped as too large.
    pub max_total_bytes: u64,
}

impl Default for ZipLimits {
    fn default() -> Self {
        Self { max_entries: 100_000, max_entry_bytes: 64 << 20, max_total_bytes: 2 << 30 }
    }
}

/// An opened archive (the central directory is read; entries are inflated on demand).
pub struct PictureZip {
    archive: zip::ZipArchive<Cursor<Vec<u8>>>,
    limits: ZipLimits,
    /// Bytes unpacked so far, counted against `limits.max_total_bytes`.
    unpacked: u64,
}

impl PictureZip {
    /// Opens the archive in `bytes` with the default [`ZipLimits`].
    ///
    /// # Errors
    /// Why the bytes are not a readable zip archive, or one over the entry limit, in words.
    pub fn new(bytes: Vec<u8>) -> Result<Self, String> {
        Self::with_limits(bytes, ZipLimits::default())
    }

    /// [`PictureZip::new`] with other limits.
    ///
    /// # Errors
    /// As [`PictureZip::new`].
    pub fn with_limits(bytes: Vec<u8>, limits: ZipLimits) -> Result<Self, String> {
        let archive = zip::ZipArchive::new(Cursor::new(bytes)).map_err(|e| e.to_string())?;
        if archive.len() > limits.max_entries {
            return Err(format!(
                "{} entries, over the limit of {}: split the pictures into several archives",
                archive.len(),
                limits.max_entries
            ));
        }
        Ok(Self { archive, limits, unpacked: 0 })
    }

    /// Entries in the archive, folders included.
    pub fn len(&self) -> usize {
        self.archive.len()
    }

    pub fn is_empty(&self) -> bool {
        self.archive.len() == 0
    }

    /// Adds entry `index` to `builder`: a folder as a folder, a file as its bytes, or the reason it
    /// cannot be read (encrypted, unsupported compression, too large, corrupt).
    pub fn add_entry(&mut self, index: usize, builder: &mut FolderBuilder) {
        // The central directory names an entry even when its data is unreadable.
        let listed_name = match self.archive.name_for_index(index) {
            Some(Ok(name)) => name.into_owned(),
            _ => format!("entry {index}"),
        };
        let mut entry = match self.archive.by_index(index) {
            Ok(entry) => entry,
            Err(e) => return builder.add_file(&listed_name, Err(e.to_string())),
        };
        let name = entry.name().map_or(listed_name, |n| n.into_owned());
        if entry.is_dir() {
            return builder.add_folder(&name);
        }
        let ZipLimits { max_entry_bytes, max_total_bytes, .. } = self.limits;
        let left = max_total_bytes.saturating_sub(self.unpacked);
        let past_total = || SkipReason::TooLarge(format!("the archive unpacks to over {} in all", size(max_total_bytes)));
        if entry.size() > max_entry_bytes {
            let why = format!("{} uncompressed, over the limit of {}", size(entry.size()), size(max_entry_bytes));
            return builder.skip(&name, SkipReason::TooLarge(why));
        }
        if entry.size() > left {
            return builder.skip(&name, past_total());
        }
        let cap = max_entry_bytes.min(left);
        let mut bytes = Vec::with_capacity(entry.size() as usize);
        // `take` bounds the read even if the header under-states the size.
        let read = (&mut entry).take(cap + 1).read_to_end(&mut bytes);
        self.unpacked += bytes.len() as u64;
        match read {
            Ok(n) if n as u64 > max_entry_bytes => {
                builder.skip(&name, SkipReason::TooLarge(format!("over the limit of {} uncompressed", size(max_entry_bytes))));
            }
            Ok(n) if n as u64 > cap => builder.skip(&name, past_total()),
            Ok(_) => builder.add_file(&name, Ok(&bytes)),
            Err(e) => builder.add_file(&name, Err(e.to_string())),
        }
    }
}

/// `64 MiB`, or `4096 bytes` under a MiB.
fn size(bytes: u64) -> String {
    if bytes >= 1 << 20 { format!("{} MiB", bytes >> 20) } else { format!("{bytes} bytes") }
}
