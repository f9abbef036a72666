//! The task directory: every path beneath it, opened without following links.
//!
//! Producers are untrusted, and a producer may leave anything in its task
//! directory: symbolic links (dangling, or pointing outside), named pipes,
//! sockets, devices, directories where files are expected. Every file
//! operation orch makes in a task directory (reading an artifact for its gate
//! or its digest, clearing a stale one, writing a runner's, creating an
//! attempt's log) goes through this module:
//!
//! - a path is resolved from the task directory one component at a time with
//!   `openat(O_DIRECTORY | O_NOFOLLOW)`, so no symbolic link is followed in
//!   any component, and nothing outside the task directory is ever reached
//!   (`..`, absolute paths and empty paths are refused);
//! - only a regular file is read: it is looked at (`fstatat`, not following
//!   links) before it is opened, opened `O_NONBLOCK | O_NOFOLLOW` (so a named
//!   pipe can never block orch), and checked again with `fstat` on the opened
//!   descriptor before a byte is read;
//! - files are created `O_CREAT | O_EXCL | O_NOFOLLOW` after whatever was at
//!   their name is removed, and removal is `unlinkat` relative to the
//!   parent's descriptor (a directory is removed recursively, each entry
//!   relative to its own directory's descriptor, never through a link).

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Component, Path, PathBuf};

use nix::dir::Dir;
use nix::errno::Errno;
use nix::fcntl::{openat, renameat, AtFlags, OFlag};
use nix::sys::stat::{fstat, fstatat, mkdirat, FileStat, Mode, SFlag};
use nix::unistd::{unlinkat, UnlinkatFlags};

/// How deep a directory orch removes may be (a producer could nest one
/// deeper than any stack).
const MAX_DEPTH: usize = 64;

/// Why a path beneath the task directory could not be read, written or
/// removed. [`Error::describe`] completes a sentence that starts with the
/// path: "artifact report.md is a symbolic link".
#[derive(Debug)]
pub(crate) enum Error {
    /// Nothing is there (or a directory on the way is missing).
    Missing,
    /// Something is there that orch does not read or write through: a
    /// symbolic link, a named pipe, a socket, a device.
    Refused(String),
    /// The operating system said no.
    Io(std::io::Error),
}

impl Error {
    pub(crate) fn describe(&self) -> String {
        match self {
            Error::Missing => "is missing".to_string(),
            Error::Refused(why) => why.clone(),
            Error::Io(e) => format!("is unreadable: {e}"),
        }
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Missing => f.write_str("it is missing"),
            Error::Refused(why) => write!(f, "it {why}"),
            Error::Io(e) => write!(f, "{e}"),
        }
    }
}

fn io(e: Errno) -> Error {
    Error::Io(std::io::Error::from(e))
}

/// What an entry is, in words ("a named pipe (FIFO)").
fn kind_of(st: &FileStat) -> &'static str {
    match SFlag::from_bits_truncate(st.st_mode & SFlag::S_IFMT.bits()) {
        SFlag::S_IFREG => "a regular file",
        SFlag::S_IFDIR => "a directory",
        SFlag::S_IFLNK => "a symbolic link",
        SFlag::S_IFIFO => "a named pipe (FIFO)",
        SFlag::S_IFSOCK => "a socket",
        SFlag::S_IFCHR => "a character device",
        SFlag::S_IFBLK => "a block device",
        _ => "not a regular file",
    }
}

fn is(st: &FileStat, kind: SFlag) -> bool {
    st.st_mode & SFlag::S_IFMT.bits() == kind.bits()
}

/// Only a regular file is an artifact. A directory keeps the operating
/// system's own words (`Is a directory`), as reading one always said.
fn regular(st: &FileStat) -> Result<(), Error> {
    if is(st, SFlag::S_IFREG) {
        Ok(())
    } else if is(st, SFlag::S_IFDIR) {
        Err(io(Errno::EISDIR))
    } else if is(st, SFlag::S_IFLNK) {
        Err(Error::Refused("is a symbolic link".into()))
    } else {
        Err(Error::Refused(format!(
            "is not a regular file: it is {}",
            kind_of(st)
        )))
    }
}

/// What to do with the directories on the way to a path.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Parents {
    /// They must exist, as real directories.
    Existing,
    /// Missing ones are created; anything else in their place is refused.
    Create,
    /// Missing ones are created; anything else in their place (a link, a
    /// file, a pipe) is removed first (never followed).
    Replace,
}

/// A task directory. The directory itself is opened without following a
/// link in its last component; the directories above it are the user's.
#[derive(Debug, Clone, Copy)]
pub(crate) struct TaskDir<'a> {
    root: &'a Path,
}

impl<'a> TaskDir<'a> {
    pub(crate) fn new(root: &'a Path) -> Self {
        TaskDir { root }
    }

    /// `rel` beneath the task directory, for messages.
    pub(crate) fn show(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }

    fn open_root(&self) -> Result<OwnedFd, Error> {
        std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(
                (OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC)
                    .bits(),
            )
            .open(self.root)
            .map(OwnedFd::from)
            .map_err(|e| match e.raw_os_error().map(Errno::from_raw) {
                Some(Errno::ENOENT) => Error::Missing,
                Some(Errno::ELOOP | Errno::ENOTDIR) => Error::Refused(format!(
                    "is in a task directory {} that is not a real directory",
                    self.root.display()
                )),
                _ => Error::Io(e),
            })
    }

    /// The directory holding `rel` (opened) and `rel`'s last component.
    fn parent(&self, rel: &str, parents: Parents) -> Result<(OwnedFd, OsString), Error> {
        let mut names = Vec::new();
        for c in Path::new(rel).components() {
            match c {
                Component::Normal(n) => names.push(n),
                Component::CurDir => {}
                _ => {
                    return Err(Error::Refused(
                        "is not a path beneath the task directory".into(),
                    ))
                }
            }
        }
        let Some((name, dirs)) = names.split_last() else {
            return Err(Error::Refused("is an empty path".into()));
        };
        let mut dir = self.open_root()?;
        let mut walked = PathBuf::new();
        for d in dirs {
            walked.push(d);
            dir = step(&dir, d, &walked, parents)?;
        }
        Ok((dir, name.to_os_string()))
    }

    /// The bytes of the regular file `rel`.
    pub(crate) fn read(&self, rel: &str) -> Result<Vec<u8>, Error> {
        let mut bytes = Vec::new();
        self.open_regular(rel)?
            .read_to_end(&mut bytes)
            .map_err(Error::Io)?;
        Ok(bytes)
    }

    /// At most the first `cap` bytes of the regular file `rel`, and the
    /// file's size: no more than `cap` bytes are ever held, however large
    /// the file.
    pub(crate) fn read_at_most(&self, rel: &str, cap: usize) -> Result<(Vec<u8>, u64), Error> {
        let file = self.open_regular(rel)?;
        let size = file.metadata().map_err(Error::Io)?.len();
        let mut bytes = Vec::with_capacity(cap.min(size as usize));
        file.take(cap as u64)
            .read_to_end(&mut bytes)
            .map_err(Error::Io)?;
        Ok((bytes, size))
    }

    /// The regular file `rel`, opened for reading.
    fn open_regular(&self, rel: &str) -> Result<File, Error> {
        let (dir, name) = self.parent(rel, Parents::Existing)?;
        // Looked at before it is opened: opening a device can do things.
        let st =
            fstatat(&dir, name.as_os_str(), AtFlags::AT_SYMLINK_NOFOLLOW).map_err(|e| match e {
                Errno::ENOENT => Error::Missing,
                e => io(e),
            })?;
        regular(&st)?;
        let fd = openat(
            &dir,
            name.as_os_str(),
            OFlag::O_RDONLY
                | OFlag::O_NOFOLLOW
                | OFlag::O_NONBLOCK
                | OFlag::O_NOCTTY
                | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| match e {
            Errno::ENOENT => Error::Missing,
            Errno::ELOOP => Error::Refused("is a symbolic link".into()),
            e => io(e),
        })?;
        // What was opened is what is read: it may have been swapped since.
        regular(&fstat(&fd).map_err(io)?)?;
        Ok(File::from(fd))
    }

    /// Writes `body` to `rel` through a temporary file (`NAME.orch-tmp`,
    /// the name's extension replaced) and a rename, so a reader never sees
    /// half of it. Missing directories on the way are created.
    pub(crate) fn write(&self, rel: &str, body: &[u8]) -> Result<(), Error> {
        let (dir, name) = self.parent(rel, Parents::Create)?;
        let tmp = Path::new(&name).with_extension("orch-tmp").into_os_string();
        remove(dir.as_fd(), &tmp, 0)?;
        let fd = create_excl(&dir, &tmp)?;
        File::from(fd).write_all(body).map_err(Error::Io)?;
        renameat(&dir, tmp.as_os_str(), &dir, name.as_os_str()).map_err(io)
    }

    /// Creates `rel` empty (an attempt's log), replacing whatever file, link,
    /// pipe or socket was there. A directory in its place is an error, as it
    /// always was. Missing directories on the way are created.
    pub(crate) fn create(&self, rel: &str) -> Result<File, Error> {
        let (dir, name) = self.parent(rel, Parents::Create)?;
        match fstatat(&dir, name.as_os_str(), AtFlags::AT_SYMLINK_NOFOLLOW) {
            Err(Errno::ENOENT) => {}
            Err(e) => return Err(io(e)),
            Ok(st) if is(&st, SFlag::S_IFDIR) => return Err(io(Errno::EISDIR)),
            Ok(_) => match unlinkat(&dir, name.as_os_str(), UnlinkatFlags::NoRemoveDir) {
                Ok(()) | Err(Errno::ENOENT) => {}
                Err(e) => return Err(io(e)),
            },
        }
        create_excl(&dir, &name).map(File::from)
    }

    /// Removes whatever occupies `rel` (a real directory recursively, never
    /// through a link) and makes sure the directories on the way are real
    /// ones, so that a producer can write `rel`.
    pub(crate) fn clear(&self, rel: &str) -> Result<(), Error> {
        let (dir, name) = self.parent(rel, Parents::Replace)?;
        remove(dir.as_fd(), &name, 0)
    }
}

fn open_dir(dir: impl AsFd, name: &OsStr) -> Result<OwnedFd, Errno> {
    openat(
        dir,
        name,
        OFlag::O_RDONLY
            | OFlag::O_DIRECTORY
            | OFlag::O_NOFOLLOW
            | OFlag::O_NONBLOCK
            | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
}

/// A new file, never through a link: `O_EXCL` fails on anything already at
/// the name, a dangling link included.
fn create_excl(dir: &OwnedFd, name: &OsStr) -> Result<OwnedFd, Error> {
    openat(
        dir,
        name,
        OFlag::O_WRONLY
            | OFlag::O_CREAT
            | OFlag::O_EXCL
            | OFlag::O_NOFOLLOW
            | OFlag::O_NONBLOCK
            | OFlag::O_CLOEXEC,
        Mode::from_bits_truncate(0o644),
    )
    .map_err(io)
}

/// The directory `name` in `dir`, one step of a walk.
fn step(dir: &OwnedFd, name: &OsStr, walked: &Path, parents: Parents) -> Result<OwnedFd, Error> {
    // Three tries: remove what is in the way, create, open.
    for _ in 0..3 {
        match open_dir(dir, name) {
            Ok(fd) => return Ok(fd),
            Err(Errno::ENOENT) if parents == Parents::Existing => return Err(Error::Missing),
            Err(Errno::ENOENT) => match mkdirat(dir, name, Mode::from_bits_truncate(0o755)) {
                Ok(()) | Err(Errno::EEXIST) => {}
                Err(e) => return Err(io(e)),
            },
            Err(Errno::ELOOP | Errno::ENOTDIR) => {
                let st = match fstatat(dir, name, AtFlags::AT_SYMLINK_NOFOLLOW) {
                    Ok(st) => st,
                    Err(Errno::ENOENT) => continue,
                    Err(e) => return Err(io(e)),
                };
                if is(&st, SFlag::S_IFDIR) {
                    continue;
                }
                if parents != Parents::Replace {
                    return Err(Error::Refused(format!(
                        "is beneath `{}`, which is {}, not a directory",
                        walked.display(),
                        kind_of(&st)
                    )));
                }
                match unlinkat(dir, name, UnlinkatFlags::NoRemoveDir) {
                    Ok(()) | Err(Errno::ENOENT) => {}
                    Err(e) => return Err(io(e)),
                }
            }
            Err(e) => return Err(io(e)),
        }
    }
    Err(Error::Refused(format!(
        "is beneath `{}`, which keeps changing",
        walked.display()
    )))
}

/// Removes `name` from `dir` if anything is there: a real directory with
/// everything in it, anything else (a link included) as an entry.
fn remove(dir: BorrowedFd<'_>, name: &OsStr, depth: usize) -> Result<(), Error> {
    let st = match fstatat(dir, name, AtFlags::AT_SYMLINK_NOFOLLOW) {
        Ok(st) => st,
        Err(Errno::ENOENT) => return Ok(()),
        Err(e) => return Err(io(e)),
    };
    if is(&st, SFlag::S_IFDIR) {
        if depth >= MAX_DEPTH {
            return Err(Error::Refused(format!(
                "holds directories nested more than {MAX_DEPTH} deep"
            )));
        }
        match open_dir(dir, name) {
            Ok(fd) => {
                let mut d = Dir::from_fd(fd).map_err(io)?;
                let mut entries = Vec::new();
                for entry in d.iter() {
                    let entry = entry.map_err(io)?;
                    let n = entry.file_name().to_bytes();
                    if n != b"." && n != b".." {
                        entries.push(OsStr::from_bytes(n).to_os_string());
                    }
                }
                for entry in &entries {
                    remove(d.as_fd(), entry, depth + 1)?;
                }
            }
            // Swapped for something else since: removed as an entry below.
            Err(Errno::ENOENT) => return Ok(()),
            Err(Errno::ELOOP | Errno::ENOTDIR) => {}
            Err(e) => return Err(io(e)),
        }
        match unlinkat(dir, name, UnlinkatFlags::RemoveDir) {
            Ok(()) | Err(Errno::ENOENT) => return Ok(()),
            Err(Errno::ENOTDIR) => {}
            Err(e) => return Err(io(e)),
        }
    }
    match unlinkat(dir, name, UnlinkatFlags::NoRemoveDir) {
        Ok(()) | Err(Errno::ENOENT) => Ok(()),
        Err(e) => Err(io(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    struct Scratch {
        root: PathBuf,
    }

    impl Scratch {
        fn new(name: &str) -> Scratch {
            let root = std::env::temp_dir()
                .join(format!("orch-taskdir-unit.{}.{name}", std::process::id()));
            let _ = std::fs::remove_dir_all(&root);
            std::fs::create_dir_all(root.join("task")).unwrap();
            std::fs::create_dir_all(root.join("victim/inner")).unwrap();
            std::fs::write(root.join("victim/file"), "result: PASS\n").unwrap();
            std::fs::write(root.join("victim/inner/deep"), "keep").unwrap();
            Scratch { root }
        }

        fn task(&self) -> PathBuf {
            self.root.join("task")
        }

        fn victim(&self) -> PathBuf {
            self.root.join("victim")
        }

        fn victim_intact(&self) {
            assert_eq!(
                std::fs::read_to_string(self.victim().join("file")).unwrap(),
                "result: PASS\n"
            );
            assert_eq!(
                std::fs::read_to_string(self.victim().join("inner/deep")).unwrap(),
                "keep"
            );
            let mut names: Vec<_> = std::fs::read_dir(self.victim())
                .unwrap()
                .map(|e| e.unwrap().file_name())
                .collect();
            names.sort();
            assert_eq!(names, ["file", "inner"]);
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.root);
        }
    }

    #[test]
    fn reads_only_regular_files_without_following_links() {
        let s = Scratch::new("read");
        let task = s.task();
        let t = TaskDir::new(&task);
        std::fs::write(s.task().join("ok.md"), "result: PASS\n").unwrap();
        assert_eq!(t.read("ok.md").unwrap(), b"result: PASS\n");
        assert!(matches!(t.read("none.md"), Err(Error::Missing)));
        assert!(matches!(t.read("no/none.md"), Err(Error::Missing)));

        symlink(s.victim().join("file"), s.task().join("link.md")).unwrap();
        assert_eq!(
            t.read("link.md").unwrap_err().describe(),
            "is a symbolic link"
        );
        symlink(s.victim(), s.task().join("up")).unwrap();
        assert_eq!(
            t.read("up/file").unwrap_err().describe(),
            "is beneath `up`, which is a symbolic link, not a directory"
        );
        nix::unistd::mkfifo(&s.task().join("fifo.md"), Mode::from_bits_truncate(0o644)).unwrap();
        assert_eq!(
            t.read("fifo.md").unwrap_err().describe(),
            "is not a regular file: it is a named pipe (FIFO)"
        );
        std::fs::create_dir(s.task().join("dir.md")).unwrap();
        assert_eq!(
            t.read("dir.md").unwrap_err().describe(),
            "is unreadable: Is a directory (os error 21)"
        );
        assert!(matches!(t.read("../victim/file"), Err(Error::Refused(_))));
        assert!(matches!(t.read("/etc/passwd"), Err(Error::Refused(_))));
        s.victim_intact();
    }

    #[test]
    fn clears_and_writes_without_following_links() {
        let s = Scratch::new("write");
        let task = s.task();
        let t = TaskDir::new(&task);
        // A symbolic link in place of the artifact's directory, and of the
        // temporary file: removed, never followed.
        symlink(s.victim(), s.task().join("sub")).unwrap();
        t.clear("sub/file").unwrap();
        assert!(s.task().join("sub").is_dir());
        assert!(!s.task().join("sub").is_symlink());
        symlink(s.victim().join("file"), s.task().join("sub/r.orch-tmp")).unwrap();
        symlink(s.victim().join("file"), s.task().join("sub/r.md")).unwrap();
        t.write("sub/r.md", b"result: FAIL\n").unwrap();
        assert_eq!(t.read("sub/r.md").unwrap(), b"result: FAIL\n");
        // A directory in place of the artifact, holding links: removed, the
        // links as links.
        std::fs::create_dir_all(s.task().join("d.md/x")).unwrap();
        symlink(s.victim(), s.task().join("d.md/x/v")).unwrap();
        symlink(s.victim().join("file"), s.task().join("d.md/f")).unwrap();
        t.clear("d.md").unwrap();
        assert!(!s.task().join("d.md").exists());
        // A link in place of the log: replaced.
        std::fs::create_dir(s.task().join("logs")).unwrap();
        symlink(s.victim().join("file"), s.task().join("logs/a.1.log")).unwrap();
        let mut log = t.create("logs/a.1.log").unwrap();
        log.write_all(b"output").unwrap();
        assert_eq!(t.read("logs/a.1.log").unwrap(), b"output");
        // A link in place of the logs directory: refused.
        std::fs::remove_dir_all(s.task().join("logs")).unwrap();
        symlink(s.victim(), s.task().join("logs")).unwrap();
        assert!(t.create("logs/a.2.log").is_err());
        s.victim_intact();
    }
}
