//! The Train panel's curves: one small chart per metric of each phase, keyed by the trainers'
//! metric names, so a new trainer's metrics show up without changes here.

use egui::{Color32, Pos2, Sense, Stroke, vec2};

use tessera_models::family::Family;

use crate::app::training::{Curves, Phase, TrainProgress};

/// Size of one chart.
const PLOT: egui::Vec2 = vec2(300.0, 120.0);

/// Metrics charted in view (RAR's random-order probability among them); the others (learning
/// rate, gradient norm, ...) fold away.
const MAIN: [&str; 4] = ["loss", "psnr", "accuracy", "random_ratio"];

/// Colours of a phase's charts, in turn.
const COLORS: [Color32; 4] = [Color32::LIGHT_BLUE, Color32::LIGHT_GREEN, Color32::from_rgb(255, 170, 90), Color32::LIGHT_RED];

/// Every curve of every phase that has points: the main metrics in view, the rest folded.
pub(super) fn curves_ui(ui: &mut egui::Ui, progress: &TrainProgress) {
    let phases = [Phase::Tokenizer, Phase::Transformer].map(|phase| (phase, progress.curves(phase)));
    let family = progress.family;
    ui.horizontal_wrapped(|ui| {
        for (phase, curves) in phases {
            charts(ui, family, phase, curves, |name| MAIN.contains(&name));
        }
    });
    if phases.iter().any(|(_, curves)| curves.keys().any(|name| !MAIN.contains(&name.as_str()))) {
        ui.collapsing("more curves", |ui| {
            ui.horizontal_wrapped(|ui| {
                for (phase, curves) in phases {
                    charts(ui, family, phase, curves, |name| !MAIN.contains(&name));
                }
            });
        });
    }
}

/// The charts of `phase`'s curves that `pick` names: `"loss"` first, then by name.
fn charts(ui: &mut egui::Ui, family: Family, phase: Phase, curves: &Curves, pick: impl Fn(&str) -> bool) {
    let loss = curves.get_key_value("loss");
    let rest = curves.iter().filter(|(name, _)| name.as_str() != "loss");
    for (i, (name, points)) in loss.into_iter().chain(rest).filter(|(name, _)| pick(name)).enumerate() {
        plot(ui, &title(family, phase, name), points, COLORS[i % COLORS.len()]);
    }
}

/// `tokenizer loss`, `reconstruction PSNR (dB)`, `transformer loss (nats per token)`, ...
fn title(family: Family, phase: Phase, metric: &str) -> String {
    match (phase, metric) {
        (Phase::Tokenizer, "psnr") => "reconstruction PSNR (dB)".into(),
        // The column generator's head regresses a velocity: no tokens to count nats over.
        (Phase::Transformer, "loss") if family == Family::Columns => "transformer loss (flow matching, squared error)".into(),
        (Phase::Transformer, "vae_norm") => "token scale (measured)".into(),
        (Phase::Transformer, "loss") => "transformer loss (nats per token)".into(),
        (Phase::Transformer, "accuracy") => "transformer token accuracy".into(),
        (Phase::Transformer, "random_ratio") => "random-order probability".into(),
        (phase, metric) => format!("{} {}", phase.label(), metric.replace('_', " ")),
    }
}

/// A small line chart of `(x, y)` points with its last value in the title.
fn plot(ui: &mut egui::Ui, title: &str, points: &[[f64; 2]], color: Color32) {
    ui.vertical(|ui| {
        let last = points.last().map_or_else(String::new, |p| format!(": {:.3}", p[1]));
        ui.weak(format!("{title}{last}"));
        let (response, painter) = ui.allocate_painter(PLOT, Sense::hover());
        let rect = response.rect;
        painter.rect_stroke(rect, 2.0, Stroke::new(1.0, ui.visuals().weak_text_color()), egui::StrokeKind::Inside);
        if points.len() < 2 {
            return;
        }
        let (x0, x1) = (points[0][0], points[points.len() - 1][0].max(points[0][0] + 1.0));
        let (lo, hi) = points.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), p| (lo.min(p[1]), hi.max(p[1])));
        let span = (hi - lo).max(1e-9);
        // At most one point per horizontal pixel.
        let stride = (points.len() / rect.width() as usize).max(1);
        let line: Vec<Pos2> = points
            .iter()
            .step_by(stride)
            .map(|p| {
                let x = rect.left() + ((p[0] - x0) / (x1 - x0)) as f32 * rect.width();
                let y = rect.bottom() - ((p[1] - lo) / span) as f32 * rect.height();
                Pos2::new(x, y)
            })
            .collect();
        painter.add(egui::Shape::line(line, Stroke::new(1.5, color)));
    });
}
