//! A zip archive of pictures, read one entry at a time into a [`FolderBuilder`] so that callers
//! can show progress (and, in the browser, yield between entries). Only stored and deflated
//! entries are read, the two methods every common zip tool writes; others are skipped with a reason.

use std::io::{Cursor, Read};

use crate::FolderBuilder;

/// Entries larger than this uncompressed are skipped: no picture for a 32-pixel model is that
/// large, and a zip bomb must not take the browser tab down.
const MAX_ENTRY_BYTES: u64 = 64 << 20;

/// An opened archive (the central directory is read; entries are inflated on demand).
pub struct PictureZip {
    archive: zip::ZipArchive<Cursor<Vec<u8>>>,
}

impl PictureZip {
    /// Opens the archive in `bytes`.
    ///
    /// # Errors
    /// Why the bytes are not a readable zip archive, in words.
    pub fn new(bytes: Vec<u8>) -> Result<Self, String> {
        zip::ZipArchive::new(Cursor::new(bytes))
            .map(|archive| Self { archive })
            .map_err(|e| e.to_string())
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
        if entry.size() > MAX_ENTRY_BYTES {
            let why = format!("{} MiB uncompressed, over the {} MiB limit", entry.size() >> 20, MAX_ENTRY_BYTES >> 20);
            return builder.add_file(&name, Err(why));
        }
        let mut bytes = Vec::with_capacity(entry.size() as usize);
        // `take` bounds the read even if the header under-states the size.
        let read = (&mut entry).take(MAX_ENTRY_BYTES + 1).read_to_end(&mut bytes);
        match read {
            Ok(n) if n as u64 > MAX_ENTRY_BYTES => {
                builder.add_file(&name, Err(format!("over the {} MiB limit uncompressed", MAX_ENTRY_BYTES >> 20)));
            }
            Ok(_) => builder.add_file(&name, Ok(&bytes)),
            Err(e) => builder.add_file(&name, Err(e.to_string())),
        }
    }
}
