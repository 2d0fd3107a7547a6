//! The desktop binary: with no arguments it opens the app window, with a subcommand it works
//! headless (`tessera --help`). The browser build starts from `lib.rs` instead.

#[cfg(not(target_arch = "wasm32"))]
fn main() -> std::process::ExitCode {
    keep_freed_memory();
    tessera::cli::main()
}

/// burn's CPU backend allocates a fresh buffer for nearly every op, many over glibc's 128 KiB
/// mmap threshold: each is then mapped, page-faulted in zeroed and unmapped again, which cost
/// about a fifth of a RAR training step (`perf`: page faults, page clearing, memset;
/// BENCHMARKS.md). Serving them from the heap and keeping up to 1 GiB of freed memory for
/// reuse removes that.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn keep_freed_memory() {
    // SAFETY: `mallopt` only sets allocator parameters; called before any other thread exists.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 256 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 1 << 30);
        libc::mallopt(libc::M_TOP_PAD, 64 << 20);
    }
}

#[cfg(all(not(target_arch = "wasm32"), not(all(target_os = "linux", target_env = "gnu"))))]
fn keep_freed_memory() {}

#[cfg(target_arch = "wasm32")]
fn main() {}
