//! The step-through player: which step of a generation is on screen, and how it moves (play,
//! pause, step, scrub, speed, keyboard). The logic is plain state so tests can drive it; the
//! panel draws the controls and the frames.

/// Speeds the player offers, in steps per second.
pub const SPEEDS: [f32; 7] = [0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0];

/// The keyboard shortcuts, for the help line under the player.
/// (Plain ASCII names: egui's default fonts have no arrow glyphs.)
pub const SHORTCUTS: &str = "Space play/pause · Left/Right arrow step · Home/End first/last · -/+ slower/faster";

#[derive(Clone, Debug, PartialEq)]
pub struct Player {
    /// Index of the step on screen.
    pub step: usize,
    pub playing: bool,
    /// Index into [`SPEEDS`].
    pub speed: usize,
    /// Steps per move: 1, or a row's worth for a token-by-token generator stepped row by row
    /// (moves then stop at the end of each row).
    pub stride: usize,
    /// Seconds since the last automatic step.
    since_step: f32,
}

impl Default for Player {
    fn default() -> Self {
        Self { step: 0, playing: false, speed: 2, stride: 1, since_step: 0.0 }
    }
}

/// Something the user asked the player to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    TogglePlay,
    Back,
    Forward,
    First,
    Last,
    Slower,
    Faster,
}

impl Action {
    /// The shortcut's action for a key, if it has one.
    pub fn for_key(key: egui::Key) -> Option<Self> {
        use egui::Key;
        Some(match key {
            Key::Space => Self::TogglePlay,
            Key::ArrowLeft => Self::Back,
            Key::ArrowRight => Self::Forward,
            Key::Home => Self::First,
            Key::End => Self::Last,
            Key::Minus => Self::Slower,
            Key::Plus | Key::Equals => Self::Faster,
            _ => return None,
        })
    }
}

impl Player {
    pub fn steps_per_second(&self) -> f32 {
        SPEEDS[self.speed]
    }

    /// Applies an action to a sequence of `len` steps.
    pub fn apply(&mut self, action: Action, len: usize) {
        let last = len.saturating_sub(1);
        match action {
            Action::TogglePlay => {
                // Play from the start when at the end, as media players do.
                if !self.playing && self.step >= last {
                    self.step = 0;
                }
                self.playing = !self.playing;
            }
            Action::Back => self.seek(self.previous_stop(), len),
            Action::Forward => self.seek(self.next_stop(), len),
            Action::First => self.seek(0, len),
            Action::Last => self.seek(last, len),
            Action::Slower => self.speed = self.speed.saturating_sub(1),
            Action::Faster => self.speed = (self.speed + 1).min(SPEEDS.len() - 1),
        }
        self.since_step = 0.0;
    }

    /// The next step a move lands on: the next one, or the end of the next row.
    fn next_stop(&self) -> usize {
        let stride = self.stride.max(1);
        ((self.step + 1) / stride + 1) * stride - 1
    }

    /// The step a move back lands on: the one before, or the end of the row before (else the first).
    fn previous_stop(&self) -> usize {
        let stride = self.stride.max(1);
        ((self.step + 1).div_ceil(stride).saturating_sub(1) * stride).saturating_sub(1)
    }

    /// Jumps to `step` (scrubbing pauses playback).
    pub fn seek(&mut self, step: usize, len: usize) {
        self.step = step.min(len.saturating_sub(1));
        self.playing = false;
    }

    /// Advances playback by `dt` seconds over `len` steps; stops at the last step.
    /// Returns whether the step on screen changed.
    pub fn tick(&mut self, dt: f32, len: usize) -> bool {
        if !self.playing || len == 0 {
            return false;
        }
        let before = self.step;
        self.since_step += dt;
        let period = 1.0 / self.steps_per_second();
        while self.since_step >= period && self.step + 1 < len {
            self.since_step -= period;
            self.step = self.next_stop().min(len - 1);
        }
        if self.step + 1 >= len {
            self.playing = false;
            self.since_step = 0.0;
        }
        self.step != before
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn playback_advances_at_the_chosen_speed_and_stops_at_the_end() {
        let mut p = Player::default();
        assert_eq!(p.steps_per_second(), 1.0);
        p.apply(Action::TogglePlay, 7);
        assert!(p.playing);
        assert!(!p.tick(0.6, 7), "not a whole step yet");
        assert!(p.tick(0.6, 7));
        assert_eq!(p.step, 1);
        p.apply(Action::Faster, 7);
        p.apply(Action::Faster, 7);
        assert_eq!(p.steps_per_second(), 4.0);
        p.tick(0.5, 7);
        assert_eq!(p.step, 3);
        p.tick(10.0, 7);
        assert_eq!(p.step, 6);
        assert!(!p.playing, "stops on the last step");
        p.apply(Action::TogglePlay, 7);
        assert_eq!((p.step, p.playing), (0, true), "play at the end starts over");
    }

    #[test]
    fn stepping_and_scrubbing_stay_in_range_and_pause() {
        let mut p = Player::default();
        p.apply(Action::Back, 7);
        assert_eq!(p.step, 0);
        p.apply(Action::Last, 7);
        assert_eq!(p.step, 6);
        p.apply(Action::Forward, 7);
        assert_eq!(p.step, 6);
        p.apply(Action::TogglePlay, 7);
        p.seek(3, 7);
        assert_eq!((p.step, p.playing), (3, false));
        p.seek(99, 7);
        assert_eq!(p.step, 6);
        p.apply(Action::First, 7);
        assert_eq!(p.step, 0);
        for _ in 0..20 {
            p.apply(Action::Slower, 7);
        }
        assert_eq!(p.steps_per_second(), SPEEDS[0]);
        p.seek(5, 0);
        assert_eq!(p.step, 0, "an empty sequence has only step 0");
    }

    #[test]
    fn row_stepping_stops_at_the_end_of_each_row() {
        // 64 tokens, rows of 8: stops at steps 7, 15, ..., 63.
        let mut p = Player { stride: 8, ..Player::default() };
        p.apply(Action::Forward, 64);
        assert_eq!(p.step, 7);
        p.apply(Action::Forward, 64);
        assert_eq!(p.step, 15);
        p.seek(20, 64);
        p.apply(Action::Forward, 64);
        assert_eq!(p.step, 23, "from inside a row, to its end");
        p.apply(Action::Back, 64);
        assert_eq!(p.step, 15);
        p.seek(20, 64);
        p.apply(Action::Back, 64);
        assert_eq!(p.step, 15, "from inside a row, to the end of the row before");
        p.seek(3, 64);
        p.apply(Action::Back, 64);
        assert_eq!(p.step, 0);
        p.seek(60, 64);
        p.apply(Action::Forward, 64);
        assert_eq!(p.step, 63);
        p.apply(Action::Forward, 64);
        assert_eq!(p.step, 63, "stays on the last step");
        p.apply(Action::First, 64);
        p.apply(Action::TogglePlay, 64);
        p.tick(1.0, 64); // one step per second: one row
        assert_eq!(p.step, 7);
    }

    #[test]
    fn every_shortcut_maps_to_an_action() {
        use egui::Key;
        let keys = [Key::Space, Key::ArrowLeft, Key::ArrowRight, Key::Home, Key::End, Key::Minus, Key::Plus];
        let actions: Vec<_> = keys.into_iter().filter_map(Action::for_key).collect();
        assert_eq!(actions, vec![Action::TogglePlay, Action::Back, Action::Forward, Action::First, Action::Last, Action::Slower, Action::Faster]);
        assert_eq!(Action::for_key(Key::A), None);
    }
}
