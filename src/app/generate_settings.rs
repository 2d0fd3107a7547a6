//! What the Generate panel asks for, and how it travels in a URL.
//!
//! The query string carries a version and every setting that differs from [`GenerateSettings::url_base`]
//! (class and seed always), so a shared link reproduces the same images:
//! `?v=2&generator=var&class=3&seed=1&guidance=3&n=8&autorun=1` (RAR adds `order=spiral` and the like,
//! the column generator `width=64`, its width in columns, and `model=columns-scenes` for its
//! landscapes instead of its default digits).
//! A link without `n` draws one image: that is what the automation hook
//! (`?generator=var&class=C&seed=S&autorun=1`) promises. Format 2 added lesson links
//! (`lesson=class,seed&note=...`, [`super::lesson`]); format 1 links open as they always did.

use serde::{Deserialize, Serialize};
use tessera_models::family::{Family, FillOrder};

use super::Tab;
use super::lesson::Lesson;

/// The version of the query format written by [`GenerateSettings::to_query`].
pub const URL_VERSION: u32 = 2;

/// Whether Tessera ships a model of `family` (the others sample from models trained in the Train
/// tab or loaded from checkpoint files).
pub fn is_shipped(family: Family) -> bool {
    crate::shipped::Shipped::of(family).is_some()
}

/// One generation request; persisted between runs and carried in URLs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct GenerateSettings {
    pub generator: Family,
    /// Class index (its name comes from the model).
    pub class: usize,
    pub seed: u64,
    /// Classifier-free guidance (0 = none). 2 is what the shipped models were checked with.
    pub guidance: f64,
    /// Keep the k most likely codes (0 = all).
    pub top_k: usize,
    /// Nucleus sampling mass (0 = off).
    pub top_p: f64,
    /// Divides the logits (1 = as trained).
    pub temperature: f64,
    /// Images per run.
    pub count: usize,
    /// The order a token-by-token model (RAR) fills its map in.
    pub order: FillOrder,
    /// Token columns to draw, for models that draw any width (the column generator); `None`: the
    /// model's training width.
    pub width: Option<usize>,
    /// Which shipped pair of the generator's family (`columns-scenes`); `None`: the family's own
    /// trained or dropped models if any, else its first shipped pair.
    pub model: Option<String>,
}

impl Default for GenerateSettings {
    fn default() -> Self {
        Self { count: 8, ..Self::url_base() }
    }
}

/// Limits of the panel's controls, also applied to URLs.
pub const MAX_COUNT: usize = 32;
pub const MAX_TOP_K: usize = 4096;
pub const MAX_GUIDANCE: f64 = 20.0;
/// The widest image asked for, in columns (the column generator's limit).
pub const MAX_WIDTH: usize = tessera_models::generator::columns::MAX_COLUMNS;
/// The narrowest: the column convolutions need two columns.
pub const MIN_WIDTH: usize = 2;

/// What a URL asked for.
#[derive(Clone, Debug, PartialEq)]
pub struct UrlRequest {
    pub settings: GenerateSettings,
    /// `autorun=1`: generate as soon as the models are loaded.
    pub autorun: bool,
    /// `train=T,V[,B]`: open the Train tab and train on MNIST at once, T tokenizer steps and V
    /// transformer steps, with batches of B (default: the preset's); the family of `generator=`.
    pub train: Option<QuickTrain>,
    /// `tab=edit|train|data|device`: the tab to open (default Generate; `train=` opens Train).
    pub tab: Option<Tab>,
    /// `device=gpu`: compute on a software adapter instead of the faster CPU backend (the Device
    /// tab's setting, for this page only); `device=auto`: the fastest.
    pub software_adapter: Option<bool>,
    /// `lesson=` (and `note=`): only these controls are shown ([`super::lesson`]). A note alone
    /// shows every control.
    pub lesson: Option<Lesson>,
    /// Parameters that were ignored, and why (shown to the user, never fatal).
    pub warnings: Vec<String>,
}

/// A short training run asked for by a link (`train=T,V[,B]`), e.g. for automated tests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QuickTrain {
    pub tokenizer_steps: usize,
    pub transformer_steps: usize,
    pub batch: Option<usize>,
    /// `dataset=pictures`: wait for the user's pictures (dropped or chosen) instead of MNIST.
    pub on_pictures: bool,
    /// The link's `generator=`: the family to train (VAR by default).
    pub family: Family,
}

impl std::str::FromStr for QuickTrain {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        let v: Vec<usize> = s.split(',').map(|p| p.trim().parse::<usize>()).collect::<Result<_, _>>().map_err(|_| ())?;
        match v[..] {
            [t, m] if t > 0 && m > 0 => Ok(Self { tokenizer_steps: t, transformer_steps: m, batch: None, on_pictures: false, family: Family::Var }),
            [t, m, b] if t > 0 && m > 0 && (1..=tessera_train::MAX_BATCH).contains(&b) => {
                Ok(Self { tokenizer_steps: t, transformer_steps: m, batch: Some(b), on_pictures: false, family: Family::Var })
            }
            _ => Err(()),
        }
    }
}

impl GenerateSettings {
    /// The settings a URL starts from before its parameters apply.
    pub fn url_base() -> Self {
        Self {
            generator: Family::Var,
            class: 0,
            seed: 0,
            guidance: 2.0,
            top_k: 0,
            top_p: 0.0,
            temperature: 1.0,
            count: 1,
            order: FillOrder::Raster,
            width: None,
            model: None,
        }
    }

    /// The shipped pair `model` names, if it is one of the generator's family.
    pub fn shipped_model(&self) -> Option<&'static crate::shipped::Shipped> {
        self.model.as_deref().and_then(crate::shipped::Shipped::named).filter(|s| s.family == self.generator)
    }

    /// Values brought into the ranges the sampler accepts.
    pub fn clamped(mut self) -> Self {
        // `clamp` passes NaN through, and saved settings can hold NaN or infinities (RON writes
        // both): those fall back to the defaults instead of drawing blank images.
        let base = Self::url_base();
        let finite_or = |v: f64, default: f64| if v.is_finite() { v } else { default };
        self.guidance = finite_or(self.guidance, base.guidance).clamp(0.0, MAX_GUIDANCE);
        self.top_k = self.top_k.min(MAX_TOP_K);
        self.top_p = finite_or(self.top_p, base.top_p).clamp(0.0, 1.0);
        self.temperature = finite_or(self.temperature, base.temperature).clamp(0.05, 10.0);
        self.count = self.count.clamp(1, MAX_COUNT);
        self.width = self.width.map(|w| w.clamp(MIN_WIDTH, MAX_WIDTH));
        self
    }

    /// `v=2&generator=var&class=3&seed=1` plus every setting that differs from [`Self::url_base`]
    /// (the width only for the column generator, the one model that reads it).
    pub fn to_query(&self, autorun: bool) -> String {
        let base = Self::url_base();
        let mut parts = vec![
            format!("v={URL_VERSION}"),
            format!("generator={}", self.generator.key()),
            format!("class={}", self.class),
            format!("seed={}", self.seed),
        ];
        if self.guidance != base.guidance {
            parts.push(format!("guidance={}", self.guidance));
        }
        if self.top_k != base.top_k {
            parts.push(format!("top_k={}", self.top_k));
        }
        if self.top_p != base.top_p {
            parts.push(format!("top_p={}", self.top_p));
        }
        if self.temperature != base.temperature {
            parts.push(format!("temperature={}", self.temperature));
        }
        if self.count != base.count {
            parts.push(format!("n={}", self.count));
        }
        if self.order != base.order {
            parts.push(format!("order={}", self.order.key()));
        }
        if let Some(width) = self.width.filter(|_| self.generator == Family::Columns) {
            parts.push(format!("width={width}"));
        }
        // A model of another family is left over from before the generator changed: not this one's.
        if let Some(model) = self.shipped_model() {
            parts.push(format!("model={}", model.name));
        }
        if autorun {
            parts.push("autorun=1".into());
        }
        parts.join("&")
    }

    /// Reads a query string (with or without the leading `?`). Unknown or malformed parameters
    /// are skipped with a warning; values out of range are clamped.
    pub fn from_query(query: &str) -> UrlRequest {
        let mut settings = Self::url_base();
        let mut autorun = false;
        let mut train: Option<QuickTrain> = None;
        let mut on_pictures = false;
        let mut tab = None;
        let mut software_adapter = None;
        let (mut shown, mut note) = (None, None);
        let mut warnings = Vec::new();
        for pair in query.trim_start_matches('?').split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let mut bad = |what: &str| warnings.push(format!("ignored {key}={value}: {what}"));
            match key {
                "v" => match value.parse::<u32>() {
                    Ok(v) if v > URL_VERSION => {
                        bad(&format!("this link was made by a newer Tessera (format {v}, this one reads {URL_VERSION})"))
                    }
                    Ok(_) => {}
                    Err(_) => bad("not a version number"),
                },
                "generator" => match Family::from_key(value) {
                    Some(g) => settings.generator = g,
                    None => bad("unknown generator (var, rar or columns)"),
                },
                "class" => parse_into(value, &mut settings.class, &mut bad),
                "seed" => parse_into(value, &mut settings.seed, &mut bad),
                "guidance" => parse_finite(value, &mut settings.guidance, &mut bad),
                "top_k" => parse_into(value, &mut settings.top_k, &mut bad),
                "top_p" => parse_finite(value, &mut settings.top_p, &mut bad),
                "temperature" => parse_finite(value, &mut settings.temperature, &mut bad),
                "n" => parse_into(value, &mut settings.count, &mut bad),
                "order" => match value.parse::<FillOrder>() {
                    Ok(o) => settings.order = o,
                    Err(_) => bad("unknown order (raster, random, spiral or centre-out)"),
                },
                "width" => match value.parse::<usize>() {
                    Ok(w) if (MIN_WIDTH..=MAX_WIDTH).contains(&w) => settings.width = Some(w),
                    Ok(_) => bad(&format!("the width is {MIN_WIDTH} to {MAX_WIDTH} columns")),
                    Err(_) => bad("not a number of columns"),
                },
                "model" => settings.model = Some(value.to_string()),
                "autorun" => autorun = matches!(value, "1" | "true" | "yes" | ""),
                "train" => match value.parse::<QuickTrain>() {
                    Ok(t) => train = Some(t),
                    Err(()) => bad("expected tokenizer and transformer steps, and optionally a batch size of at most 1024: train=500,600[,32]"),
                },
                "dataset" => match value {
                    "mnist" => on_pictures = false,
                    "pictures" => on_pictures = true,
                    _ => bad("expected mnist or pictures (a folder or .zip you drop or choose)"),
                },
                "tab" => match Tab::from_key(value) {
                    Some(t) => tab = Some(t),
                    None => bad("unknown tab (generate, edit, train, data or device)"),
                },
                "device" => match value {
                    "gpu" => software_adapter = Some(true),
                    "auto" => software_adapter = Some(false),
                    _ => bad("unknown device (gpu or auto)"),
                },
                "lesson" => shown = Some(value),
                "note" => note = Some(value),
                _ => bad("unknown parameter"),
            }
        }
        let lesson = (shown.is_some() || note.is_some()).then(|| Lesson {
            shown: shown.map_or_else(|| super::lesson::Control::ALL.into(), |s| Lesson::parse_shown(s, &mut warnings)),
            note: note.map(|n| Lesson::parse_note(n, &mut warnings)).unwrap_or_default(),
        });
        match &mut train {
            Some(t) => (t.on_pictures, t.family) = (on_pictures, settings.generator),
            None if on_pictures => warnings.push("ignored dataset=pictures: it goes with train=T,V".into()),
            None => {}
        }
        if let Some(model) = settings.model.take() {
            match crate::shipped::Shipped::named(&model) {
                Some(shipped) if shipped.family == settings.generator => settings.model = Some(model),
                Some(shipped) => warnings.push(format!("ignored model={model}: it is a {} model, not a {} one", shipped.family.key(), settings.generator.key())),
                None => warnings.push(format!("ignored model={model}: no shipped model has that name ({})", crate::shipped::Shipped::names())),
            }
        }
        if settings.width.is_some() && settings.generator != Family::Columns {
            warnings.push(format!("ignored width={}: only the column generator draws other widths", settings.width.unwrap_or(0)));
            settings.width = None;
        }
        UrlRequest { settings: settings.clamped(), autorun, train, tab, software_adapter, lesson, warnings }
    }
}

/// A float setting: `NaN` and infinities parse as numbers, but would draw a blank image and be
/// written back into the link, so they are refused like text.
fn parse_finite(value: &str, into: &mut f64, bad: &mut impl FnMut(&str)) {
    match value.parse::<f64>() {
        Ok(v) if v.is_finite() => *into = v,
        Ok(_) => bad("not a finite number"),
        Err(_) => bad("not a number"),
    }
}

fn parse_into<T: std::str::FromStr>(value: &str, into: &mut T, bad: &mut impl FnMut(&str)) {
    match value.parse::<T>() {
        Ok(v) => *into = v,
        Err(_) => bad("not a number"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_automation_url_asks_for_one_image() {
        let r = GenerateSettings::from_query("?generator=var&class=3&seed=1&autorun=1");
        assert!(r.autorun && r.warnings.is_empty(), "{r:?}");
        assert_eq!(r.settings, GenerateSettings { class: 3, seed: 1, ..GenerateSettings::url_base() });
        assert_eq!(r.settings.count, 1);
    }

    #[test]
    fn a_link_can_keep_work_on_a_software_adapter() {
        assert_eq!(GenerateSettings::from_query("device=gpu").software_adapter, Some(true));
        assert_eq!(GenerateSettings::from_query("device=auto").software_adapter, Some(false));
        assert_eq!(GenerateSettings::from_query("generator=rar").software_adapter, None);
        let r = GenerateSettings::from_query("device=tpu");
        assert!(r.software_adapter.is_none() && r.warnings.len() == 1, "{r:?}");
    }

    #[test]
    fn a_link_can_ask_for_a_short_training_run() {
        let r = GenerateSettings::from_query("train=3,2,4");
        assert_eq!(r.train, Some(QuickTrain { tokenizer_steps: 3, transformer_steps: 2, batch: Some(4), on_pictures: false, family: Family::Var }));
        assert_eq!(GenerateSettings::from_query("generator=rar&train=3,2").train.unwrap().family, Family::Rar);
        let r = GenerateSettings::from_query("dataset=pictures&train=3,2");
        assert!(r.train.unwrap().on_pictures && r.warnings.is_empty(), "{r:?}");
        let r = GenerateSettings::from_query("dataset=pictures");
        assert!(r.train.is_none() && r.warnings.len() == 1, "{r:?}");
        assert_eq!(GenerateSettings::from_query("train=3,2&dataset=photos").warnings.len(), 1);
        assert_eq!(GenerateSettings::from_query("train=3,2").train.unwrap().batch, None);
        let too_big = GenerateSettings::from_query("train=3,2,5000");
        assert!(too_big.train.is_none() && too_big.warnings.iter().any(|w| w.contains("at most 1024")), "{:?}", too_big.warnings);
        for bad in ["train=3", "train=0,2", "train=a,b", "train=1,2,3,4"] {
            let r = GenerateSettings::from_query(bad);
            assert!(r.train.is_none() && r.warnings.len() == 1, "{bad}: {r:?}");
        }
    }

    #[test]
    fn non_finite_numbers_in_a_link_are_refused_and_never_written_back() {
        for (query, key) in [("guidance=NaN", "guidance"), ("temperature=inf", "temperature"), ("top_p=-inf", "top_p")] {
            let r = GenerateSettings::from_query(query);
            assert_eq!(r.warnings.len(), 1, "{query}: {r:?}");
            assert!(r.warnings[0].contains("not a finite number"), "{query}: {r:?}");
            assert_eq!(r.settings, GenerateSettings::url_base(), "{query}");
            let written = r.settings.to_query(false);
            assert!(!written.contains(key) && !written.to_lowercase().contains("nan") && !written.contains("inf"), "{written}");
        }
    }

    #[test]
    fn saved_settings_with_non_finite_numbers_load_as_the_defaults() {
        let saved = GenerateSettings { guidance: f64::NAN, top_p: f64::INFINITY, temperature: f64::NEG_INFINITY, class: 4, ..GenerateSettings::default() };
        let loaded = saved.clamped();
        assert_eq!(loaded, GenerateSettings { class: 4, ..GenerateSettings::default() });
        let written = loaded.to_query(false).to_lowercase();
        assert!(!written.contains("nan") && !written.contains("inf"), "{written}");
    }

    #[test]
    fn a_link_can_ask_the_column_generator_for_a_width() {
        let r = GenerateSettings::from_query("?generator=columns&class=3&seed=1&width=64&autorun=1");
        assert!(r.autorun && r.warnings.is_empty(), "{r:?}");
        assert_eq!(r.settings, GenerateSettings { generator: Family::Columns, class: 3, seed: 1, width: Some(64), ..GenerateSettings::url_base() });
        assert_eq!(r.settings.to_query(true), "v=2&generator=columns&class=3&seed=1&width=64&autorun=1");
        // `equivariant` names the same family.
        assert_eq!(GenerateSettings::from_query("generator=equivariant&width=16").settings.width, Some(16));
        assert_eq!(GenerateSettings::url_base().width, None, "no width: the training width");
        for (query, why) in [
            ("generator=columns&width=1", "2 to 512 columns"),
            ("generator=columns&width=513", "2 to 512 columns"),
            ("generator=columns&width=wide", "not a number of columns"),
            ("generator=columns&width=-3", "not a number of columns"),
            ("generator=var&width=64", "only the column generator"),
            ("width=64", "only the column generator"),
        ] {
            let r = GenerateSettings::from_query(query);
            assert_eq!(r.settings.width, None, "{query}");
            assert_eq!(r.warnings.len(), 1, "{query}: {r:?}");
            assert!(r.warnings[0].contains(why), "{query}: {r:?}");
        }
        // A remembered width out of range is brought back into it.
        let s = GenerateSettings { generator: Family::Columns, width: Some(100_000), ..GenerateSettings::url_base() }.clamped();
        assert_eq!(s.width, Some(MAX_WIDTH));
        // A train= link with generator=columns trains the column pair.
        let r = GenerateSettings::from_query("generator=columns&train=3,2,4");
        assert_eq!(r.train.map(|t| (t.family, t.tokenizer_steps, t.transformer_steps, t.batch)), Some((Family::Columns, 3, 2, Some(4))));
    }

    #[test]
    fn a_link_can_pick_a_shipped_model_of_its_generator() {
        let r = GenerateSettings::from_query("generator=columns&model=columns-scenes&class=2&width=64");
        assert!(r.warnings.is_empty(), "{:?}", r.warnings);
        assert_eq!(r.settings.model.as_deref(), Some("columns-scenes"));
        assert_eq!(r.settings.to_query(false), "v=2&generator=columns&class=2&seed=0&width=64&model=columns-scenes");
        assert_eq!(GenerateSettings::from_query(&r.settings.to_query(false)).settings, r.settings);
        // The parameters may come in any order; a name of another family or of nothing is refused.
        assert_eq!(GenerateSettings::from_query("model=columns-scenes&generator=columns").settings.model.as_deref(), Some("columns-scenes"));
        for (query, why) in [("generator=var&model=columns-scenes", "not a var one"), ("generator=columns&model=columns-cats", "no shipped model")] {
            let r = GenerateSettings::from_query(query);
            assert_eq!(r.settings.model, None, "{query}");
            assert!(r.warnings.len() == 1 && r.warnings[0].contains(why), "{query}: {:?}", r.warnings);
        }
        assert_eq!(GenerateSettings::url_base().model, None, "no model: the family's default");
    }

    #[test]
    fn a_lesson_link_names_its_controls_and_old_links_still_open() {
        use super::super::lesson::{Control, Lesson};
        let r = GenerateSettings::from_query("v=2&generator=var&class=7&seed=3&autorun=1&lesson=seed,player&note=Try%20three%20seeds%21");
        assert!(r.warnings.is_empty(), "{:?}", r.warnings);
        let lesson = r.lesson.unwrap();
        assert_eq!(lesson, Lesson { shown: [Control::Seed, Control::Player].into(), note: "Try three seeds!".into() });
        assert_eq!((r.settings.class, r.settings.seed, r.autorun), (7, 3, true));
        // What the editor writes reads back the same.
        let back = GenerateSettings::from_query(&format!("{}&{}", r.settings.to_query(true), lesson.to_query()));
        assert_eq!(back.lesson, Some(lesson));
        // An empty lesson shows nothing but the images; a note alone hides nothing.
        assert_eq!(GenerateSettings::from_query("lesson=").lesson.unwrap().shown.len(), 0);
        assert_eq!(GenerateSettings::from_query("note=hello").lesson.unwrap().shown.len(), Control::ALL.len());
        // Format 1 links (before lessons) open as before, without a lesson.
        let old = GenerateSettings::from_query("v=1&generator=var&class=3&seed=1&n=3");
        assert!(old.lesson.is_none() && old.warnings.is_empty() && old.settings.count == 3, "{old:?}");
    }

    #[test]
    fn a_link_can_open_a_tab() {
        assert_eq!(GenerateSettings::from_query("tab=edit").tab, Some(Tab::Edit));
        assert_eq!(GenerateSettings::from_query("?class=3&tab=Train").tab, Some(Tab::Train));
        let r = GenerateSettings::from_query("tab=gallery");
        assert!(r.tab.is_none() && r.warnings[0].contains("unknown tab"), "{r:?}");
    }

    #[test]
    fn settings_survive_a_round_trip_through_the_url() {
        let cases = [
            GenerateSettings::default(),
            GenerateSettings::url_base(),
            GenerateSettings { class: 7, seed: u64::MAX, guidance: 0.0, top_k: 50, top_p: 0.9, temperature: 0.7, count: 16, ..Default::default() },
            GenerateSettings { generator: Family::Columns, guidance: 1.25, ..Default::default() },
            GenerateSettings { generator: Family::Rar, order: FillOrder::CentreOut, ..Default::default() },
            GenerateSettings { generator: Family::Columns, width: Some(64), ..Default::default() },
            GenerateSettings { generator: Family::Columns, width: Some(MAX_WIDTH), count: 2, guidance: 3.0, ..Default::default() },
        ];
        for settings in cases {
            for autorun in [false, true] {
                let query = settings.to_query(autorun);
                let back = GenerateSettings::from_query(&query);
                assert_eq!(back.settings, settings, "{query}");
                assert_eq!(back.autorun, autorun, "{query}");
                assert!(back.warnings.is_empty(), "{query}: {:?}", back.warnings);
            }
        }
    }

    #[test]
    fn only_non_default_settings_are_written() {
        assert_eq!(GenerateSettings::url_base().to_query(false), "v=2&generator=var&class=0&seed=0");
        let s = GenerateSettings { class: 2, seed: 9, top_p: 0.95, ..GenerateSettings::url_base() };
        assert_eq!(s.to_query(true), "v=2&generator=var&class=2&seed=9&top_p=0.95&autorun=1");
    }

    #[test]
    fn bad_parameters_are_skipped_with_a_reason_and_values_clamped() {
        let r = GenerateSettings::from_query("v=3&generator=gan&class=x&seed=5&n=1000&top_p=3&colour=red");
        assert_eq!(r.settings.seed, 5);
        assert_eq!(r.settings.generator, Family::Var);
        assert_eq!(r.settings.class, 0);
        assert_eq!((r.settings.count, r.settings.top_p), (MAX_COUNT, 1.0));
        assert!(!r.autorun);
        let joined = r.warnings.join("\n");
        assert_eq!(r.warnings.len(), 4, "{joined}");
        for expected in ["newer Tessera", "unknown generator", "class=x", "unknown parameter"] {
            assert!(joined.contains(expected), "{expected}: {joined}");
        }
    }
}
