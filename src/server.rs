//! The service's lifecycle: bind the listeners, serve, reload on SIGHUP, drain on SIGTERM.
//!
//! Reload re-reads the configuration and every `file:` secret; a valid result replaces the
//! running one atomically (requests in flight finish on the one they started with), an invalid
//! one is logged and counted and the old one keeps serving. A new JWKS URL's keys are fetched
//! before the swap, and a reload that would leave an authenticator without the keys it has now
//! is refused likewise. Reloads run apart from the signal handling, one at a time. Listen
//! addresses, timeouts and log settings only change with a restart.
//!
//! Shutdown: the first SIGTERM (or Ctrl-C) makes readiness fail at once and stops accepting on
//! the public listener; in-flight requests finish within `server.shutdown_grace`. The admin
//! listener keeps answering (`/readyz` 503) until the public one has drained. A second signal
//! exits immediately.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::{Notify, watch};

use crate::config::{self, LogSettings, ServerSettings, Settings, Source};
use crate::credentials::{self, Verdict};
use crate::http::{self, AppState};
use crate::metrics::Metrics;
use crate::runtime::{Runtime, unix_now};

const CREDENTIAL_CHECK_TIMEOUT: Duration = Duration::from_secs(5);

/// Exit status when a second shutdown signal cuts draining short.
const EXIT_INTERRUPTED: i32 = 130;

fn stop_signal(rx: &watch::Receiver<bool>) -> impl Future<Output = ()> + Send + 'static {
    let mut rx = rx.clone();
    async move {
        let _ = rx.wait_for(|stop| *stop).await;
    }
}

/// Runs the service until a shutdown signal, then drains.
pub async fn run(settings: Settings, source: Source) -> std::io::Result<()> {
    if settings.server.allow_literal_secrets {
        tracing::warn!(
            "server.allow_literal_secrets is true: secrets may be written in the configuration file; use env: or file: references in production"
        );
    }
    let server = settings.server.clone();
    let started = ReadAtStart {
        server: server.clone(),
        log: settings.log.clone(),
    };
    let runtime = Runtime::new(settings, Arc::new(Metrics::default()), None);
    runtime.warn_about_old_keys(unix_now() as i64);
    runtime.start();
    let metrics = runtime.metrics.clone();
    let state = AppState::new(runtime);

    if server.check_credentials_on_start {
        state.set_credentials_ok(false);
        let state = state.clone();
        tokio::spawn(async move {
            let runtime = state.runtime();
            let checks =
                credentials::check_accounts(&runtime.accounts, CREDENTIAL_CHECK_TIMEOUT).await;
            let mut ok = true;
            for check in &checks {
                if check.verdict.is_failure() {
                    ok = false;
                    tracing::error!(%check, "Twilio rejected a credential; staying unready");
                } else if check.verdict != Verdict::Accepted {
                    tracing::warn!(%check, "credential could not be confirmed");
                } else {
                    tracing::info!(%check, "credential confirmed");
                }
            }
            state.set_credentials_ok(ok);
        });
    }

    let mut hangup = signal(SignalKind::hangup())?;
    let mut terminate = signal(SignalKind::terminate())?;

    let public = bind(server.listen, "server.listen").await?;
    tracing::info!(address = %public.local_addr()?, "listening");
    let (stop_public, public_stopped) = watch::channel(false);
    let (stop_admin, admin_stopped) = watch::channel(false);
    let (public_router, admin) = match server.admin_listen {
        Some(admin_addr) => {
            let admin = bind(admin_addr, "server.admin_listen").await?;
            tracing::info!(address = %admin.local_addr()?, "admin listening");
            let token_router = http::token_router(state.clone());
            let ops_router = http::ops_router(state.clone());
            let finish = |router| http::finish(router, server.request_timeout, metrics.clone());
            (finish(token_router), Some((admin, finish(ops_router))))
        }
        None => (http::router(state.clone()), None),
    };
    let mut public_task = tokio::spawn(http::serve(
        public,
        public_router,
        server.header_read_timeout,
        stop_signal(&public_stopped),
    ));
    let admin_task = admin.map(|(listener, router)| {
        tokio::spawn(http::serve(
            listener,
            router,
            server.header_read_timeout,
            stop_signal(&admin_stopped),
        ))
    });

    let reloads = spawn_reloader(state.clone(), source, started);
    loop {
        tokio::select! {
            _ = hangup.recv() => reloads.notify_one(),
            _ = terminate.recv() => break,
            _ = tokio::signal::ctrl_c() => break,
            result = &mut public_task => {
                return result.map_err(std::io::Error::other)?;
            }
        }
    }

    tracing::info!("shutdown requested: readiness now fails, finishing in-flight requests");
    state.begin_shutdown();
    let _ = stop_public.send(true);
    tokio::spawn(async move {
        tokio::select! {
            _ = terminate.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
        tracing::warn!("second shutdown signal: exiting without waiting for in-flight requests");
        crate::telemetry::stdout().flush();
        std::process::exit(EXIT_INTERRUPTED);
    });
    match tokio::time::timeout(server.shutdown_grace, &mut public_task).await {
        Ok(result) => result.map_err(std::io::Error::other)??,
        Err(_) => tracing::warn!("shutdown grace period over; closing remaining connections"),
    }
    let _ = stop_admin.send(true);
    if let Some(task) = admin_task {
        let _ = tokio::time::timeout(Duration::from_secs(1), task).await;
    }
    tracing::info!("stopped");
    Ok(())
}

/// Runs reloads one at a time, apart from the signal loop, so that a reload stuck on a secret
/// file (a hung mount) or waiting for a new key set cannot hold up shutdown. SIGHUPs that
/// arrive during a reload make one more after it.
fn spawn_reloader(state: AppState, source: Source, started: ReadAtStart) -> Arc<Notify> {
    let requested = Arc::new(Notify::new());
    let notified = requested.clone();
    tokio::spawn(async move {
        loop {
            notified.notified().await;
            let (task_state, source, started) = (state.clone(), source.clone(), started.clone());
            // In a task of its own, so that a reload that panics fails alone, not every later one.
            let reloading =
                tokio::spawn(async move { reload(&task_state, &source, &started).await });
            if let Err(error) = reloading.await {
                state.runtime().metrics.config_reload(false);
                tracing::error!(%error, "configuration reload failed");
            }
        }
    });
    requested
}

/// Binds `addr`; an error names the address and the setting it came from.
async fn bind(addr: SocketAddr, setting: &str) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await.map_err(|error| {
        std::io::Error::new(
            error.kind(),
            format!("cannot listen on {addr} ({setting}): {error}"),
        )
    })
}

/// The settings read only at start, to warn about changes a reload cannot apply.
#[derive(Clone)]
struct ReadAtStart {
    server: ServerSettings,
    log: LogSettings,
}

impl ReadAtStart {
    /// The key paths of the settings `next` changes that only a restart applies.
    fn changed(&self, next: &Settings) -> Vec<&'static str> {
        let (was, now) = (&self.server, &next.server);
        [
            ("server.listen", was.listen != now.listen),
            ("server.admin_listen", was.admin_listen != now.admin_listen),
            (
                "server.request_timeout",
                was.request_timeout != now.request_timeout,
            ),
            (
                "server.header_read_timeout",
                was.header_read_timeout != now.header_read_timeout,
            ),
            (
                "server.shutdown_grace",
                was.shutdown_grace != now.shutdown_grace,
            ),
            ("log.level", self.log.level != next.log.level),
            ("log.format", self.log.format != next.log.format),
        ]
        .into_iter()
        .filter_map(|(path, changed)| changed.then_some(path))
        .collect()
    }
}

/// Re-reads the configuration and swaps it in when valid.
async fn reload(state: &AppState, source: &Source, started: &ReadAtStart) {
    let current = state.runtime();
    let loading = source.clone();
    let loaded = tokio::task::spawn_blocking(move || config::load(&loading)).await;
    let settings = match loaded {
        Ok(Ok(settings)) => settings,
        Ok(Err(error)) => {
            current.metrics.config_reload(false);
            for problem in &error.problems {
                tracing::error!(
                    path = %problem.path,
                    problem = %problem.message,
                    "configuration reload refused; the running configuration stays in force"
                );
            }
            return;
        }
        Err(join_error) => {
            current.metrics.config_reload(false);
            tracing::error!(error = %join_error, "configuration reload failed");
            return;
        }
    };
    let restart_only = started.changed(&settings);
    let next = Runtime::new(settings, current.metrics.clone(), Some(&current));
    next.warn_about_old_keys(unix_now() as i64);
    // An authenticator with a new JWKS URL starts without keys: they are fetched while the
    // running configuration keeps serving, and a reload without them is refused, so that no
    // caller is turned away for the reload's sake.
    next.load_keys().await;
    let without_keys: Vec<&str> = next
        .unready_authenticators()
        .filter(|name| {
            // Unless the one it replaces had no keys either: the reload takes nothing away.
            let replaced = current.authenticators.get(*name);
            replaced.is_none_or(|old| old.is_ready())
        })
        .collect();
    if !without_keys.is_empty() {
        current.metrics.config_reload(false);
        for name in without_keys {
            tracing::error!(
                auth = name,
                "configuration reload refused: the authenticator's key set could not be fetched; the running configuration stays in force"
            );
        }
        return;
    }
    for path in restart_only {
        tracing::warn!(path, "setting changed; it takes effect at the next restart");
    }
    next.start();
    state.replace(next);
    current.metrics.config_reload(true);
    tracing::info!("configuration reloaded");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::LogFormat;

    #[test]
    fn settings_read_only_at_start_are_named_when_a_reload_changes_them() {
        let demo = || config::load(&Source::default()).unwrap();
        let at_start = demo();
        let started = ReadAtStart {
            server: at_start.server.clone(),
            log: at_start.log.clone(),
        };
        assert_eq!(started.changed(&demo()), Vec::<&str>::new());

        let mut next = demo();
        next.log.level = "debug".into();
        next.log.format = match at_start.log.format {
            LogFormat::Json => LogFormat::Pretty,
            LogFormat::Pretty => LogFormat::Json,
        };
        next.server.shutdown_grace += Duration::from_secs(1);
        next.server.listen.set_port(next.server.listen.port() + 1);
        assert_eq!(
            started.changed(&next),
            [
                "server.listen",
                "server.shutdown_grace",
                "log.level",
                "log.format"
            ]
        );
    }
}
