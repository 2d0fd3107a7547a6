//! The Train panel's view of a running job: its status and pace, the curves, the codebook usage
//! and the fixed-seed sample strip.

use egui::{ColorImage, TextureOptions, vec2};

use crate::app::training::{TrainJob, TrainStatus};
use super::curves::curves_ui;
use super::{TrainPanel, minutes, training_status_text};

/// Side of an image of the sample strip, in points.
const STRIP_IMAGE: f32 = 56.0;

impl TrainPanel {
    /// The job's status, pace, curves, codebook usage and sample strip.
    pub(super) fn progress_ui(&mut self, ui: &mut egui::Ui, job: &TrainJob) {
        let total = self.tokenizer_steps + self.transformer_steps;
        let left = job.seconds_left(total);
        let p = job.progress().clone();
        let status = training_status_text(&p.status);
        ui.horizontal_wrapped(|ui| {
            if p.status == TrainStatus::Running {
                ui.spinner();
            }
            ui.label(format!("{status}: {} step {} of {}", p.phase.label(), p.step, p.steps_total));
            if p.seconds_per_step > 0.0 {
                ui.weak(format!("{:.2} s per step", p.seconds_per_step));
            }
            if let Some(left) = left.filter(|_| matches!(p.status, TrainStatus::Running | TrainStatus::Paused)) {
                ui.weak(format!("about {} left", minutes(left)));
            }
            ui.weak(format!("{} elapsed", minutes(p.elapsed_s)));
        });
        if let TrainStatus::Failed(e) = &p.status {
            ui.colored_label(ui.visuals().error_fg_color, format!("Training stopped: {e}. The last checkpoint below is kept."));
        }
        curves_ui(ui, &p);
        match p.codebook_usage.as_slice() {
            [] => {}
            // RAR's VQGAN: one codebook.
            [u] => {
                ui.horizontal(|ui| {
                    ui.label("codebook usage:");
                    ui.add(egui::ProgressBar::new(*u).desired_width(96.0).text(format!("{:.0}%", u * 100.0)));
                });
            }
            // VAR's tokenizer: one figure per scale.
            usage => {
                ui.horizontal(|ui| {
                    ui.label("codebook usage per scale:");
                    for (i, u) in usage.iter().enumerate() {
                        ui.add(egui::ProgressBar::new(*u).desired_width(48.0).text(format!("{}: {:.0}%", i + 1, u * 100.0)));
                    }
                });
            }
        }
        if !p.samples.is_empty() {
            if self.strip_key != (self.serial, p.samples_step) {
                self.strip_key = (self.serial, p.samples_step);
                self.strip = p
                    .samples
                    .iter()
                    .enumerate()
                    .map(|(i, image)| {
                        let rgb = image.to_rgb8();
                        let color = ColorImage::from_rgb([rgb.width() as usize, rgb.height() as usize], rgb.as_raw());
                        ui.ctx().load_texture(format!("train-strip-{i}"), color, TextureOptions::NEAREST)
                    })
                    .collect();
            }
            ui.label(format!("samples at transformer step {} (one per class, same seed each time)", p.samples_step));
            ui.horizontal_wrapped(|ui| {
                for texture in &self.strip {
                    ui.add(egui::Image::new(texture).fit_to_exact_size(vec2(STRIP_IMAGE, STRIP_IMAGE)));
                }
            });
        }
    }
}
