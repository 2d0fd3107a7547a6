//! Lesson links, as TF Playground has them: a teacher ticks which controls the students see,
//! writes an optional short note and copies a link; opening it shows only those controls, with the
//! teacher's settings. The lesson travels in the link (`lesson=class,seed,player&note=...`), so a
//! reload keeps the hidden controls hidden; "show all" lets a curious student out, for that page.

use std::collections::BTreeSet;

use super::Tab;
use super::generate_settings::GenerateSettings;

/// A control a lesson shows or hides. The Generate button and the images are always shown.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Control {
    /// The generator and, where it ships several, its model (digits or landscapes).
    Generator,
    Class,
    Seed,
    Images,
    Guidance,
    /// top-k, top-p, temperature, a RAR model's fill order, the column generator's width.
    Sampling,
    Player,
    EditTab,
    /// The Train tab: every training control.
    TrainTab,
    DataTab,
    DeviceTab,
}

impl Control {
    pub const ALL: [Control; 11] = [
        Control::Generator,
        Control::Class,
        Control::Seed,
        Control::Images,
        Control::Guidance,
        Control::Sampling,
        Control::Player,
        Control::EditTab,
        Control::TrainTab,
        Control::DataTab,
        Control::DeviceTab,
    ];

    /// Its name in a link.
    pub fn key(self) -> &'static str {
        match self {
            Control::Generator => "generator",
            Control::Class => "class",
            Control::Seed => "seed",
            Control::Images => "images",
            Control::Guidance => "guidance",
            Control::Sampling => "sampling",
            Control::Player => "player",
            Control::EditTab => "edit",
            Control::TrainTab => "train",
            Control::DataTab => "data",
            Control::DeviceTab => "device",
        }
    }

    fn label(self) -> &'static str {
        match self {
            Control::Generator => "the generator choice",
            Control::Class => "the class",
            Control::Seed => "the seed",
            Control::Images => "the number of images",
            Control::Guidance => "guidance",
            Control::Sampling => "top-k, top-p, temperature, fill order and width",
            Control::Player => "the step-through player",
            Control::EditTab => "the Edit tab",
            Control::TrainTab => "the Train tab (training)",
            Control::DataTab => "the Data tab",
            Control::DeviceTab => "the Device tab",
        }
    }

    /// The control that shows `tab` (none for Generate: always shown).
    pub fn of_tab(tab: Tab) -> Option<Control> {
        match tab {
            Tab::Generate => None,
            Tab::Edit => Some(Control::EditTab),
            Tab::Train => Some(Control::TrainTab),
            Tab::Data => Some(Control::DataTab),
            Tab::Device => Some(Control::DeviceTab),
        }
    }
}

/// The longest note a lesson link carries, in characters.
pub const MAX_NOTE: usize = 500;

/// What a lesson link asks for.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Lesson {
    pub shown: BTreeSet<Control>,
    /// Shown above the controls; plain text.
    pub note: String,
}

impl Lesson {
    /// `lesson=class,seed&note=...` (no note when empty).
    pub fn to_query(&self) -> String {
        let keys: Vec<&str> = self.shown.iter().map(|c| c.key()).collect();
        let mut query = format!("lesson={}", keys.join(","));
        if !self.note.is_empty() {
            query.push_str("&note=");
            query.push_str(&percent_encode(&self.note));
        }
        query
    }

    /// The controls of a link's `lesson=` value; unknown names are skipped, each with a warning.
    pub fn parse_shown(value: &str, warnings: &mut Vec<String>) -> BTreeSet<Control> {
        let mut shown = BTreeSet::new();
        // A link pasted through another site may come back with its commas as %2C.
        let value = percent_decode(value).unwrap_or_else(|| value.to_string());
        for key in value.split(',').map(str::trim).filter(|k| !k.is_empty()) {
            match Control::ALL.into_iter().find(|c| c.key() == key) {
                Some(c) => {
                    shown.insert(c);
                }
                None => {
                    let known: Vec<&str> = Control::ALL.iter().map(|c| c.key()).collect();
                    warnings.push(format!("ignored {key} in lesson=: not a control ({})", known.join(", ")));
                }
            }
        }
        shown
    }

    /// A link's `note=` value, decoded and cut to [`MAX_NOTE`] characters.
    pub fn parse_note(value: &str, warnings: &mut Vec<String>) -> String {
        match percent_decode(value) {
            Some(note) if note.chars().count() > MAX_NOTE => {
                warnings.push(format!("the lesson's note was cut to {MAX_NOTE} characters"));
                note.chars().take(MAX_NOTE).collect()
            }
            Some(note) => note,
            None => {
                warnings.push("ignored note=: not valid percent-encoded UTF-8".into());
                String::new()
            }
        }
    }
}

/// What the app shows: everything, or a lesson's controls until "show all".
#[derive(Clone, Debug, Default)]
pub struct Shown {
    pub lesson: Option<Lesson>,
    pub show_all: bool,
}

impl Shown {
    pub fn has(&self, control: Control) -> bool {
        self.show_all || self.lesson.as_ref().is_none_or(|l| l.shown.contains(&control))
    }

    pub fn has_tab(&self, tab: Tab) -> bool {
        Control::of_tab(tab).is_none_or(|c| self.has(c))
    }

    /// Whether a lesson hides anything right now.
    pub fn hides(&self) -> bool {
        Control::ALL.into_iter().any(|c| !self.has(c))
    }

    /// The lesson's part of the link, for the address bar (empty without a lesson): kept there,
    /// a reload opens the lesson again, "show all" or not.
    pub fn query(&self) -> Option<String> {
        self.lesson.as_ref().map(Lesson::to_query)
    }

    /// The note and the "show all" way out, above the tabs' content.
    pub fn banner_ui(&mut self, ui: &mut egui::Ui) {
        let Some(note) = self.lesson.as_ref().map(|l| l.note.clone()) else { return };
        ui.horizontal_wrapped(|ui| {
            if !note.is_empty() {
                ui.label(egui::RichText::new(note).strong());
            }
            if self.hides() {
                if ui.small_button("show all").on_hover_text("show every control of Tessera (a reload goes back to the lesson)").clicked() {
                    self.show_all = true;
                }
            } else if self.show_all && ui.small_button("back to the lesson").clicked() {
                self.show_all = false;
            }
        });
    }
}

/// The teacher's lesson editor: a window with a box per control, the note, and the link.
pub struct Editor {
    pub open: bool,
    lesson: Lesson,
    autorun: bool,
    copied: bool,
}

impl Default for Editor {
    fn default() -> Self {
        let shown = [Control::Class, Control::Seed, Control::Player].into();
        Self { open: false, lesson: Lesson { shown, note: String::new() }, autorun: true, copied: false }
    }
}

impl Editor {
    /// The link: the Generate tab's current settings, then the lesson.
    pub fn link(&self, settings: &GenerateSettings) -> String {
        format!("?{}&{}", settings.to_query(self.autorun), self.lesson.to_query())
    }

    pub fn window(&mut self, ctx: &egui::Context, settings: &GenerateSettings) {
        let mut open = self.open;
        egui::Window::new("Lesson link").open(&mut open).resizable(false).show(ctx, |ui| {
            ui.label("Students who open the link see the images, the Generate button and what you tick here, with the Generate tab's current settings.");
            ui.columns(2, |columns| {
                for (i, control) in Control::ALL.into_iter().enumerate() {
                    let ui = &mut columns[i * 2 / Control::ALL.len()];
                    let mut on = self.lesson.shown.contains(&control);
                    if ui.checkbox(&mut on, control.label()).changed() {
                        if on {
                            self.lesson.shown.insert(control);
                        } else {
                            self.lesson.shown.remove(&control);
                        }
                    }
                }
            });
            ui.checkbox(&mut self.autorun, "draw the images as the page opens");
            ui.label("A note shown above the controls (optional):");
            ui.add(egui::TextEdit::multiline(&mut self.lesson.note).char_limit(MAX_NOTE).desired_rows(2).hint_text("Try three seeds of the class 7. Which looks most like your own handwriting?"));
            let link = self.link(settings);
            let full = page_address() + &link;
            ui.horizontal(|ui| {
                if ui.button("Copy link").clicked() {
                    ui.ctx().copy_text(full.clone());
                    self.copied = true;
                }
                if self.copied {
                    ui.weak("copied");
                }
            });
            ui.add(egui::Label::new(egui::RichText::new(&full).monospace().small()).wrap());
        });
        self.open = open;
    }
}

/// The page's address without its query (browser); nothing on the desktop, whose links are the
/// query alone, to append to wherever the web app is hosted.
fn page_address() -> String {
    #[cfg(target_arch = "wasm32")]
    return crate::web::page_address();
    #[cfg(not(target_arch = "wasm32"))]
    String::new()
}

/// Every byte outside the URL's unreserved characters as `%XX`.
fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `%XX` escapes and `+` (a space, as forms write it) decoded; `None` for a broken escape or
/// bytes that are not UTF-8.
fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = bytes.get(i + 1..i + 3).filter(|h| h.iter().all(u8::is_ascii_hexdigit))?;
                out.push(u8::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok()?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_note_survives_the_link_whatever_its_characters() {
        for note in ["", "Try seed 7 & 8 = 15?", "Über 100% — très bien! 数字 #1\nline two", "a+b"] {
            let lesson = Lesson { shown: [Control::Seed].into(), note: note.into() };
            let query = lesson.to_query();
            assert!(!query.contains(' ') && query.matches('&').count() <= 1, "{query}");
            let value = query.split_once("note=").map_or("", |(_, v)| v);
            assert_eq!(Lesson::parse_note(value, &mut Vec::new()), note);
        }
        let mut warnings = Vec::new();
        assert_eq!(Lesson::parse_note("%E2%28", &mut warnings), "");
        assert_eq!(Lesson::parse_note("50%", &mut warnings), "");
        assert_eq!(Lesson::parse_note("%+F", &mut warnings), "");
        assert_eq!(warnings.len(), 3, "{warnings:?}");
        let long = "x".repeat(MAX_NOTE + 20);
        assert_eq!(Lesson::parse_note(&long, &mut warnings).len(), MAX_NOTE);
        assert!(warnings[3].contains("cut to 500"), "{warnings:?}");
    }

    #[test]
    fn unknown_controls_are_skipped_with_a_warning() {
        let mut warnings = Vec::new();
        let shown = Lesson::parse_shown("class,,seed,rockets", &mut warnings);
        assert_eq!(shown, [Control::Class, Control::Seed].into());
        assert_eq!(warnings.len(), 1);
        // Commas re-encoded by a site the link went through.
        assert_eq!(Lesson::parse_shown("seed%2Cplayer", &mut Vec::new()), [Control::Seed, Control::Player].into());
        assert!(warnings[0].contains("rockets") && warnings[0].contains("player"), "{warnings:?}");
    }

    #[test]
    fn a_lesson_hides_what_it_does_not_name_until_show_all() {
        let mut shown = Shown { lesson: Some(Lesson { shown: [Control::Seed, Control::DataTab].into(), note: String::new() }), show_all: false };
        assert!(shown.has(Control::Seed) && !shown.has(Control::Class));
        assert!(shown.has_tab(Tab::Generate) && shown.has_tab(Tab::Data) && !shown.has_tab(Tab::Train));
        assert!(shown.hides());
        shown.show_all = true;
        assert!(Control::ALL.into_iter().all(|c| shown.has(c)) && !shown.hides());
        // Still in the address bar: a reload opens the lesson again.
        assert_eq!(shown.query().as_deref(), Some("lesson=seed,data"));
        let none = Shown::default();
        assert!(!none.hides() && none.query().is_none());
    }
}
