//! Official PyTorch `state_dict`s (as safetensors) loaded into Tessera's modules.
//!
//! Loading is explicit: each model has a `load_official` that walks its own tree and asks a
//! [`StateDict`] for every tensor by its official name (`blocks.0.attn.mat_qkv.weight`,
//! `encoder.down.2.block.1.norm1.weight` …). The module already knows each parameter's shape, so
//! the checkpoint is checked against it, and the PyTorch layouts are converted here in one place:
//!
//! | PyTorch | burn | conversion |
//! |---|---|---|
//! | `Linear.weight` `(out, in)` | `Linear.weight` `[in, out]` | transpose |
//! | `Conv2d.weight` `(out, in, kh, kw)` | same | none |
//! | `GroupNorm.weight` / `.bias` | `gamma` / `beta` | rename |
//! | `Embedding.weight` `(num, dim)` | same | none |
//!
//! A missing, mis-shaped or non-f32 tensor is an [`Error`] naming the key; tensors the model never
//! asked for are reported by [`StateDict::finish`]. Nothing here panics on a bad file. Works from
//! bytes, so checkpoints can be fetched in the browser; [`StateDict::from_file`] is native only.

use std::collections::{BTreeMap, BTreeSet};

use burn::module::Param;
use burn::nn::{Embedding, GroupNorm, LayerNorm, Linear, conv::Conv2d};
use burn::prelude::*;
use safetensors::{Dtype, SafeTensors};

use crate::{Error, Result};

/// One tensor's place in the file.
#[derive(Debug, Clone)]
struct Entry {
    dtype: Dtype,
    shape: Vec<usize>,
    start: usize,
    end: usize,
}

/// A parsed safetensors file whose tensors are read by name; remembers which names were read.
#[derive(Debug)]
pub struct StateDict {
    bytes: Vec<u8>,
    entries: BTreeMap<String, Entry>,
    used: BTreeSet<String>,
}

impl StateDict {
    /// Parses a safetensors file held in memory (validates the header and every offset).
    pub fn from_bytes(bytes: Vec<u8>) -> Result<Self> {
        let (header_len, metadata) =
            SafeTensors::read_metadata(&bytes).map_err(|e| Error::Safetensors(e.to_string()))?;
        let data_start = 8 + header_len;
        let entries = metadata
            .tensors()
            .into_iter()
            .map(|(name, info)| {
                let (start, end) = info.data_offsets;
                let entry = Entry {
                    dtype: info.dtype,
                    shape: info.shape.clone(),
                    start: data_start + start,
                    end: data_start + end,
                };
                (name, entry)
            })
            .collect();
        Ok(Self {
            bytes,
            entries,
            used: BTreeSet::new(),
        })
    }

    /// Reads and parses a safetensors file (native only).
    #[cfg(not(target_arch = "wasm32"))]
    pub fn from_file(path: &std::path::Path) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|source| Error::Io {
            path: path.display().to_string(),
            source,
        })?;
        Self::from_bytes(bytes)
    }

    /// Every tensor name in the file, sorted.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.entries.keys().map(String::as_str)
    }

    /// Whether the file holds `key`.
    pub fn contains(&self, key: &str) -> bool {
        self.entries.contains_key(key)
    }

    /// Shape of `key` as stored (PyTorch layout), if present.
    pub fn shape(&self, key: &str) -> Option<&[usize]> {
        self.entries.get(key).map(|e| e.shape.as_slice())
    }

    /// Marks `key` as known but not needed (a buffer such as VAR's `attn_bias_for_masking`).
    pub fn skip(&mut self, key: &str) {
        if self.entries.contains_key(key) {
            self.used.insert(key.to_string());
        }
    }

    /// Ends loading: an error naming the tensors the model never read.
    pub fn finish(&self) -> Result<()> {
        let keys: Vec<String> = self
            .entries
            .keys()
            .filter(|k| !self.used.contains(*k))
            .cloned()
            .collect();
        if keys.is_empty() {
            Ok(())
        } else {
            Err(Error::UnexpectedWeights { keys })
        }
    }

    fn entry(&mut self, key: &str) -> Result<Entry> {
        let entry = self
            .entries
            .get(key)
            .cloned()
            .ok_or_else(|| Error::MissingWeight { key: key.into() })?;
        self.used.insert(key.to_string());
        Ok(entry)
    }

    /// The f32 values of `key` (row-major), after checking its shape when `expected` is given.
    pub fn f32(&mut self, key: &str, expected: Option<&[usize]>) -> Result<(Vec<usize>, Vec<f32>)> {
        let entry = self.entry(key)?;
        check_shape(key, expected, &entry.shape)?;
        if entry.dtype != Dtype::F32 {
            let dtype = format!("{:?}", entry.dtype);
            return Err(Error::WeightDtype {
                key: key.into(),
                dtype,
                expected: "F32",
            });
        }
        // The data is not guaranteed to be 4-byte aligned: decode, do not cast.
        let data = &self.bytes[entry.start..entry.end];
        let values = data
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]));
        Ok((entry.shape, values.collect()))
    }

    /// The integer values of `key` (I64, I32, or U8 / BOOL masks in the file), widened to i64.
    pub fn i64(&mut self, key: &str, expected: Option<&[usize]>) -> Result<(Vec<usize>, Vec<i64>)> {
        let entry = self.entry(key)?;
        check_shape(key, expected, &entry.shape)?;
        let data = &self.bytes[entry.start..entry.end];
        let values = match entry.dtype {
            Dtype::I64 => data
                .chunks_exact(8)
                .map(|b| i64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]))
                .collect(),
            Dtype::I32 => data
                .chunks_exact(4)
                .map(|b| i32::from_le_bytes([b[0], b[1], b[2], b[3]]) as i64)
                .collect(),
            // Masks (0/1) are stored as U8 or BOOL bytes.
            Dtype::U8 | Dtype::BOOL => data.iter().map(|&b| b as i64).collect(),
            other => {
                let dtype = format!("{other:?}");
                return Err(Error::WeightDtype {
                    key: key.into(),
                    dtype,
                    expected: "I64",
                });
            }
        };
        Ok((entry.shape, values))
    }

    /// `key` as a float tensor of exactly `shape`, on `device`.
    pub fn tensor<const D: usize>(
        &mut self,
        key: &str,
        shape: [usize; D],
        device: &Device,
    ) -> Result<Tensor<D>> {
        let (_, values) = self.f32(key, Some(&shape))?;
        Ok(Tensor::from_data(TensorData::new(values, shape), device))
    }

    /// Replaces a parameter by `key`, whose stored shape must equal the parameter's.
    pub fn param<const D: usize>(
        &mut self,
        key: &str,
        param: Param<Tensor<D>>,
    ) -> Result<Param<Tensor<D>>> {
        let shape: [usize; D] = param.lazy_shape().dims();
        let tensor = self.tensor(key, shape, &param.lazy_device())?;
        Ok(Param::from_tensor(tensor))
    }

    /// Loads `{prefix}.weight` `(out, in)` (transposed to burn's `[in, out]`) and `{prefix}.bias`.
    pub fn linear(&mut self, prefix: &str, linear: Linear) -> Result<Linear> {
        let [d_in, d_out] = linear.weight.lazy_shape().dims();
        let device = linear.weight.lazy_device();
        let key = format!("{prefix}.weight");
        let (_, w) = self.f32(&key, Some(&[d_out, d_in]))?;
        let mut t = vec![0.0f32; w.len()];
        for o in 0..d_out {
            for i in 0..d_in {
                t[i * d_out + o] = w[o * d_in + i];
            }
        }
        let weight = Param::from_tensor(Tensor::from_data(
            TensorData::new(t, [d_in, d_out]),
            &device,
        ));
        let bias = match linear.bias {
            Some(b) => Some(self.param(&format!("{prefix}.bias"), b)?),
            None => None,
        };
        Ok(Linear { weight, bias })
    }

    /// Loads `{prefix}.weight` `(out, in, kh, kw)` and `{prefix}.bias` into a conv.
    pub fn conv2d(&mut self, prefix: &str, mut conv: Conv2d) -> Result<Conv2d> {
        conv.weight = self.param(&format!("{prefix}.weight"), conv.weight)?;
        conv.bias = match conv.bias {
            Some(b) => Some(self.param(&format!("{prefix}.bias"), b)?),
            None => None,
        };
        Ok(conv)
    }

    /// Loads `{prefix}.weight` / `{prefix}.bias` into a GroupNorm's `gamma` / `beta`.
    pub fn group_norm(&mut self, prefix: &str, mut norm: GroupNorm) -> Result<GroupNorm> {
        norm.gamma = match norm.gamma {
            Some(g) => Some(self.param(&format!("{prefix}.weight"), g)?),
            None => None,
        };
        norm.beta = match norm.beta {
            Some(b) => Some(self.param(&format!("{prefix}.bias"), b)?),
            None => None,
        };
        Ok(norm)
    }

    /// Loads `{prefix}.weight` / `{prefix}.bias` into a LayerNorm's `gamma` / `beta`.
    pub fn layer_norm(&mut self, prefix: &str, mut norm: LayerNorm) -> Result<LayerNorm> {
        norm.gamma = self.param(&format!("{prefix}.weight"), norm.gamma)?;
        norm.beta = match norm.beta {
            Some(b) => Some(self.param(&format!("{prefix}.bias"), b)?),
            None => None,
        };
        Ok(norm)
    }

    /// Loads `{prefix}.weight` `(num, dim)` into an embedding table.
    pub fn embedding(&mut self, prefix: &str, mut embedding: Embedding) -> Result<Embedding> {
        embedding.weight = self.param(&format!("{prefix}.weight"), embedding.weight)?;
        Ok(embedding)
    }
}

fn check_shape(key: &str, expected: Option<&[usize]>, found: &[usize]) -> Result<()> {
    match expected {
        Some(expected) if expected != found => Err(Error::WeightShape {
            key: key.into(),
            expected: expected.to_vec(),
            found: found.to_vec(),
        }),
        _ => Ok(()),
    }
}

/// Writes f32 tensors as a safetensors file (tests build broken checkpoints with it).
pub fn serialize_f32(tensors: &[(&str, Vec<usize>, Vec<f32>)]) -> Vec<u8> {
    let mut header = serde_json::Map::new();
    let mut offset = 0usize;
    for (name, shape, values) in tensors {
        let end = offset + values.len() * 4;
        header.insert(
            name.to_string(),
            serde_json::json!({ "dtype": "F32", "shape": shape, "data_offsets": [offset, end] }),
        );
        offset = end;
    }
    let mut header =
        serde_json::to_vec(&serde_json::Value::Object(header)).expect("json of plain values");
    while !header.len().is_multiple_of(8) {
        header.push(b' ');
    }
    let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
    bytes.extend_from_slice(&header);
    for (_, _, values) in tensors {
        for v in values {
            bytes.extend_from_slice(&v.to_le_bytes());
        }
    }
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::nn::LinearConfig;

    fn linear_file(weight_shape: Vec<usize>, with_bias: bool, extra: bool) -> StateDict {
        let n: usize = weight_shape.iter().product();
        let mut tensors = vec![(
            "fc.weight",
            weight_shape,
            (0..n).map(|v| v as f32).collect(),
        )];
        if with_bias {
            tensors.push(("fc.bias", vec![3], vec![0.5, 1.5, 2.5]));
        }
        if extra {
            tensors.push(("fc.surprise", vec![1], vec![0.0]));
        }
        StateDict::from_bytes(serialize_f32(&tensors)).unwrap()
    }

    #[test]
    fn linear_weight_is_transposed_from_pytorch_layout() {
        let device = Device::flex();
        let mut sd = linear_file(vec![3, 2], true, false);
        let fc = sd
            .linear("fc", LinearConfig::new(2, 3).init(&device))
            .unwrap();
        sd.finish().unwrap();
        // PyTorch (out=3, in=2) [[0,1],[2,3],[4,5]] -> burn [in=2, out=3] [[0,2,4],[1,3,5]].
        let w = fc.weight.val().try_into_vec_as::<f32>().unwrap();
        assert_eq!(w, vec![0., 2., 4., 1., 3., 5.]);
    }

    #[test]
    fn a_missing_bias_is_an_error_naming_the_key() {
        let device = Device::flex();
        let mut sd = linear_file(vec![3, 2], false, false);
        let err = sd
            .linear("fc", LinearConfig::new(2, 3).init(&device))
            .unwrap_err();
        assert!(
            matches!(&err, Error::MissingWeight { key } if key == "fc.bias"),
            "{err}"
        );
    }

    #[test]
    fn a_wrong_shape_is_an_error_naming_the_key_and_both_shapes() {
        let device = Device::flex();
        let mut sd = linear_file(vec![2, 3], true, false);
        let err = sd
            .linear("fc", LinearConfig::new(2, 3).init(&device))
            .unwrap_err();
        assert!(err.to_string().contains("fc.weight"), "{err}");
        assert!(
            matches!(err, Error::WeightShape { expected, found, .. } if expected == [3, 2] && found == [2, 3])
        );
    }

    #[test]
    fn an_unread_tensor_is_reported_as_unexpected() {
        let device = Device::flex();
        let mut sd = linear_file(vec![3, 2], true, true);
        sd.linear("fc", LinearConfig::new(2, 3).init(&device))
            .unwrap();
        let err = sd.finish().unwrap_err();
        assert!(
            matches!(&err, Error::UnexpectedWeights { keys } if keys == &["fc.surprise"]),
            "{err}"
        );
    }

    #[test]
    fn corrupt_bytes_are_an_error_not_a_panic() {
        assert!(StateDict::from_bytes(vec![1, 2, 3]).is_err());
        let mut bytes = linear_file(vec![3, 2], true, false).bytes;
        bytes.truncate(bytes.len() - 4);
        assert!(matches!(
            StateDict::from_bytes(bytes),
            Err(Error::Safetensors(_))
        ));
    }
}
