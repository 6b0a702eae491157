//! Walk a folder, keep image files in a stable order, and hash their content.

use rayon::prelude::*;
use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::UNIX_EPOCH;

/// File name extensions (lower case) that the decoders understand.
pub const IMAGE_EXTENSIONS: &[&str] = &["jpg", "jpeg", "png", "gif", "webp", "bmp", "tif", "tiff"];

/// Which part of a folder: `index` of `count` (1-based, as job arrays number tasks).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Shard {
    pub index: usize,
    pub count: usize,
}

impl Shard {
    /// Parses `I/N` with 1 <= I <= N.
    pub fn parse(text: &str) -> Result<Self, String> {
        let (i, n) = text
            .split_once('/')
            .ok_or_else(|| format!("'{text}' is not I/N (e.g. 2/8)"))?;
        let number = |s: &str| {
            s.trim()
                .parse::<usize>()
                .map_err(|_| format!("'{text}' is not I/N"))
        };
        let (index, count) = (number(i)?, number(n)?);
        if count == 0 || index == 0 || index > count {
            return Err(format!("shard {text}: need 1 <= I <= N"));
        }
        Ok(Self { index, count })
    }

    /// Whether the image at `rel` (relative path) belongs to this shard.
    pub fn holds(&self, rel: &str) -> bool {
        let hash = blake3::hash(rel.as_bytes());
        let word = u64::from_le_bytes(hash.as_bytes()[..8].try_into().expect("8 bytes"));
        (word % self.count as u64) as usize + 1 == self.index
    }
}

impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

/// An image file found by the scan, before anything is decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScannedFile {
    pub path: PathBuf,
    /// Path relative to the scanned root, `/`-separated; the stable sort key and the cache key.
    pub rel: String,
    pub size: u64,
    pub mtime_ns: u128,
}

/// A file that was left out, and why. Skips are always shown to the user.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Skip {
    pub path: String,
    pub reason: SkipReason,
}

/// Why a file was left out; becomes text only where it is shown (and in JSON, as that text).
#[derive(Debug, Clone, thiserror::Error)]
pub enum SkipReason {
    #[error("folder not readable: {0}")]
    FolderUnreadable(Arc<io::Error>),
    #[error("cannot read file: {0}")]
    Unreadable(Arc<io::Error>),
    #[error("symlink to a folder, not followed")]
    FolderSymlink,
    #[error("not a regular file (FIFO, socket or device)")]
    NotRegular,
    /// The decoder refused it (a `preprocess::DecodeError`).
    #[error("{0}")]
    Decode(Arc<dyn std::error::Error + Send + Sync>),
    /// A byte-identical copy of a file that failed.
    #[error("identical to {original}, which failed: {reason}")]
    CopyOf {
        original: String,
        reason: Box<SkipReason>,
    },
    /// Any other reason, as text.
    #[error("{0}")]
    Other(String),
}

impl SkipReason {
    pub fn unreadable(e: io::Error) -> Self {
        SkipReason::Unreadable(Arc::new(e))
    }

    /// Whether the reason as shown contains `words`.
    pub fn contains(&self, words: &str) -> bool {
        self.to_string().contains(words)
    }
}

impl From<&str> for SkipReason {
    fn from(text: &str) -> Self {
        SkipReason::Other(text.to_string())
    }
}

/// Two reasons are the same when they read the same.
impl PartialEq for SkipReason {
    fn eq(&self, other: &Self) -> bool {
        self.to_string() == other.to_string()
    }
}

impl Eq for SkipReason {}

impl serde::Serialize for SkipReason {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[derive(Debug, Default)]
pub struct Scan {
    pub files: Vec<ScannedFile>,
    pub skipped: Vec<Skip>,
}

#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    #[error("cannot read folder {path}: {cause}")]
    Root { path: PathBuf, cause: io::Error },
    #[error("{0} is not a folder; give a folder of images")]
    NotAFolder(PathBuf),
}

pub fn has_image_extension(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| IMAGE_EXTENSIONS.iter().any(|x| e.eq_ignore_ascii_case(x)))
}

/// Recursively lists the image files under `root`, sorted by relative path.
/// Symlinked folders are not followed (no loops); unreadable entries become skips. The
/// folders of each depth are listed in parallel (a million files take seconds one stat
/// at a time), one depth after the other, so that no depth of nesting grows a stack.
pub fn scan(root: &Path) -> Result<Scan, ScanError> {
    let meta = fs::metadata(root).map_err(|cause| ScanError::Root {
        path: root.to_path_buf(),
        cause,
    })?;
    if !meta.is_dir() {
        return Err(ScanError::NotAFolder(root.to_path_buf()));
    }
    let entries = fs::read_dir(root).map_err(|cause| ScanError::Root {
        path: root.to_path_buf(),
        cause,
    })?;
    let (mut out, mut folders) = list(root, "", entries);
    while !folders.is_empty() {
        let listed: Vec<(Scan, Vec<Folder>)> = folders
            .par_iter()
            .map(|dir| match fs::read_dir(&dir.path) {
                Ok(entries) => list(&dir.path, &dir.rel, entries),
                Err(e) => {
                    let why = SkipReason::FolderUnreadable(Arc::new(e));
                    let unreadable = Scan {
                        files: Vec::new(),
                        skipped: vec![Skip {
                            path: dir.rel.clone(),
                            reason: why,
                        }],
                    };
                    (unreadable, Vec::new())
                }
            })
            .collect();
        folders = Vec::new();
        for (scan, inner) in listed {
            out.files.extend(scan.files);
            out.skipped.extend(scan.skipped);
            folders.extend(inner);
        }
    }
    // Relative paths are unique: an unstable sort gives the one order.
    out.files.par_sort_unstable_by(|a, b| a.rel.cmp(&b.rel));
    out.skipped.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(out)
}

/// A folder to list: its path, and its path relative to the scanned root (`/`-separated,
/// empty for the root), which its entries' relative paths extend.
struct Folder {
    path: PathBuf,
    rel: String,
}

/// The image files of one folder's `entries`, and its subfolders.
fn list(dir: &Path, dir_rel: &str, entries: fs::ReadDir) -> (Scan, Vec<Folder>) {
    let mut out = Scan::default();
    let mut folders = Vec::new();
    for entry in entries.flatten() {
        visit(dir, dir_rel, &entry, &mut folders, &mut out);
    }
    (out, folders)
}

fn visit(
    dir: &Path,
    dir_rel: &str,
    entry: &fs::DirEntry,
    folders: &mut Vec<Folder>,
    out: &mut Scan,
) {
    // The listing says what an entry is (no stat where the file system knows).
    let Ok(kind) = entry.file_type() else {
        return; // vanished while we looked
    };
    let name = entry.file_name();
    // Built from the folder's relative path, not by stripping the root from each path (a
    // tenth of a warm start at a million files).
    let rel = match dir_rel {
        "" => name.to_string_lossy().into_owned(),
        _ => format!("{dir_rel}/{}", name.to_string_lossy()),
    };
    let path = dir.join(&name);
    if kind.is_dir() {
        folders.push(Folder { path, rel });
        return;
    }
    if !has_image_extension(&path) {
        return;
    }
    // Follow file symlinks, but not folder symlinks (they can form loops). Anything else
    // is the entry itself: one stat.
    let meta = match kind.is_symlink() {
        true => fs::metadata(&path),
        false => entry.metadata(),
    };
    let meta = match meta {
        Ok(m) => m,
        Err(e) => {
            out.skipped.push(Skip {
                path: rel,
                reason: SkipReason::unreadable(e),
            });
            return;
        }
    };
    if meta.is_dir() {
        out.skipped.push(Skip {
            path: rel,
            reason: SkipReason::FolderSymlink,
        });
        return;
    }
    // A FIFO would block the first read forever, a device may never end.
    if !meta.is_file() {
        out.skipped.push(Skip {
            path: rel,
            reason: SkipReason::NotRegular,
        });
        return;
    }
    let mtime_ns = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos());
    out.files.push(ScannedFile {
        rel,
        path,
        size: meta.len(),
        mtime_ns,
    });
}

/// Opens `path` for reading only if it is a regular file. The open itself does not block
/// (a FIFO swapped in after the scan would otherwise wait for a writer forever), and the
/// type is checked on the opened handle, not on the name, so a swap cannot slip between
/// the check and the read.
pub fn open_regular(path: &Path) -> io::Result<fs::File> {
    let mut options = fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.custom_flags(libc::O_NONBLOCK);
    }
    let file = options.open(path)?;
    if !file.metadata()?.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a regular file (FIFO, socket or device)",
        ));
    }
    Ok(file)
}

/// The whole content of the regular file `path` (see `open_regular`).
pub fn read_regular(path: &Path) -> io::Result<Vec<u8>> {
    let mut file = open_regular(path)?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// BLAKE3 of the file's bytes as hex: equal hashes mean byte-identical files.
pub fn content_hash(path: &Path) -> io::Result<String> {
    let mut file = open_regular(path)?;
    let mut hasher = blake3::Hasher::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hasher.finalize().to_hex().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scan_is_recursive_sorted_and_filters_extensions() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join("sub")).unwrap();
        fs::write(dir.path().join("b.PNG"), b"x").unwrap();
        fs::write(dir.path().join("a.jpg"), b"x").unwrap();
        fs::write(dir.path().join("notes.txt"), b"x").unwrap();
        fs::write(dir.path().join("sub/c.webp"), b"x").unwrap();
        let scan = scan(dir.path()).unwrap();
        let rels: Vec<_> = scan.files.iter().map(|f| f.rel.as_str()).collect();
        assert_eq!(rels, ["a.jpg", "b.PNG", "sub/c.webp"]);
    }

    #[test]
    fn scanning_a_file_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a.jpg");
        fs::write(&file, b"x").unwrap();
        assert!(matches!(scan(&file), Err(ScanError::NotAFolder(_))));
    }

    #[cfg(unix)]
    #[test]
    fn symlink_loops_are_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(dir.path(), dir.path().join("loop.png")).unwrap();
        std::os::unix::fs::symlink(dir.path(), dir.path().join("loopdir")).unwrap();
        let scan = scan(dir.path()).unwrap();
        assert!(scan.files.is_empty());
        assert_eq!(scan.skipped.len(), 1);
    }

    #[cfg(unix)]
    #[test]
    fn fifos_and_devices_are_skipped_not_read() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("x.jpg");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status();
        std::os::unix::fs::symlink("/dev/zero", dir.path().join("zero.png")).unwrap();
        let scan = scan(dir.path()).unwrap();
        assert!(scan.files.is_empty());
        let mut reasons: Vec<_> = scan.skipped.iter().map(|s| s.path.as_str()).collect();
        reasons.sort();
        if made.is_ok_and(|s| s.success()) {
            assert_eq!(reasons, ["x.jpg", "zero.png"]);
        } else {
            assert_eq!(reasons, ["zero.png"]);
        }
        assert!(scan.skipped[0].reason.contains("not a regular file"));
    }

    #[cfg(unix)]
    #[test]
    fn a_fifo_swapped_in_after_the_scan_is_refused_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.jpg");
        fs::write(&path, b"snow").unwrap();
        let scan = scan(dir.path()).unwrap();
        assert_eq!(scan.files.len(), 1);
        fs::remove_file(&path).unwrap();
        let made = std::process::Command::new("mkfifo").arg(&path).status();
        if !made.is_ok_and(|s| s.success()) {
            eprintln!("mkfifo unavailable: test skipped");
            return;
        }
        // Nobody writes to the FIFO: a blocking open would hang here.
        let err = content_hash(&path).unwrap_err();
        assert!(err.to_string().contains("not a regular file"), "{err}");
        assert!(read_regular(&path).is_err());
        let err = read_regular(Path::new("/dev/zero")).unwrap_err();
        assert!(err.to_string().contains("not a regular file"), "{err}");
    }

    #[test]
    fn shards_split_every_path_once() {
        let parse = |t: &str| Shard::parse(t).unwrap();
        assert_eq!(parse("2/8"), Shard { index: 2, count: 8 });
        for bad in ["0/3", "4/3", "1/0", "x/2", "3"] {
            assert!(Shard::parse(bad).is_err(), "{bad}");
        }
        let shards: Vec<Shard> = (1..=3).map(|i| Shard { index: i, count: 3 }).collect();
        let mut sizes = [0usize; 3];
        for n in 0..3000 {
            let rel = format!("folder/img{n}.png");
            let owners: Vec<usize> = (0..3).filter(|&s| shards[s].holds(&rel)).collect();
            assert_eq!(owners.len(), 1, "{rel}");
            sizes[owners[0]] += 1;
        }
        // BLAKE3 spreads them evenly.
        assert!(sizes.iter().all(|&s| (900..1100).contains(&s)), "{sizes:?}");
    }

    #[test]
    fn identical_bytes_hash_equal() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("a"), b"snow").unwrap();
        fs::write(dir.path().join("b"), b"snow").unwrap();
        fs::write(dir.path().join("c"), b"snow!").unwrap();
        let h = |n: &str| content_hash(&dir.path().join(n)).unwrap();
        assert_eq!(h("a"), h("b"));
        assert_ne!(h("a"), h("c"));
    }
}
