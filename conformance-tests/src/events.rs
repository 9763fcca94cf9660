//! A `tracing` subscriber that records every event and span, for tests that check what
//! a storage or the limiter reports: levels, field names, and that no client's key
//! shows in plain text.
//!
//! ```
//! use limiter_conformance::events::Recorder;
//!
//! let recorder = Recorder::default();
//! tracing::subscriber::with_default(recorder.clone(), || {
//!     tracing::warn!(limiter.key.digest = "00ff", "something happened");
//! });
//! let events = recorder.events();
//! assert_eq!(events[0].level, tracing::Level::WARN);
//! assert_eq!(events[0].message(), "something happened");
//! assert_eq!(events[0].fields["limiter.key.digest"], "00ff");
//! ```

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

/// Fields as text, by name (the message as `message`).
pub type Fields = BTreeMap<String, String>;

/// One recorded event.
#[derive(Debug, Clone)]
pub struct Recorded {
    /// Its level.
    pub level: tracing::Level,
    /// Its fields.
    pub fields: Fields,
}

impl Recorded {
    /// The event's message, empty if it has none.
    pub fn message(&self) -> &str {
        self.fields.get("message").map_or("", String::as_str)
    }
}

/// One recorded span: its name and its fields, those recorded later included.
#[derive(Debug, Clone)]
pub struct RecordedSpan {
    /// Its name.
    pub name: String,
    /// Its fields.
    pub fields: Fields,
}

/// A subscriber that records every event and span, at every level. Clones share
/// what they record.
#[derive(Debug, Default, Clone)]
pub struct Recorder {
    events: Arc<Mutex<Vec<Recorded>>>,
    spans: Arc<Mutex<Vec<RecordedSpan>>>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Recorder {
    /// The events so far (append them elsewhere to take them).
    pub fn events(&self) -> MutexGuard<'_, Vec<Recorded>> {
        lock(&self.events)
    }

    /// The spans so far.
    pub fn spans(&self) -> MutexGuard<'_, Vec<RecordedSpan>> {
        lock(&self.spans)
    }

    /// The first event whose message contains `text`, waiting up to `limit` for it.
    ///
    /// # Panics
    ///
    /// When no such event comes within `limit` (the test's failure report).
    pub async fn wait_for(&self, text: &str, limit: Duration) -> Recorded {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(found) = self.events().iter().find(|e| e.message().contains(text)) {
                return found.clone();
            }
            assert!(
                Instant::now() < deadline,
                "no event {text:?} within {limit:?}: {:#?}",
                *self.events()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

struct Visit<'a>(&'a mut Fields);

impl tracing::field::Visit for Visit<'_> {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        self.0.insert(field.name().to_owned(), format!("{value:?}"));
    }
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }
}

impl tracing::Subscriber for Recorder {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, attributes: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        let mut fields = Fields::new();
        attributes.record(&mut Visit(&mut fields));
        let mut spans = self.spans();
        spans.push(RecordedSpan {
            name: attributes.metadata().name().to_owned(),
            fields,
        });
        tracing::span::Id::from_u64(u64::try_from(spans.len()).unwrap_or(u64::MAX))
    }
    fn record(&self, id: &tracing::span::Id, values: &tracing::span::Record<'_>) {
        let index = usize::try_from(id.into_u64()).unwrap_or(usize::MAX);
        if let Some(span) = self.spans().get_mut(index.wrapping_sub(1)) {
            values.record(&mut Visit(&mut span.fields));
        }
    }
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        let mut fields = Fields::new();
        event.record(&mut Visit(&mut fields));
        self.events().push(Recorded {
            level: *event.metadata().level(),
            fields,
        });
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}
