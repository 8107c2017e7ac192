//! What the processes a job starts cannot read of the daemon.
//!
//! They run as the daemon's user, so without more they could read
//! `/proc/<daemon>/environ` (the environment the daemon was started with:
//! systemd's `EnvironmentFile=` puts the secrets there), its memory
//! (`/proc/<daemon>/mem`, ptrace) and its open files. The daemon therefore
//! (1) makes itself non-dumpable at once, which gives its `/proc` entries
//! to root and refuses ptrace to its own user, and (2) once the
//! configuration holds the secrets, removes them from its environment, so
//! that no later reader of the environment (a library, a child started by
//! anything but `pipeline::child_env`) finds them.
//!
//! What stays open to a child is listed in docs/deploy.md ("Security notes"):
//! it runs as the same user, with the same network and files.

use std::io;

/// Variables that hold secrets: removed from the environment once read.
const SECRET_VARIABLES: &[&str] = &["DATABASE_URL", "SUPABASE_SERVICE_ROLE_KEY"];

/// Makes this process non-dumpable: its `/proc/<pid>/` entries (environ,
/// mem, maps, fd, …) belong to root from now on and ptrace by its own user
/// is refused, while it reads its own entries as before. Programs it starts
/// are dumpable again from their exec, so the daemon still reads theirs
/// (the process marks of process_tree.rs). It also means no core dumps.
pub fn protect_process() -> io::Result<()> {
    // SAFETY: prctl with integer arguments; it touches no memory of ours.
    if unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Removes the secret variables from this process's environment, once
/// the configuration has read them.
///
/// Call it before any thread starts (main, before the runtime is built):
/// changing the environment while another thread reads it is undefined
/// behaviour in libc. `/proc/<pid>/environ` keeps showing the environment
/// the process started with whatever this does: [`protect_process`] is
/// what hides that.
pub fn forget_secret_variables() {
    for var in SECRET_VARIABLES {
        std::env::remove_var(var);
    }
}
