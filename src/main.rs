//! The desktop binary: with no arguments it opens the app window, with a subcommand it works
//! headless (`tessera --help`). The browser build starts from `lib.rs` instead.

#[cfg(not(target_arch = "wasm32"))]
fn main() -> std::process::ExitCode {
    tessera::cli::main()
}

#[cfg(target_arch = "wasm32")]
fn main() {}
