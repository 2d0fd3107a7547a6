//! The evaluation report: what `tessera eval` prints, as JSON or as a markdown table.
//!
//! JSON shape (stable; tools read it):
//! `{"judge": {"dataset", "heldout_accuracy", ...}, "models": [{"name", "generator", "params",
//! "steps", "class_accuracy", "fid", "precision", "recall", "distinct", "images_per_s",
//! "train_seconds", ...}], "sanity": [...]}`.

use serde::{Deserialize, Serialize};

use crate::Quality;

/// The judge the numbers were measured with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JudgeRow {
    /// Dataset it judges (`"mnist"`).
    pub dataset: String,
    /// Its accuracy on the held-out split.
    pub heldout_accuracy: f64,
    /// Held-out images it was measured on.
    pub heldout_images: usize,
}

/// One shipped model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelRow {
    /// Name of the model (`"var-tiny"`).
    pub name: String,
    /// Method (`"var"`).
    pub generator: String,
    /// Generator parameters (tokenizer not counted).
    pub params: usize,
    /// Forward passes per image.
    pub steps: usize,
    /// Sampler settings the row was measured with, in words.
    pub sampler: String,
    /// Images generated and judged.
    pub images: usize,
    /// Share the judge assigns to the asked class.
    pub class_accuracy: f64,
    /// FID to the held-out real images, judge feature space.
    pub fid: f64,
    /// k-NN precision.
    pub precision: f64,
    /// k-NN recall.
    pub recall: f64,
    /// Share of samples that are not near-copies.
    pub distinct: f64,
    /// Sampling throughput at batch 64 on `device`.
    pub images_per_s: f64,
    /// Where it was measured.
    pub device: String,
    /// Wall time of the training runs (tokenizer + generator), from the checkpoints; `null` when
    /// a checkpoint does not record it.
    pub train_seconds: Option<f64>,
}

impl ModelRow {
    /// A row from a measurement and the model's facts.
    #[allow(clippy::too_many_arguments)]
    pub fn new(name: &str, generator: &str, params: usize, steps: usize, sampler: String, quality: &Quality, images_per_s: f64, device: String, train_seconds: Option<f64>) -> Self {
        Self {
            name: name.to_string(),
            generator: generator.to_string(),
            params,
            steps,
            sampler,
            images: quality.images,
            class_accuracy: quality.class_accuracy,
            fid: quality.fid,
            precision: quality.precision,
            recall: quality.recall,
            distinct: quality.distinct,
            images_per_s,
            device,
            train_seconds,
        }
    }
}

/// A reference row: real images against real images (the floor) or noise (the ceiling).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SanityRow {
    /// What was compared.
    pub name: String,
    /// The measurement.
    #[serde(flatten)]
    pub quality: Quality,
}

/// Everything `tessera eval` measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// The judge.
    pub judge: JudgeRow,
    /// One row per shipped model.
    pub models: Vec<ModelRow>,
    /// Floor and ceiling.
    pub sanity: Vec<SanityRow>,
}

impl Report {
    /// The report as markdown tables (what the README and BENCHMARKS.md show).
    pub fn to_markdown(&self) -> String {
        let mut out = format!(
            "Judge ({}): held-out accuracy {:.2}% on {} images.\n\n",
            self.judge.dataset,
            self.judge.heldout_accuracy * 100.0,
            self.judge.heldout_images
        );
        out.push_str("| model | generator | params | steps | sampler | images | class acc. | FID | precision | recall | distinct | images/s (batch 64) | device | training |\n");
        out.push_str("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n");
        for m in &self.models {
            let train = m.train_seconds.map_or("n/a".to_string(), |s| format!("{:.1} min", s / 60.0));
            out.push_str(&format!(
                "| {} | {} | {:.2} M | {} | {} | {} | {:.1}% | {:.2} | {:.3} | {:.3} | {:.3} | {:.1} | {} | {} |\n",
                m.name,
                m.generator,
                m.params as f64 / 1e6,
                m.steps,
                m.sampler,
                m.images,
                m.class_accuracy * 100.0,
                m.fid,
                m.precision,
                m.recall,
                m.distinct,
                m.images_per_s,
                m.device,
                train
            ));
        }
        if self.sanity.is_empty() {
            return out;
        }
        out.push_str("\n| sanity row | images | class acc. | FID | precision | recall | distinct |\n|---|---|---|---|---|---|---|\n");
        for s in &self.sanity {
            let q = &s.quality;
            out.push_str(&format!(
                "| {} | {} | {:.1}% | {:.2} | {:.3} | {:.3} | {:.3} |\n",
                s.name,
                q.images,
                q.class_accuracy * 100.0,
                q.fid,
                q.precision,
                q.recall,
                q.distinct
            ));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_has_the_documented_fields_and_markdown_one_line_per_row() {
        let q = Quality { images: 10, class_accuracy: 0.9, fid: 1.5, precision: 0.8, recall: 0.7, distinct: 1.0 };
        let report = Report {
            judge: JudgeRow { dataset: "mnist".into(), heldout_accuracy: 0.99, heldout_images: 1000 },
            models: vec![ModelRow::new("var-tiny", "var", 1_000_000, 7, "guidance 2".into(), &q, 12.5, "cpu".into(), Some(120.0))],
            sanity: vec![SanityRow { name: "noise".into(), quality: q.clone() }],
        };
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(json["judge"]["heldout_accuracy"], 0.99);
        for field in ["generator", "params", "steps", "class_accuracy", "fid", "precision", "recall", "images_per_s", "train_seconds"] {
            assert!(json["models"][0].get(field).is_some(), "models[0].{field} missing");
        }
        assert_eq!(json["sanity"][0]["fid"], 1.5, "sanity rows are flat");
        let md = report.to_markdown();
        assert!(md.contains("| var-tiny | var | 1.00 M | 7 |"), "{md}");
        assert!(md.contains("| noise | 10 | 90.0% |"), "{md}");
    }
}
