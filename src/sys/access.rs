//! Whether another user may read or write a path: `access(2)` asked as that user.
//!
//! Design note: `check-config` runs as root (by hand, or as the unit's `ExecStartPre`, then as
//! the unit's user), but the server runs as its own user, so "root can read the key" says
//! nothing. Rather than re-implement the kernel's rules (mode bits, groups, ACLs, directories
//! on the way), a child process takes on the user's ids and asks the kernel itself: `fork`,
//! `setgroups` + `setresgid` + `setresuid`, then one `access` per path, each result written
//! to a pipe as an errno. The child does nothing but those system calls and `_exit`, all safe
//! after a fork; the paths are made into C strings before it. Called from the command line
//! only, before any thread is started.
#![allow(unsafe_code, reason = "fork, setresuid and access have no safe wrapper in std")]

use std::ffi::CString;
use std::io::{self, Read};
use std::os::fd::FromRawFd;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// Read permission (`R_OK`).
pub(crate) const READ: i32 = libc::R_OK;
/// Write permission (`W_OK`).
pub(crate) const WRITE: i32 = libc::W_OK;
/// Search or execute permission (`X_OK`).
pub(crate) const SEARCH: i32 = libc::X_OK;

/// A user's ids, as the service would run with them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct UserIds {
    /// The user's name.
    pub name: String,
    /// User id.
    pub uid: u32,
    /// Primary group id.
    pub gid: u32,
    /// Every group the user is in, the primary one included.
    pub groups: Vec<u32>,
}

/// Whether this process runs as root (effective uid 0).
pub(crate) fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// Looks a user up in the system's user database (`/etc/passwd`, NSS); `None` if there is none.
pub(crate) fn lookup_user(name: &str) -> io::Result<Option<UserIds>> {
    let c_name = CString::new(name).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    let mut buffer = vec![0u8; 16 * 1024];
    // SAFETY: a zeroed passwd is a valid out-parameter; getpwnam_r fills it with pointers into
    // `buffer`, which outlives every read of them below.
    let mut entry: libc::passwd = unsafe { std::mem::zeroed() };
    let mut found: *mut libc::passwd = std::ptr::null_mut();
    let status = unsafe {
        libc::getpwnam_r(c_name.as_ptr(), &mut entry, buffer.as_mut_ptr().cast(), buffer.len(), &mut found)
    };
    if status != 0 {
        return Err(io::Error::from_raw_os_error(status));
    }
    if found.is_null() {
        return Ok(None);
    }
    let (uid, gid) = (entry.pw_uid, entry.pw_gid);
    let mut groups = vec![0 as libc::gid_t; 64];
    loop {
        let mut count = groups.len() as libc::c_int;
        // SAFETY: `groups` has room for `count` ids; getgrouplist says how many it needs when
        // that is too few, and the loop grows it.
        let result = unsafe { libc::getgrouplist(c_name.as_ptr(), gid, groups.as_mut_ptr(), &mut count) };
        if result >= 0 {
            groups.truncate(usize::try_from(count).unwrap_or(0));
            break;
        }
        if groups.len() >= 65_536 {
            return Err(io::Error::other("the user is in too many groups"));
        }
        groups.resize(usize::try_from(count).unwrap_or(0).max(groups.len() * 2), 0);
    }
    Ok(Some(UserIds { name: name.to_owned(), uid, gid, groups }))
}

/// For each `(path, mode)`, whether `user` (this process, when `None`) may access the path in
/// `mode` (a combination of [`READ`], [`WRITE`], [`SEARCH`]; 0 asks whether it exists):
/// `Ok(())` or the error `access(2)` gave (`NotFound`, `PermissionDenied`, a read-only file
/// system). The outer error is a failure to ask (fork, or switching to the user).
pub(crate) fn access_as(user: Option<&UserIds>, checks: &[(&Path, i32)]) -> io::Result<Vec<io::Result<()>>> {
    let paths = checks
        .iter()
        .map(|(path, _)| CString::new(path.as_os_str().as_bytes()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    let Some(user) = user else {
        let answers = paths.iter().zip(checks).map(|(path, (_, mode))| {
            // SAFETY: `path` is a valid C string for the duration of the call.
            let result = unsafe { libc::access(path.as_ptr(), *mode) };
            if result == 0 { Ok(()) } else { Err(io::Error::last_os_error()) }
        });
        return Ok(answers.collect());
    };
    let groups: Vec<libc::gid_t> = user.groups.clone();
    let mut fds = [0; 2];
    // SAFETY: `fds` has room for the two descriptors pipe2 writes.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let (read_fd, write_fd) = (fds[0], fds[1]);
    // SAFETY: the child runs only async-signal-safe system calls on memory prepared before the
    // fork (the C strings, the group list), then `_exit`s; it never returns into Rust code.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        let error = io::Error::last_os_error();
        // SAFETY: both descriptors are ours and open.
        unsafe {
            libc::close(read_fd);
            libc::close(write_fd);
        }
        return Err(error);
    }
    if pid == 0 {
        // SAFETY: see the fork above; each answer is written as one native-endian i32.
        unsafe {
            libc::close(read_fd);
            let switched = libc::setgroups(groups.len(), groups.as_ptr()) == 0
                && libc::setresgid(user.gid, user.gid, user.gid) == 0
                && libc::setresuid(user.uid, user.uid, user.uid) == 0;
            if !switched {
                libc::_exit(2);
            }
            for (path, (_, mode)) in paths.iter().zip(checks) {
                let errno =
                    if libc::access(path.as_ptr(), *mode) == 0 { 0 } else { *libc::__errno_location() };
                let bytes = errno.to_ne_bytes();
                if libc::write(write_fd, bytes.as_ptr().cast(), bytes.len()) != bytes.len() as isize {
                    libc::_exit(3);
                }
            }
            libc::_exit(0);
        }
    }
    // SAFETY: `write_fd` is ours and open; the read end becomes a File that closes it.
    unsafe { libc::close(write_fd) };
    let mut answers = Vec::new();
    let read = unsafe { std::fs::File::from_raw_fd(read_fd) }.read_to_end(&mut answers);
    let mut status = 0;
    // SAFETY: `pid` is our child; waiting reaps it.
    while unsafe { libc::waitpid(pid, &mut status, 0) } < 0 {
        let error = io::Error::last_os_error();
        if error.kind() != io::ErrorKind::Interrupted {
            return Err(error);
        }
    }
    read?;
    if !libc::WIFEXITED(status) || libc::WEXITSTATUS(status) != 0 || answers.len() != 4 * checks.len() {
        return Err(io::Error::other(format!("could not switch to user {} to check its access", user.name)));
    }
    Ok(answers
        .chunks_exact(4)
        .map(|bytes| match i32::from_ne_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) {
            0 => Ok(()),
            errno => Err(io::Error::from_raw_os_error(errno)),
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn access_as_self_and_as_another_user() {
        let dir = std::env::temp_dir().join(format!("acme-delegate-access-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let secret = dir.join("secret");
        std::fs::write(&secret, "x").unwrap();
        std::fs::set_permissions(&secret, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
        let missing = dir.join("missing");
        let checks = [(secret.as_path(), READ), (missing.as_path(), READ)];
        let mine = access_as(None, &checks).unwrap();
        assert!(mine[0].is_ok());
        assert_eq!(mine[1].as_ref().unwrap_err().kind(), io::ErrorKind::NotFound);
        // As another user: only root may switch; `nobody` may not read a 0600 file of root's.
        if is_root()
            && let Ok(Some(nobody)) = lookup_user("nobody")
        {
            std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
            let theirs = access_as(Some(&nobody), &checks).unwrap();
            assert_eq!(theirs[0].as_ref().unwrap_err().kind(), io::ErrorKind::PermissionDenied);
            assert_eq!(theirs[1].as_ref().unwrap_err().kind(), io::ErrorKind::NotFound);
        }
        assert_eq!(lookup_user("no-such-user-here-surely").unwrap(), None);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
