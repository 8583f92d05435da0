//! Background jobs. Each one waits on its next tick *or* shutdown, and finishes the batch
//! in hand before it stops.

pub mod abc;
pub mod checkpoint;
pub mod delivery;
pub mod retention;
pub mod scheduler;
pub mod sink;
pub mod sync;
pub mod view_admin;

/// Gives the memory the C library's allocator holds free back to the system. SQLite
/// allocates with it (Rust code uses mimalloc), and glibc keeps what a large job freed:
/// after an ABC run of 200 000 companies on SQLite, ~65 MB (`cargo bench --bench abc`).
pub fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free heap pages to the system; it takes glibc's
    // allocator locks itself and touches no memory in use.
    unsafe {
        libc::malloc_trim(0);
    }
}
