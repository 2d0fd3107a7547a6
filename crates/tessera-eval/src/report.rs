//! The evaluation report: what `tessera eval` prints, as JSON or as a markdown table.
//!
//! JSON shape (stable; tools read it):
//! `{"judge": {"dataset", "heldout_accuracy", ...}, "models": [{"name", "generator", "params",
//! "steps", "class_accuracy", "fid", "precision", "recall", "distinct", "images_per_s",
//! "train_seconds", ...}], "sanity": [...]}`, and for models that draw wider images (the column
//! generator) `"wide": [{"name", "width_multiple", "windows"..., "class_accuracy", "fid",
//! "fid_ratio", "position_accuracy", ...}]` (absent when there are none).

use serde::{Deserialize, Serialize};

use crate::Quality;
use crate::wide::WideQuality;

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

/// One shipped model (or one sampler setting of it).
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
    /// Class accuracy, FID, precision, recall, distinct (flat in the JSON).
    #[serde(flatten)]
    pub quality: Quality,
    /// Sampling throughput at batch 64 on `device`.
    pub images_per_s: f64,
    /// Where it was measured.
    pub device: String,
    /// Wall time of the training runs (tokenizer + generator), from the checkpoints; `null` when
    /// a checkpoint does not record it.
    pub train_seconds: Option<f64>,
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

/// One model's images at one width multiple, cut into training-width windows
/// ([`crate::wide`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WideRow {
    /// Name of the model (`"columns-scenes"`).
    pub name: String,
    /// Method (`"equivariant"`).
    pub generator: String,
    /// Sampler settings, in words.
    pub sampler: String,
    /// The windows' measurement (flat in the JSON: `width_multiple`, `wide_images`,
    /// `window_px`, `images` = windows, `class_accuracy`, `fid`, …, `position_accuracy`).
    #[serde(flatten)]
    pub wide: WideQuality,
    /// The windows' FID over the training-width FID of the same model and sampler (its 1× row):
    /// the bar is at most 1.3 at 8×.
    pub fid_ratio: f64,
}

impl WideRow {
    /// Rows for `widths` (as [`crate::measure_widths`] returns them, 1× first), each with its FID
    /// ratio to the 1× row.
    pub fn from_widths(name: &str, generator: &str, sampler: &str, widths: Vec<WideQuality>) -> Vec<WideRow> {
        let base = widths.iter().find(|w| w.width_multiple == 1).map(|w| w.windows.fid);
        widths
            .into_iter()
            .map(|wide| WideRow {
                name: name.into(),
                generator: generator.into(),
                sampler: sampler.into(),
                fid_ratio: base.map_or(f64::NAN, |b| wide.windows.fid / b),
                wide,
            })
            .collect()
    }
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
    /// Wide images of the models that draw them, window by window (empty: none measured).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub wide: Vec<WideRow>,
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
            let (q, train) = (&m.quality, m.train_seconds.map_or("n/a".to_string(), |s| format!("{:.1} min", s / 60.0)));
            out.push_str(&format!(
                "| {} | {} | {:.2} M | {} | {} | {} | {:.1}% | {:.2} | {:.3} | {:.3} | {:.3} | {:.1} | {} | {} |\n",
                m.name,
                m.generator,
                m.params as f64 / 1e6,
                m.steps,
                m.sampler,
                q.images,
                q.class_accuracy * 100.0,
                q.fid,
                q.precision,
                q.recall,
                q.distinct,
                m.images_per_s,
                m.device,
                train
            ));
        }
        out.push_str(&self.wide_markdown());
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

    /// The wide-image table (empty when there are no wide rows).
    fn wide_markdown(&self) -> String {
        let Some(first) = self.wide.first() else {
            return String::new();
        };
        let mut out = format!(
            "\nWide images: each image W times the training width, cut into {} px windows side by side (stride {} px, \
             no overlap), each judged as a training-width image; about as many windows per class at every width \
             (ceil(per class / W) images of each class). FID ratio: the windows' FID over the same model's 1x FID \
             (bar: 8x windows at least 85% right, FID ratio at most 1.3).\n\n",
            first.wide.window_px, first.wide.window_px
        );
        out.push_str("| model | sampler | width | wide images | windows | window class acc. | worst position | last position | FID | FID ratio | precision | recall | distinct |\n");
        out.push_str("|---|---|---|---|---|---|---|---|---|---|---|---|---|\n");
        for r in &self.wide {
            let (w, q) = (&r.wide, &r.wide.windows);
            out.push_str(&format!(
                "| {} | {} | {}x | {} | {} | {:.1}% | {:.1}% | {:.1}% | {:.2} | {:.2} | {:.3} | {:.3} | {:.3} |\n",
                r.name,
                r.sampler,
                w.width_multiple,
                w.wide_images,
                q.images,
                q.class_accuracy * 100.0,
                w.worst_position_accuracy() * 100.0,
                w.position_accuracy.last().copied().unwrap_or(f64::NAN) * 100.0,
                q.fid,
                r.fid_ratio,
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
            models: vec![ModelRow {
                name: "var-tiny".into(),
                generator: "var".into(),
                params: 1_000_000,
                steps: 7,
                sampler: "guidance 2".into(),
                quality: q.clone(),
                images_per_s: 12.5,
                device: "cpu".into(),
                train_seconds: Some(120.0),
            }],
            sanity: vec![SanityRow { name: "noise".into(), quality: q.clone() }],
            wide: Vec::new(),
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
        assert!(json.get("wide").is_none() && !md.contains("Wide images"), "no wide rows, no wide table: {md}");
    }

    #[test]
    fn wide_rows_are_flat_and_read_against_the_training_width() {
        let q = |fid: f64| Quality { images: 20, class_accuracy: 0.9, fid, precision: 0.8, recall: 0.7, distinct: 1.0 };
        let widths = vec![
            WideQuality { width_multiple: 1, wide_images: 20, window_px: 32, windows: q(10.0), position_accuracy: vec![0.9] },
            WideQuality { width_multiple: 4, wide_images: 5, window_px: 32, windows: q(12.0), position_accuracy: vec![1.0, 0.9, 0.8, 0.7] },
        ];
        let wide = WideRow::from_widths("columns-mnist", "equivariant", "cfg 2", widths);
        assert_eq!(wide[1].fid_ratio, 1.2);
        let report = Report {
            judge: JudgeRow { dataset: "mnist".into(), heldout_accuracy: 0.99, heldout_images: 1000 },
            models: Vec::new(),
            sanity: Vec::new(),
            wide,
        };
        let json = serde_json::to_value(&report).unwrap();
        let row = &json["wide"][1];
        for field in ["width_multiple", "wide_images", "window_px", "images", "class_accuracy", "fid", "fid_ratio", "position_accuracy"] {
            assert!(row.get(field).is_some(), "wide[1].{field} missing: {row}");
        }
        let md = report.to_markdown();
        assert!(md.contains("| columns-mnist | cfg 2 | 4x | 5 | 20 | 90.0% | 70.0% | 70.0% | 12.00 | 1.20 |"), "{md}");
        let back: Report = serde_json::from_value(json).unwrap();
        assert_eq!(back, report);
    }
}
