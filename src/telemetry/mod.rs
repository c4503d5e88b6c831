//! Logging set-up. Building a subscriber is separate from installing it, so tests and the
//! offline commands can choose where logs go.

pub(crate) mod json;

use std::io::{self, Write};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
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
        LogFormat::Json => Box::new(
            builder
                .with_ansi(false)
                .event_format(json::JsonLines)
                .finish(),
        ),
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

/// A log destination written in batches: one `write(2)` per 32 KiB of records or per 100 ms
/// instead of one per record, which under load cost more than formatting the record did.
/// Records keep their order; a warning or an error is written at once, with everything before
/// it. [`Batched::flush`] empties the buffer (at exit); a process killed with SIGKILL loses at
/// most the last 100 ms of `info` records.
pub struct Batched<W> {
    shared: Arc<Batch<W>>,
}

impl<W> Clone for Batched<W> {
    fn clone(&self) -> Self {
        Self {
            shared: self.shared.clone(),
        }
    }
}

struct Batch<W> {
    pending: Mutex<Vec<u8>>,
    /// Locked while a batch is written, so batches leave in the order they were taken.
    out: Mutex<W>,
}

/// The service's standard output, shared by the `serve` command and its exit paths.
pub fn stdout() -> &'static Batched<io::Stdout> {
    static STDOUT: OnceLock<Batched<io::Stdout>> = OnceLock::new();
    STDOUT.get_or_init(|| Batched::new(io::stdout()))
}

impl<W: Write + Send + 'static> Batched<W> {
    pub fn new(out: W) -> Self {
        Self {
            shared: Arc::new(Batch {
                pending: Mutex::new(Vec::new()),
                out: Mutex::new(out),
            }),
        }
    }

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
        let mut out = self
            .shared
            .out
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let batch = std::mem::take(&mut *self.pending());
        if !batch.is_empty() {
            // Nowhere to report a failed log write; the records are dropped, as with stdout.
            let _ = out.write_all(&batch).and_then(|()| out.flush());
        }
    }

    fn pending(&self) -> MutexGuard<'_, Vec<u8>> {
        self.shared
            .pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

/// The writer of one record.
pub struct RecordWriter<'a, W> {
    batch: &'a Batched<W>,
    urgent: bool,
}

impl<W: Write + Send + 'static> Write for RecordWriter<'_, W> {
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

impl<'a, W: Write + Send + 'static> MakeWriter<'a> for Batched<W> {
    type Writer = RecordWriter<'a, W>;

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

#[cfg(test)]
mod tests {
    use super::*;

    fn written(batch: &Batched<Vec<u8>>) -> String {
        String::from_utf8(batch.shared.out.lock().unwrap().clone()).unwrap()
    }

    /// Runs `log` with a plain-text subscriber writing to `batch`.
    fn logging(batch: &Batched<Vec<u8>>, log: impl FnOnce()) {
        let subscriber = tracing_subscriber::fmt()
            .with_writer(batch.clone())
            .with_ansi(false)
            .finish();
        tracing::subscriber::with_default(subscriber, log);
    }

    #[test]
    fn info_records_wait_for_a_flush_and_come_out_in_order() {
        let batch = Batched::new(Vec::new());
        logging(&batch, || {
            tracing::info!("first");
            tracing::info!("second");
        });
        assert_eq!(written(&batch), "");
        batch.flush();
        let out = written(&batch);
        assert!(
            out.find("first").unwrap() < out.find("second").unwrap(),
            "{out}"
        );
        batch.flush();
        assert_eq!(written(&batch), out, "a second flush writes nothing again");
    }

    #[test]
    fn a_warning_goes_out_at_once_with_everything_before_it() {
        let batch = Batched::new(Vec::new());
        logging(&batch, || {
            tracing::info!("before");
            tracing::warn!("trouble");
        });
        let out = written(&batch);
        assert!(
            out.find("before").unwrap() < out.find("trouble").unwrap(),
            "{out}"
        );
    }

    #[test]
    fn a_full_batch_is_written_without_waiting() {
        let batch = Batched::new(Vec::new());
        let record = "x".repeat(1000);
        logging(&batch, || {
            for _ in 0..(BATCH_BYTES / 1000 + 1) {
                tracing::info!("{record}");
            }
        });
        assert!(written(&batch).len() >= BATCH_BYTES);
    }
}
