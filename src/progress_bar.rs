//! The headless progress display: a kdam bar on stderr fed by pipeline events.

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
                total,
                cached,
                model,
            } => {
                eprintln!("{total} images, {cached} from the cache; model: {model}");
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
