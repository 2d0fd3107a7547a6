//! Reading tensors back to the host without a panic.
//!
//! burn's `into_data_async` may hand back data whose host copy is made on first access, and its
//! accessors (`iter`, `Deref` of the bytes) panic when that copy fails, as it does once the GPU
//! device is lost. A panic ends the browser page (wasm aborts), so the app's and the trainers'
//! readbacks pass their data through [`on_host`]: the copy is made there, and a failure is an
//! error.

use burn::tensor::TensorData;

/// `data` with its bytes read onto the host (later accessors cannot fail), or why they could not be.
pub fn on_host(data: TensorData) -> Result<TensorData, String> {
    data.bytes().read(burn_std::Reader::new()).map_err(|e| format!("reading the tensor back: {e:?}"))?;
    Ok(data)
}
