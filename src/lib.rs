//! tokenmint mints short-lived Twilio Access Tokens for callers that have proven who they are.
//!
//! A request flows straight down the modules:
//! - [`http`] extracts the app and the client's fields (axum lives only here);
//! - [`auth`] verifies the caller and yields a [`auth::Principal`];
//! - [`policy`] decides, purely, what that caller may receive ([`policy::MintPlan`]);
//! - [`twilio`] encodes and signs the Access Token, knowing nothing of HTTP or configuration;
//! - [`audit`] records the outcome.
//!
//! [`config`] parses the configuration once into these modules' types; [`runtime`] holds the
//! result with live authenticators, swappable as a whole; [`cli`] and [`telemetry`] wire the
//! binary together.

pub mod audit;
pub mod auth;
pub mod cli;
pub mod config;
pub mod credentials;
pub mod http;
pub mod metrics;
pub mod policy;
pub mod ratelimit;
pub mod runtime;
pub mod server;
pub mod telemetry;
pub mod text;
pub mod twilio;
