//! The training loop: one for every model, used by `tessera train`, the desktop app and the
//! browser.
//!
//! [`train`] takes steps of a [`Trainer`] on a dataset in the run's sample order ([`BatchOrder`],
//! so a resumed run sees the batches the uninterrupted one would have) until the run is done or
//! stopped. Everything around the steps — progress bars, curves, sample grids, where checkpoints
//! go, how to wait — is the caller's, through [`Hooks`]; the UI steers the run through a shared
//! [`Control`].
//!
//! Checkpoints are saved every so many steps or seconds ([`Autosave`]), on Save now, on Stop
//! (before stopping), at the end, and when a step meets a non-finite loss: the trainer is then
//! still at its last good state, which is saved before the error is returned. Every checkpoint
//! records the last step's metrics and [`TRAIN_SECONDS`] (earlier sessions included, pauses not).
//!
//! The loop never blocks: it awaits the steps and the hooks, and calls [`Hooks::idle`] after every
//! step and while paused, where the browser yields to draw a frame.

use std::future::Future;
use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicBool, Ordering};

use tessera_data::Dataset;
use web_time::Instant;

use crate::checkpoint::Checkpoint;
use crate::data::BatchOrder;
use crate::trainer::{Metrics, TRAIN_SECONDS, Trainer};

/// Pause, Stop and Save now, set by the UI (any thread) and read by the loop between steps.
#[derive(Debug, Default)]
pub struct Control {
    pause: AtomicBool,
    stop: AtomicBool,
    save_now: AtomicBool,
}

impl Control {
    /// Pauses after the current step, or resumes.
    pub fn set_paused(&self, paused: bool) {
        self.pause.store(paused, Ordering::Relaxed);
    }

    /// Whether a pause is asked for.
    pub fn is_paused(&self) -> bool {
        self.pause.load(Ordering::Relaxed)
    }

    /// Ends the run after the current step (or from a pause), saving a checkpoint first.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }

    /// Whether a stop is asked for.
    pub fn is_stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    /// Saves a checkpoint after the current step (or at once when paused).
    pub fn save_now(&self) {
        self.save_now.store(true, Ordering::Relaxed);
    }

    fn take_save_now(&self) -> bool {
        self.save_now.swap(false, Ordering::Relaxed)
    }
}

/// When the loop saves by itself (Save now, Stop and a non-finite loss always save).
#[derive(Clone, Debug, PartialEq)]
pub struct Autosave {
    /// After every step whose count is a multiple of this.
    pub every_steps: Option<NonZeroUsize>,
    /// After a step once this many training seconds have passed since the last save.
    pub every_seconds: Option<f64>,
    /// After the last step.
    pub at_end: bool,
}

impl Autosave {
    /// Only after the last step.
    pub fn at_end() -> Self {
        Self { every_steps: None, every_seconds: None, at_end: true }
    }

    /// Never by itself (runs that only time steps).
    pub fn never() -> Self {
        Self { at_end: false, ..Self::at_end() }
    }
}

/// What a run trains on and how it is steered.
pub struct Run<'a> {
    /// The training images (the sample order comes from the trainer's batch size and seed).
    pub dataset: &'a dyn Dataset,
    /// Pause, Stop, Save now.
    pub control: &'a Control,
    /// When to save unasked.
    pub autosave: Autosave,
    /// Training seconds of earlier sessions: a resumed checkpoint's [`crate::trainer::train_seconds`].
    pub train_seconds: f64,
}

/// One step taken, as [`Hooks::on_step`] hears of it.
#[derive(Clone, Copy, Debug)]
pub struct StepDone<'a> {
    /// The step just taken (0-based; the trainer's `step_index` is now one more).
    pub step: usize,
    /// What it measured, `"loss"` first.
    pub metrics: &'a [(&'static str, f64)],
    /// Its wall time in seconds, batch included.
    pub seconds: f64,
    /// The run's training time so far ([`TRAIN_SECONDS`]).
    pub train_seconds: f64,
}

/// How a run ended without an error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ended {
    /// All steps taken.
    Done,
    /// [`Control::stop`] was asked for (a checkpoint was saved first).
    Stopped,
}

/// What [`train`] returns.
#[derive(Clone, Debug, PartialEq)]
pub struct Outcome {
    /// Done or stopped.
    pub ended: Ended,
    /// The last step's metrics (empty when this session took no step).
    pub metrics: Metrics,
    /// The run's training time ([`TRAIN_SECONDS`]).
    pub train_seconds: f64,
}

/// What the caller does around the loop: show progress, keep checkpoints, wait.
pub trait Hooks<T: Trainer> {
    /// The caller's error; the loop's own errors convert into it.
    type Error: From<crate::Error>;

    /// After every step: progress, curves, and the model's own extras (sample grids, codebook
    /// usage), read from `trainer`.
    fn on_step(&mut self, trainer: &T, done: StepDone<'_>) -> impl Future<Output = Result<(), Self::Error>>;

    /// Keeps a checkpoint (a file, the browser's storage, memory).
    fn save(&mut self, checkpoint: Checkpoint) -> impl Future<Output = Result<(), Self::Error>>;

    /// After every step (`paused` false: the browser yields here to draw a frame) and repeatedly
    /// while paused (`paused` true: sleep a little, or yield).
    fn idle(&mut self, paused: bool) -> impl Future<Output = ()>;

    /// The run pauses (`true`) or goes on (`false`).
    fn on_pause(&mut self, _paused: bool) {}

    /// Asked before every step and while paused: an error (the device the run trains on was
    /// lost) ends the run with it, before a step or a save touches the device. Nothing is saved
    /// then: the saved checkpoints are the last good state.
    fn before_step(&mut self) -> Result<(), Self::Error> {
        Ok(())
    }
}

/// Trains `trainer` on `run.dataset` until it is done or stopped; see the module docs.
///
/// # Errors
/// A step's error (after saving the last good state when the loss or gradient was not finite),
/// or a hook's.
pub async fn train<T: Trainer, H: Hooks<T>>(trainer: &mut T, run: Run<'_>, hooks: &mut H) -> Result<Outcome, H::Error> {
    let Run { dataset, control, autosave, train_seconds } = run;
    let order = BatchOrder::new(dataset.len(), trainer.batch_size(), trainer.seed());
    let mut clock = Clock::start(train_seconds);
    let mut metrics = Metrics::new();
    let mut saved_at = clock.seconds();
    while !trainer.is_done() {
        // 1. Pause and stop, asked between steps (Save now still works while paused); a lost
        //    device ends the run first, before a save would read weights from it.
        hooks.before_step()?;
        if control.is_paused() && !control.is_stopped() {
            clock.pause();
            hooks.on_pause(true);
            while control.is_paused() && !control.is_stopped() {
                hooks.before_step()?;
                if control.take_save_now() {
                    save(trainer, &metrics, clock.seconds(), hooks).await?;
                }
                hooks.idle(true).await;
            }
            clock.resume();
            hooks.on_pause(false);
        }
        if control.is_stopped() {
            save(trainer, &metrics, clock.seconds(), hooks).await?;
            return Ok(Outcome { ended: Ended::Stopped, metrics, train_seconds: clock.seconds() });
        }

        // 2. One step; a non-finite loss left the trainer at its last good state: keep that.
        let step = trainer.step_index();
        let started = Instant::now();
        let batch = tessera_data::batch(dataset, &order.indices(step));
        match trainer.step(&batch).await {
            Ok(m) => metrics = m,
            Err(e) => {
                if e.is_non_finite() {
                    save(trainer, &metrics, clock.seconds(), hooks).await?;
                }
                return Err(e.into());
            }
        }
        let seconds = clock.seconds();
        hooks.on_step(trainer, StepDone { step, metrics: &metrics, seconds: started.elapsed().as_secs_f64(), train_seconds: seconds }).await?;

        // 3. Saves.
        let asked = control.take_save_now();
        let due = asked
            || (autosave.at_end && trainer.is_done())
            || autosave.every_steps.is_some_and(|n| trainer.step_index() % n.get() == 0)
            || autosave.every_seconds.is_some_and(|s| seconds - saved_at >= s);
        if due {
            save(trainer, &metrics, seconds, hooks).await?;
            saved_at = seconds;
        }
        hooks.idle(false).await;
    }
    Ok(Outcome { ended: Ended::Done, metrics, train_seconds: clock.seconds() })
}

/// Hands `hooks` the trainer's checkpoint with `metrics` and the training time.
async fn save<T: Trainer, H: Hooks<T>>(trainer: &T, metrics: &[(&'static str, f64)], seconds: f64, hooks: &mut H) -> Result<(), H::Error> {
    let mut recorded: Vec<(&str, f64)> = metrics.to_vec();
    recorded.push((TRAIN_SECONDS, seconds));
    let checkpoint = trainer.checkpoint(&recorded).await?;
    hooks.save(checkpoint).await
}

/// Training time: earlier sessions' plus this one's, pauses left out.
struct Clock {
    before: f64,
    running_since: Option<Instant>,
}

impl Clock {
    fn start(before: f64) -> Self {
        Self { before, running_since: Some(Instant::now()) }
    }

    fn seconds(&self) -> f64 {
        self.before + self.running_since.map_or(0.0, |t| t.elapsed().as_secs_f64())
    }

    fn pause(&mut self) {
        self.before = self.seconds();
        self.running_since = None;
    }

    fn resume(&mut self) {
        self.running_since = Some(Instant::now());
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use burn::prelude::*;
    use pollster::block_on;
    use tessera_data::{Batch, Image, Mnist, Sample};
    use tessera_models::judge::JudgeConfig;

    use super::*;
    use crate::checkpoint::{CheckpointHeader, ModelKind};
    use crate::trainer::train_seconds;
    use crate::{Error, JudgeTrainer, JudgeTrainingConfig, Result};

    /// Four 2x2 images, two classes.
    struct Tiles;

    impl Dataset for Tiles {
        fn name(&self) -> &str {
            "tiles"
        }
        fn len(&self) -> usize {
            4
        }
        fn get(&self, index: usize) -> Sample {
            Sample { image: Image::new(1, 2, 2, vec![index as f32 / 4.0; 4]), label: index % 2 }
        }
        fn class_names(&self) -> &[String] {
            static NAMES: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
            NAMES.get_or_init(|| vec!["a".into(), "b".into()])
        }
        fn channels(&self) -> usize {
            1
        }
        fn height(&self) -> usize {
            2
        }
        fn width(&self) -> usize {
            2
        }
    }

    /// A trainer double: counts steps (each `pause` long), and meets a NaN at step `nan_at`.
    struct Counter {
        step: usize,
        steps: usize,
        nan_at: Option<usize>,
        pause: Duration,
    }

    impl Counter {
        fn new(steps: usize) -> Self {
            Self { step: 0, steps, nan_at: None, pause: Duration::ZERO }
        }
    }

    impl Trainer for Counter {
        fn kind(&self) -> ModelKind {
            ModelKind::Judge
        }
        fn step_index(&self) -> usize {
            self.step
        }
        fn steps(&self) -> usize {
            self.steps
        }
        fn batch_size(&self) -> usize {
            3
        }
        fn seed(&self) -> u64 {
            0
        }
        fn largest_floats_per_image(&self) -> u64 {
            4
        }
        async fn step(&mut self, batch: &Batch) -> Result<Metrics> {
            assert_eq!(batch.shape, [3, 1, 2, 2]);
            std::thread::sleep(self.pause);
            if self.nan_at == Some(self.step) {
                return Err(Error::NonFiniteLoss { step: self.step, value: f32::NAN });
            }
            self.step += 1;
            Ok(vec![("loss", 1.0 / self.step as f64), ("lr", 0.1)])
        }
        async fn checkpoint(&self, metrics: &[(&str, f64)]) -> Result<Checkpoint> {
            let header = CheckpointHeader::of_run(ModelKind::Judge, &(), &(), self.step, metrics);
            Ok(Checkpoint { header, weights: Vec::new(), optimizer: Vec::new(), state: Vec::new() })
        }
    }

    /// Hooks that record what happened; `script` may steer the run after each step.
    struct Recorder {
        control: Arc<Control>,
        script: fn(usize, &Control),
        steps: Vec<usize>,
        saved: Vec<Checkpoint>,
        events: Vec<String>,
        paused_ticks: usize,
    }

    impl Recorder {
        fn new(control: &Arc<Control>, script: fn(usize, &Control)) -> Self {
            Self { control: control.clone(), script, steps: Vec::new(), saved: Vec::new(), events: Vec::new(), paused_ticks: 0 }
        }

        fn saved_steps(&self) -> Vec<usize> {
            self.saved.iter().map(|c| c.header.step).collect()
        }
    }

    impl<T: Trainer> Hooks<T> for Recorder {
        type Error = Error;
        async fn on_step(&mut self, trainer: &T, done: StepDone<'_>) -> Result<()> {
            assert_eq!(trainer.step_index(), done.step + 1);
            assert_eq!(done.metrics[0].0, "loss");
            self.steps.push(done.step);
            self.events.push(format!("step {}", done.step));
            (self.script)(done.step, &self.control);
            Ok(())
        }
        async fn save(&mut self, checkpoint: Checkpoint) -> Result<()> {
            self.events.push(format!("save {}", checkpoint.header.step));
            self.saved.push(checkpoint);
            Ok(())
        }
        async fn idle(&mut self, paused: bool) {
            if paused {
                // Three looks at the flags, a Save now on the first, then the user resumes.
                self.paused_ticks += 1;
                match self.paused_ticks {
                    1 => self.control.save_now(),
                    3 => self.control.set_paused(false),
                    _ => {}
                }
            }
        }
        fn on_pause(&mut self, paused: bool) {
            self.events.push(if paused { "pause" } else { "go on" }.into());
        }
    }

    fn run<'a>(control: &'a Control, autosave: Autosave) -> Run<'a> {
        Run { dataset: &Tiles, control, autosave, train_seconds: 0.0 }
    }

    #[test]
    fn a_run_takes_every_step_and_saves_at_the_end() {
        let control = Arc::new(Control::default());
        let mut hooks = Recorder::new(&control, |_, _| {});
        let outcome = block_on(train(&mut Counter::new(5), run(&control, Autosave::at_end()), &mut hooks)).unwrap();
        assert_eq!(outcome.ended, Ended::Done);
        assert_eq!(hooks.steps, [0, 1, 2, 3, 4]);
        assert_eq!(hooks.saved_steps(), [5]);
        let metrics = &hooks.saved[0].header.metrics;
        assert_eq!((metrics["loss"], metrics["lr"]), (0.2, 0.1), "the last step's metrics are recorded");
        assert!(metrics.contains_key(TRAIN_SECONDS));
    }

    #[test]
    fn stop_saves_the_step_it_stopped_at() {
        let control = Arc::new(Control::default());
        let mut hooks = Recorder::new(&control, |step, control| {
            if step == 2 {
                control.stop();
            }
        });
        let outcome = block_on(train(&mut Counter::new(10), run(&control, Autosave::at_end()), &mut hooks)).unwrap();
        assert_eq!(outcome.ended, Ended::Stopped);
        assert_eq!(hooks.steps, [0, 1, 2]);
        assert_eq!(hooks.saved_steps(), [3], "saved after the third step, where it stopped");

        // Stopped before it began: the start is saved, and no step runs.
        let control = Arc::new(Control::default());
        control.stop();
        let mut hooks = Recorder::new(&control, |_, _| {});
        let outcome = block_on(train(&mut Counter::new(10), run(&control, Autosave::at_end()), &mut hooks)).unwrap();
        assert_eq!((outcome.ended, hooks.steps.len(), hooks.saved_steps()), (Ended::Stopped, 0, vec![0]));
    }

    #[test]
    fn a_non_finite_loss_ends_with_the_error_after_saving_the_last_good_step() {
        let control = Arc::new(Control::default());
        let mut hooks = Recorder::new(&control, |_, _| {});
        let mut trainer = Counter { nan_at: Some(4), ..Counter::new(10) };
        let e = block_on(train(&mut trainer, run(&control, Autosave::at_end()), &mut hooks)).unwrap_err();
        assert!(matches!(e, Error::NonFiniteLoss { step: 4, .. }), "{e}");
        assert_eq!(hooks.steps, [0, 1, 2, 3]);
        assert_eq!(hooks.saved_steps(), [4], "four good steps saved");
        assert_eq!(hooks.saved[0].header.metrics["loss"], 0.25, "with the last good step's loss");
    }

    #[test]
    fn autosave_by_steps_fires_at_every_multiple_and_at_the_end() {
        let control = Arc::new(Control::default());
        let mut hooks = Recorder::new(&control, |_, _| {});
        let autosave = Autosave { every_steps: NonZeroUsize::new(3), ..Autosave::at_end() };
        block_on(train(&mut Counter::new(10), run(&control, autosave), &mut hooks)).unwrap();
        assert_eq!(hooks.saved_steps(), [3, 6, 9, 10]);

        // By time: steps of at least 40 ms, a save every 100 ms of training, so about every third
        // step (bounds, not exact steps: a loaded machine sleeps longer).
        let mut hooks = Recorder::new(&control, |_, _| {});
        let autosave = Autosave { every_seconds: Some(0.1), ..Autosave::never() };
        let mut trainer = Counter { pause: Duration::from_millis(40), ..Counter::new(6) };
        block_on(train(&mut trainer, run(&control, autosave), &mut hooks)).unwrap();
        let saved = hooks.saved_steps();
        assert!(saved.len() >= 2 && saved.len() < 6 && saved[0] >= 2, "saved at steps {saved:?}");
    }

    #[test]
    fn pause_waits_without_stepping_saves_when_asked_and_resume_continues() {
        let control = Arc::new(Control::default());
        let mut hooks = Recorder::new(&control, |step, control| {
            if step == 1 {
                control.set_paused(true);
            }
        });
        let outcome = block_on(train(&mut Counter::new(4), run(&control, Autosave::at_end()), &mut hooks)).unwrap();
        assert_eq!(outcome.ended, Ended::Done);
        assert_eq!(hooks.paused_ticks, 3);
        assert_eq!(hooks.events, ["step 0", "step 1", "pause", "save 2", "go on", "step 2", "step 3", "save 4"]);
    }

    #[test]
    fn train_seconds_are_recorded_and_add_up_across_a_resume() {
        let control = Arc::new(Control::default());
        let mut hooks = Recorder::new(&control, |_, _| {});
        let mut trainer = Counter { pause: Duration::from_millis(20), ..Counter::new(3) };
        let first = block_on(train(&mut trainer, run(&control, Autosave::at_end()), &mut hooks)).unwrap();
        let saved = train_seconds(&hooks.saved[0]);
        assert!(saved >= 0.06 && saved <= first.train_seconds, "3 steps of 20 ms: {saved} s");

        trainer.steps = 5;
        let resumed = Run { train_seconds: saved, ..run(&control, Autosave::at_end()) };
        block_on(train(&mut trainer, resumed, &mut hooks)).unwrap();
        let total = train_seconds(&hooks.saved[1]);
        assert!(total >= saved + 0.04, "the resumed run adds its 2 steps to the saved {saved} s: {total} s");
    }

    /// The real thing: a judge with an absurd learning rate meets a non-finite loss, and the
    /// checkpoint left behind is its last good step, which resumes.
    #[test]
    fn a_real_trainer_blowing_up_leaves_its_last_good_checkpoint() {
        let device = Device::flex();
        let mnist = Mnist::train();
        let model = JudgeConfig::new(1, mnist.height(), 10).with_widths(vec![8]).with_feature_dim(8);
        let mut config = JudgeTrainingConfig::new(model).with_steps(50).with_batch_size(4).with_max_shift(0);
        config.schedule.peak_lr = 1e30;
        config.schedule.warmup_fraction = 0.0;
        let mut trainer = JudgeTrainer::new(config, &device).unwrap();
        let control = Arc::new(Control::default());
        let mut hooks = Recorder::new(&control, |_, _| {});
        let run = Run { dataset: &mnist, control: &control, autosave: Autosave::at_end(), train_seconds: 0.0 };
        let e = block_on(train(&mut trainer, run, &mut hooks)).unwrap_err();
        let Error::NonFiniteLoss { step, .. } = e else { panic!("{e}") };
        assert!(step > 0 && step < 50, "blew up at step {step}");
        assert_eq!(hooks.saved_steps(), [step]);
        let resumed = JudgeTrainer::resume(&hooks.saved[0], &device).unwrap();
        assert_eq!(resumed.step_index(), step);
    }
}
