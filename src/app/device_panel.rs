//! The pre-flight panel: which adapter computes, whether it is a software one, what it can do.

use tessera_kernels::device::Compute;

/// `reference_ops`: the setting that swaps the WGSL kernels for plain burn ops;
/// `software_adapter`: the one that keeps work on a software adapter. True when the latter changed.
pub fn ui(ui: &mut egui::Ui, compute: &Compute, reference_ops: &mut bool, software_adapter: &mut bool) -> bool {
    ui.heading("Compute device");
    let mut changed = false;
    let label = "Plain burn ops instead of the WGSL kernels (for comparison; the kernels run on GPU adapters only)";
    if ui.checkbox(reference_ops, label).changed() {
        tessera_kernels::set_reference_ops(*reference_ops);
    }
    if let Some(notice) = &compute.notice {
        ui.colored_label(ui.visuals().warn_fg_color, notice);
    }
    match &compute.adapter {
        Some(report) => {
            if report.is_software {
                ui.colored_label(
                    ui.visuals().warn_fg_color,
                    "This is a software adapter: everything works, but at CPU speed. Training the larger presets needs a real GPU.",
                );
                let label = "Sample and train on this software adapter (slower than the CPU backend; runs the WGSL kernels)";
                // Shows what this page does (a link may have set it), remembers what the user ticks.
                let mut forced = compute.software_adapter_forced();
                if ui.checkbox(&mut forced, label).changed() {
                    compute.set_software_adapter_forced(forced);
                    *software_adapter = forced;
                    changed = true;
                }
                ui.label(match compute.work_device().1 {
                    Some(_) => "Sampling and training run on the CPU backend, which is several times faster than a software adapter.",
                    None => "Sampling and training run on this software adapter, as asked.",
                });
            }
            egui::Grid::new("adapter").striped(true).show(ui, |ui| {
                for line in report.to_string().lines() {
                    let (key, value) = line.split_at(line.find(' ').unwrap_or(line.len()));
                    ui.label(key);
                    ui.label(value.trim());
                    ui.end_row();
                }
            });
        }
        None => {
            ui.label("Computing on the CPU (burn's flex backend). No GPU adapter is in use.");
        }
    }
    changed
}
