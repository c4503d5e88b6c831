//! Twilio's side of the contract, as a pure library: SIDs, Access Token grants and the signed
//! Access Token itself. Nothing here knows about HTTP, configuration files or callers; given the
//! same inputs it produces the same bytes.

pub mod access_token;
pub mod grants;
pub mod sid;
pub mod webhook;

pub use access_token::{AccessToken, MAX_IDENTITY_BYTES, MAX_TTL_SECS, SignError, Signer};
pub use grants::{ChatGrant, Grants, SyncGrant, TaskRouterGrant, VideoGrant, VoiceGrant};
pub use sid::{Sid, SidError};
pub use webhook::{WebhookRequest, WebhookVerifier};
