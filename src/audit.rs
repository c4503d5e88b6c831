//! The audit trail: one structured event per mint and per denial, on the `tokenmint::audit`
//! target so operators can route it separately. Never the token, a credential or a secret.

use std::net::IpAddr;

use crate::runtime::Minted;
use crate::text::truncate;

pub const TARGET: &str = "tokenmint::audit";

/// Where a request came from, for the audit record.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    pub app: &'a str,
    pub request_id: &'a str,
    /// The client's address (see `http::client`), when known.
    pub client: Option<IpAddr>,
}

pub fn minted(ctx: &Context<'_>, minted: &Minted) {
    let grants: Vec<&str> = minted.kinds.iter().map(|k| k.as_str()).collect();
    // Text fields as `&str`, not `%` (Display): the JSON formatter writes those directly.
    tracing::info!(
        target: TARGET,
        event = "token_minted",
        app = ctx.app,
        identity = minted.identity.as_str(),
        grants = grants.join(",").as_str(),
        ttl = minted.ttl_secs,
        jti = minted.jti.as_str(),
        key_sid = minted.key_sid.as_str(),
        request_id = ctx.request_id,
        client = ctx.client.map(tracing::field::display),
        "token minted"
    );
}

/// A webhook signature check: the account, the host of the URL and `valid`, `invalid` or
/// `unknown_account`. Never the signature, the parameters or the body.
pub fn webhook_checked(account: &str, host: &str, outcome: &str) {
    tracing::info!(
        target: TARGET,
        event = "webhook_checked",
        account = truncate(account).as_ref(),
        host = truncate(host).as_ref(),
        outcome,
        "webhook signature checked"
    );
}

pub fn denied(ctx: &Context<'_>, code: &str, reason: &str) {
    tracing::info!(
        target: TARGET,
        event = "token_denied",
        // The app of an unknown_app denial is whatever the client put in the path.
        app = truncate(ctx.app).as_ref(),
        code,
        reason,
        request_id = ctx.request_id,
        client = ctx.client.map(tracing::field::display),
        "token denied"
    );
}
