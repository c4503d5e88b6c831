//! Logging set-up. Building a subscriber is separate from installing it, so tests and the
//! offline commands can choose where logs go.

use std::io::{self, Write};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tracing::{Level, Metadata, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

use crate::config::{LogFormat, LogSettings};

/// A subscriber writing to `writer` in the configured format and level.
/// `ansi` colours the pretty format (for a terminal).
pub fn subscriber<W>(
    settings: &LogSettings,
    writer: W,
    ansi: bool,
) -> Box<dyn Subscriber + Send + Sync>
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    let filter = EnvFilter::try_new(&settings.level).unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_target(true);
    match settings.format {
        LogFormat::Json => Box::new(builder.with_ansi(false).json().flatten_event(true).finish()),
        LogFormat::Pretty => Box::new(builder.with_ansi(ansi).compact().finish()),
    }
}

/// Installs `subscriber` for the whole process (once; later calls are ignored).
pub fn init(subscriber: Box<dyn Subscriber + Send + Sync>) {
    let _ = tracing::subscriber::set_global_default(subscriber);
}

/// Records buffered in memory before they are written out, in bytes.
const BATCH_BYTES: usize = 32 * 1024;
/// Longest an `info` record waits in the buffer.
pub const FLUSH_INTERVAL: Duration = Duration::from_millis(100);

/// Standard output, written in batches: one `write(2)` per 32 KiB of records or per 100 ms
/// instead of one per record, which under load cost more than formatting the record did.
/// Records keep their order; a warning or an error is written at once, with everything before
/// it. [`BatchedStdout::flush`] empties the buffer (at exit); a process killed with SIGKILL
/// loses at most the last 100 ms of `info` records.
#[derive(Clone, Default)]
pub struct BatchedStdout {
    shared: Arc<Batch>,
}

#[derive(Default)]
struct Batch {
    pending: Mutex<Vec<u8>>,
    /// Held while a batch is written, so batches leave in the order they were taken.
    writing: Mutex<()>,
}

impl BatchedStdout {
    /// Starts the thread that writes out what waited [`FLUSH_INTERVAL`].
    pub fn start_flushing(&self) {
        let this = self.clone();
        let spawned = std::thread::Builder::new()
            .name("log-flush".into())
            .spawn(move || {
                loop {
                    std::thread::sleep(FLUSH_INTERVAL);
                    this.flush();
                }
            });
        if spawned.is_err() {
            eprintln!("cannot start the log flushing thread: logs are written at exit only");
        }
    }

    /// Writes out every buffered record.
    pub fn flush(&self) {
        let _writing = self
            .shared
            .writing
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let batch = std::mem::take(&mut *self.pending());
        if !batch.is_empty() {
            let mut out = io::stdout().lock();
            // Nowhere to report a failed log write; the record is dropped, as with stdout.
            let _ = out.write_all(&batch).and_then(|()| out.flush());
        }
    }

    fn pending(&self) -> std::sync::MutexGuard<'_, Vec<u8>> {
        self.shared
            .pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

/// The writer of one record.
pub struct RecordWriter<'a> {
    batch: &'a BatchedStdout,
    urgent: bool,
}

impl Write for RecordWriter<'_> {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        let full = {
            let mut pending = self.batch.pending();
            pending.extend_from_slice(bytes);
            pending.len() >= BATCH_BYTES
        };
        if full || self.urgent {
            self.batch.flush();
        }
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for BatchedStdout {
    type Writer = RecordWriter<'a>;

    fn make_writer(&'a self) -> Self::Writer {
        RecordWriter {
            batch: self,
            urgent: false,
        }
    }

    fn make_writer_for(&'a self, meta: &Metadata<'_>) -> Self::Writer {
        RecordWriter {
            batch: self,
            urgent: *meta.level() <= Level::WARN,
        }
    }
}
