//! The headless progress displays: a kdam bar on stderr fed by pipeline events, and a
//! plain counter for the snow-crystal generator.

use kdam::{Bar, BarExt};
use snowscope::pipeline::Event;
use snowscope::sanitize::sanitize;

pub struct Headless {
    bar: Option<Bar>,
}

impl Headless {
    pub fn new() -> Self {
        Self { bar: None }
    }

    pub fn event(&mut self, event: Event) {
        match event {
            Event::Notice(text) => self.write(format!("note: {}", sanitize(&text))),
            Event::Skipped(skip) => self.write(format!(
                "skip: {}: {}",
                sanitize(&skip.path),
                sanitize(&skip.reason.to_string())
            )),
            Event::Planned {
                files,
                total,
                cached,
                model,
            } => {
                // Byte-identical copies are one content: extracted once, cached once.
                let images = match files == total {
                    true => format!("{files} images"),
                    false => format!("{files} images ({total} distinct)"),
                };
                eprintln!("{images}, {cached} from the cache; model: {model}");
                if cached < total {
                    let mut bar = Bar::builder()
                        .total(total)
                        .desc("features")
                        .unit("img")
                        .build()
                        .ok();
                    if let Some(bar) = bar.as_mut() {
                        let _ = bar.update_to(cached);
                    }
                    self.bar = bar;
                }
            }
            // The features are done: close the bar before the ranking's own output.
            Event::Ranking(_) => self.finish(),
            Event::Progress(p) => {
                if let Some(bar) = self.bar.as_mut() {
                    bar.set_postfix(format!("skipped={}", p.skipped));
                    let _ = bar.update_to(p.done);
                }
            }
        }
    }

    fn write(&mut self, line: String) {
        match self.bar.as_mut() {
            Some(bar) => {
                let _ = bar.write(line);
            }
            None => eprintln!("{line}"),
        }
    }

    pub fn finish(&mut self) {
        if let Some(mut bar) = self.bar.take() {
            let _ = bar.refresh();
            eprintln!();
        }
    }
}

/// A kdam bar on stderr counting to `total`, updated from any thread (the synth
/// generator reports `(done, total)` from its workers).
pub struct Counter(std::sync::Mutex<Bar>);

impl Counter {
    pub fn new(desc: &str, total: usize) -> anyhow::Result<Self> {
        let bar = Bar::builder()
            .total(total)
            .desc(desc)
            .unit("img")
            .build()
            .map_err(anyhow::Error::msg)?;
        Ok(Self(std::sync::Mutex::new(bar)))
    }

    pub fn update(&self, done: usize) {
        if let Ok(mut bar) = self.0.lock() {
            let _ = bar.update_to(done);
        }
    }
}
