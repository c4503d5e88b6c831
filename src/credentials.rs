//! The online check of an account's credentials against Twilio's REST API: for every signing key
//! (API Key SID and secret) and every Auth Token, an authenticated
//! `GET {api_base}/2010-04-01/Accounts/{AccountSid}.json`. A key that Twilio rejects would
//! mint tokens Twilio refuses; finding out at deploy time beats finding out from users.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};

use crate::config::Account;

/// What Twilio said about one credential.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Accepted,
    /// 401: wrong secret, revoked or unknown key.
    Rejected {
        twilio_code: Option<u64>,
    },
    /// 404: the credential is valid but not for this account.
    WrongAccount {
        twilio_code: Option<u64>,
    },
    /// Any other status.
    Unexpected {
        status: u16,
        twilio_code: Option<u64>,
    },
    /// No answer: connection refused, DNS, timeout.
    Unreachable {
        reason: &'static str,
    },
}

impl Verdict {
    /// Whether this credential would fail in production.
    pub fn is_failure(&self) -> bool {
        matches!(
            self,
            Verdict::Rejected { .. } | Verdict::WrongAccount { .. }
        )
    }
}

fn code_suffix(code: &Option<u64>) -> String {
    code.map(|c| format!(", Twilio error {c}"))
        .unwrap_or_default()
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Verdict::Accepted => f.write_str("accepted"),
            Verdict::Rejected { twilio_code } => {
                write!(f, "rejected (401{})", code_suffix(twilio_code))
            }
            Verdict::WrongAccount { twilio_code } => {
                write!(f, "wrong account (404{})", code_suffix(twilio_code))
            }
            Verdict::Unexpected {
                status,
                twilio_code,
            } => write!(
                f,
                "unexpected answer ({status}{})",
                code_suffix(twilio_code)
            ),
            Verdict::Unreachable { reason } => write!(f, "unreachable ({reason})"),
        }
    }
}

/// One credential's result.
#[derive(Debug, Clone)]
pub struct Check {
    pub account: String,
    /// `signing key SK…` or `auth token #N` (never the secret).
    pub credential: String,
    pub verdict: Verdict,
}

impl fmt::Display for Check {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "account {}: {}: {}",
            self.account, self.credential, self.verdict
        )
    }
}

/// Checks every credential of every account, one request each, with `timeout` per request.
pub async fn check_accounts(
    accounts: &BTreeMap<String, Arc<Account>>,
    timeout: Duration,
) -> Vec<Check> {
    // Without a client every credential is reported unreachable, as without a network.
    let client = reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("tokenmint/", env!("CARGO_PKG_VERSION")))
        .build()
        .ok();
    let client = client.as_ref();
    let mut checks = Vec::new();
    for account in accounts.values() {
        let account_sid = account.signer().account_sid().to_string();
        let url = format!(
            "{}/2010-04-01/Accounts/{account_sid}.json",
            account.api_base
        );
        for key in &account.keys {
            let user = key.signer.key_sid().to_string();
            checks.push(Check {
                account: account.name.clone(),
                credential: format!("signing key {user}"),
                verdict: probe(client, &url, &user, &key.secret).await,
            });
        }
        for (i, token) in account.auth_tokens.iter().enumerate() {
            checks.push(Check {
                account: account.name.clone(),
                credential: format!("auth token #{}", i + 1),
                verdict: probe(client, &url, &account_sid, token).await,
            });
        }
    }
    checks
}

async fn probe(
    client: Option<&reqwest::Client>,
    url: &str,
    user: &str,
    secret: &SecretString,
) -> Verdict {
    let Some(client) = client else {
        return Verdict::Unreachable {
            reason: "no HTTP client",
        };
    };
    let response = client
        .get(url)
        .basic_auth(user, Some(secret.expose_secret()))
        .send()
        .await;
    let response = match response {
        Ok(response) => response,
        Err(error) if error.is_timeout() => return Verdict::Unreachable { reason: "timeout" },
        Err(error) if error.is_connect() => {
            return Verdict::Unreachable {
                reason: "connection failed",
            };
        }
        Err(_) => {
            return Verdict::Unreachable {
                reason: "request failed",
            };
        }
    };
    let status = response.status().as_u16();
    // Twilio's error bodies carry a numeric `code` (20003, 20404, …).
    let twilio_code = response
        .json::<serde_json::Value>()
        .await
        .ok()
        .and_then(|body| body.get("code")?.as_u64());
    match status {
        200 => Verdict::Accepted,
        401 => Verdict::Rejected { twilio_code },
        404 => Verdict::WrongAccount { twilio_code },
        _ => Verdict::Unexpected {
            status,
            twilio_code,
        },
    }
}
