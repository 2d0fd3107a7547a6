//! Tessera: train small autoregressive image generators and watch them generate, step by step,
//! on your own GPU. One crate builds the desktop program (`src/main.rs`) and the browser app
//! (this library as a `cdylib`, entry in [`web`]).
//!
//! The app is [`app::TesseraApp`]; the headless commands are in `cli` (desktop only).

pub mod app;
#[cfg(not(target_arch = "wasm32"))]
pub mod cli;
pub mod gpu_setup;
pub mod shipped;
#[cfg(target_arch = "wasm32")]
pub(crate) mod web;
