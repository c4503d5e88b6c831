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

/// Lowercase hex SHA-256 of `bytes`, as Twilio writes a webhook's `bodySHA256`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use aws_lc_rs::digest;

    const HEX: &[u8; 16] = b"0123456789abcdef";
    let digest = digest::digest(&digest::SHA256, bytes);
    let mut hex = String::with_capacity(2 * digest.as_ref().len());
    for byte in digest.as_ref() {
        hex.push(char::from(HEX[usize::from(byte >> 4)]));
        hex.push(char::from(HEX[usize::from(byte & 0x0f)]));
    }
    hex
}
