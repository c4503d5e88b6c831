//! Verification of Twilio webhook signatures (`X-Twilio-Signature`), so a handler can tell a
//! request Twilio sent from one anybody could send to the same public URL.
//!
//! Pure: the caller hands over the URL Twilio requested, the decoded form parameters or the raw
//! body, and the two signature headers; nothing here reads configuration, the network or the
//! clock. The caller chooses the [`Payload`] from the request's `Content-Type`.
//!
//! Choices that may look odd:
//! - The URL is never parsed into a `url::Url` and written back: that re-encodes the query and
//!   drops default ports, while Twilio signed the bytes it requested. Only the port in the
//!   authority is cut out or added, because Twilio's signer is inconsistent about ports.
//! - Non-form bodies are covered indirectly: Twilio puts their SHA-256 into the `bodySHA256`
//!   query parameter and signs the URL alone, so both the signature and the hash must match.
//! - Empty secrets never count as credentials (anyone can compute an HMAC with an empty key),
//!   and no credentials at all means every request is refused.
//! - Once the settings header announces the shared-key scheme, Auth Tokens are not tried: the
//!   header says which key signed, and guessing among the others would only widen what a forger
//!   may hit.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;
use std::ops::Range;

use aws_lc_rs::hmac;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use secrecy::{ExposeSecret, SecretString};
use subtle::ConstantTimeEq;

/// The query parameter in which Twilio sends the SHA-256 of a non-form body.
pub const BODY_HASH_PARAM: &str = "bodySHA256";

/// The host of the URL Twilio requested, which is always a full URL: `None` for a path or
/// anything else no webhook can have been signed for. (Parsed only to be read, never to be
/// signed.)
pub fn requested_host(url: &str) -> Option<String> {
    url::Url::parse(url).ok()?.host_str().map(str::to_owned)
}

/// The only algorithm the `X-Twilio-Webhooks-Signature-Settings` scheme may name.
const SHARED_KEY_ALGORITHM: &str = "HMAC_SHA256";

/// What Twilio sent in the request body, as the signature sees it.
#[derive(Debug, Clone, Copy)]
pub enum Payload<'a> {
    /// GET, or a POST without a body: Twilio signs the URL alone. When the URL carries
    /// `bodySHA256`, it must be the hash of an empty body.
    Empty,
    /// `application/x-www-form-urlencoded`, decoded into `(name, value)` pairs in any order;
    /// names may repeat.
    Form(&'a [(String, String)]),
    /// Any other content type (JSON, …), byte for byte as received; checked against the URL's
    /// `bodySHA256`, which must be present.
    Raw(&'a [u8]),
}

/// One webhook request, reduced to what its signature covers.
#[derive(Debug, Clone, Copy)]
pub struct WebhookRequest<'a> {
    /// The full public URL Twilio requested: scheme, host, optional port, path and query exactly
    /// as sent (behind a proxy, the public URL, not the one the proxy forwarded to).
    pub url: &'a str,
    pub payload: Payload<'a>,
    /// The `X-Twilio-Signature` header: standard base64 with padding.
    pub signature: &'a str,
    /// The `X-Twilio-Webhooks-Signature-Settings` header, if the request carried one.
    pub signature_settings: Option<&'a str>,
}

/// Why a request was refused. Every message is safe to log or return: none carries a secret or
/// anything taken from the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Invalid {
    #[error("the request carries no X-Twilio-Signature")]
    MissingSignature,
    #[error("the signature does not match the request")]
    BadSignature,
    #[error("the body does not match the bodySHA256 the URL was signed with")]
    BodyHashMismatch,
    #[error("the request has a body but its URL carries no bodySHA256")]
    MissingBodyHash,
    #[error("the signature settings name a key that is not configured")]
    UnknownSigningKey,
    #[error("the signature settings name an unsupported algorithm")]
    UnsupportedAlgorithm,
    #[error("the signature settings header is malformed")]
    MalformedSettings,
    #[error("no credentials are configured to check webhook signatures")]
    NoCredentials,
}

/// The credentials of one account, ready to check webhooks: HMAC keys built once, so the
/// secrets themselves are not kept and never printed.
#[derive(Clone)]
pub struct WebhookVerifier {
    /// HMAC-SHA1 keys from the account Auth Tokens, primary first; any may match.
    auth_tokens: Vec<hmac::Key>,
    /// HMAC-SHA256 keys by the id the settings header names.
    shared_keys: BTreeMap<String, hmac::Key>,
}

impl WebhookVerifier {
    /// `auth_tokens` are the account's Auth Tokens (primary and, during rotation, secondary);
    /// `shared_keys` maps a key id to its secret for the HMAC-SHA256 scheme. Empty secrets are
    /// left out.
    pub fn new(auth_tokens: &[SecretString], shared_keys: &BTreeMap<String, SecretString>) -> Self {
        let key = |algorithm, secret: &SecretString| {
            let secret = secret.expose_secret();
            (!secret.is_empty()).then(|| hmac::Key::new(algorithm, secret.as_bytes()))
        };
        Self {
            auth_tokens: auth_tokens
                .iter()
                .filter_map(|token| key(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, token))
                .collect(),
            shared_keys: shared_keys
                .iter()
                .filter_map(|(id, secret)| Some((id.clone(), key(hmac::HMAC_SHA256, secret)?)))
                .collect(),
        }
    }

    /// `Ok` only if the signature matches under one of the candidate keys for one of the URL's
    /// port variants, and a raw body matches the URL's `bodySHA256`.
    pub fn verify(&self, request: &WebhookRequest<'_>) -> Result<(), Invalid> {
        let signature = request.signature.trim();
        if signature.is_empty() {
            return Err(Invalid::MissingSignature);
        }
        // An empty header is no header, as in Twilio's own libraries (a proxy that forwards an
        // absent header as "" must not make every signature fail).
        let settings = request.signature_settings.map(str::trim);
        let keys: &[hmac::Key] = match settings.filter(|h| !h.is_empty()) {
            None => &self.auth_tokens,
            Some(header) => {
                let settings = SignatureSettings::parse(header)?;
                if !settings
                    .algorithm
                    .eq_ignore_ascii_case(SHARED_KEY_ALGORITHM)
                {
                    return Err(Invalid::UnsupportedAlgorithm);
                }
                let key = self
                    .shared_keys
                    .get(settings.key_id)
                    .ok_or(Invalid::UnknownSigningKey)?;
                std::slice::from_ref(key)
            }
        };
        if keys.is_empty() {
            return Err(Invalid::NoCredentials);
        }
        // A URL with `bodySHA256` is signed alone and names its body by that hash, so the body
        // is checked whenever the URL names one: a request given without a body stands for an
        // empty one, and form params cannot be that body. Otherwise the signature would vouch
        // for any body, or none.
        let body = match (request.payload, query_param(request.url, BODY_HASH_PARAM)) {
            (Payload::Raw(body), Some(claimed)) => Some((body, claimed)),
            (Payload::Raw(_), None) => return Err(Invalid::MissingBodyHash),
            (Payload::Empty, Some(claimed)) => Some((&b""[..], claimed)),
            (Payload::Form(_), Some(_)) => return Err(Invalid::BodyHashMismatch),
            (Payload::Empty | Payload::Form(_), None) => None,
        };
        // Decoding is strict (padding required, no stray bits), so this equals comparing the
        // base64 text; the comparison itself is aws-lc's constant-time one.
        let tag = STANDARD
            .decode(signature)
            .map_err(|_| Invalid::BadSignature)?;
        let mut params = String::new();
        if let Payload::Form(form) = request.payload {
            append_params(&mut params, form);
        }
        let signed = url_variants(request.url).iter().any(|url| {
            let data = [url.as_ref(), params.as_str()].concat();
            keys.iter()
                .any(|key| hmac::verify(key, data.as_bytes(), &tag).is_ok())
        });
        if !signed {
            return Err(Invalid::BadSignature);
        }
        if let Some((body, claimed)) = body {
            let actual = super::sha256_hex(body);
            let claimed = claimed.to_ascii_lowercase();
            if !bool::from(actual.as_bytes().ct_eq(claimed.as_bytes())) {
                return Err(Invalid::BodyHashMismatch);
            }
        }
        Ok(())
    }
}

impl fmt::Debug for WebhookVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebhookVerifier")
            .field(
                "auth_tokens",
                &format_args!("[{} redacted]", self.auth_tokens.len()),
            )
            .field("shared_keys", &self.shared_keys.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// The string Twilio signs: `url` exactly as given, then for each parameter name in byte order
/// `name + value`, a repeated name contributing each distinct value in byte order. For a GET or a
/// non-form body pass no parameters.
pub fn string_to_sign(url: &str, params: &[(String, String)]) -> String {
    let mut out = String::from(url);
    append_params(&mut out, params);
    out
}

fn append_params(out: &mut String, params: &[(String, String)]) {
    // Sorting the pairs orders names, then values within a name; `dedup` keeps distinct values.
    let mut pairs: Vec<(&str, &str)> = params
        .iter()
        .map(|(name, value)| (name.as_str(), value.as_str()))
        .collect();
    pairs.sort_unstable();
    pairs.dedup();
    for (name, value) in pairs {
        out.push_str(name);
        out.push_str(value);
    }
}

/// `X-Twilio-Webhooks-Signature-Settings`: comma-separated `name=value` fields in any order,
/// spaces allowed around each part. Fields other than `key` and `algorithm` are ignored: they
/// cannot make a forged signature match.
#[derive(Debug, PartialEq, Eq)]
struct SignatureSettings<'h> {
    key_id: &'h str,
    algorithm: &'h str,
}

impl<'h> SignatureSettings<'h> {
    fn parse(header: &'h str) -> Result<Self, Invalid> {
        let mut key_id = None;
        let mut algorithm = None;
        for field in header.split(',').map(str::trim).filter(|f| !f.is_empty()) {
            let (name, value) = field.split_once('=').ok_or(Invalid::MalformedSettings)?;
            let (name, value) = (name.trim(), value.trim());
            let slot = if name.eq_ignore_ascii_case("key") {
                &mut key_id
            } else if name.eq_ignore_ascii_case("algorithm") {
                &mut algorithm
            } else {
                continue;
            };
            if value.is_empty() || slot.replace(value).is_some() {
                return Err(Invalid::MalformedSettings);
            }
        }
        match (key_id, algorithm) {
            (Some(key_id), Some(algorithm)) => Ok(Self { key_id, algorithm }),
            _ => Err(Invalid::MalformedSettings),
        }
    }
}

/// The first value of query parameter `name`, percent-decoded.
fn query_param<'u>(url: &'u str, name: &str) -> Option<Cow<'u, str>> {
    let before_fragment = url.split_once('#').map_or(url, |(before, _)| before);
    let (_, query) = before_fragment.split_once('?')?;
    form_urlencoded::parse(query.as_bytes())
        .find(|(n, _)| n == name)
        .map(|(_, value)| value)
}

/// The URLs a signature may have been computed over: `url` as given, then without its explicit
/// port, or with the scheme's default port added. Everything but the authority is kept byte for
/// byte; a URL whose authority cannot be read is only tried as given.
fn url_variants(url: &str) -> Vec<Cow<'_, str>> {
    let mut variants = vec![Cow::Borrowed(url)];
    let Some((scheme, port)) = port_span(url) else {
        return variants;
    };
    if !port.is_empty() {
        variants.push(Cow::Owned([&url[..port.start], &url[port.end..]].concat()));
    } else if let Some(default) = default_port(scheme) {
        variants.push(Cow::Owned(
            [&url[..port.start], default, &url[port.end..]].concat(),
        ));
    }
    variants
}

fn default_port(scheme: &str) -> Option<&'static str> {
    if scheme.eq_ignore_ascii_case("https") {
        Some(":443")
    } else if scheme.eq_ignore_ascii_case("http") {
        Some(":80")
    } else {
        None
    }
}

/// The scheme, and the byte range of `:port` in `url` (empty, at the end of the host, when there
/// is no port). `None` when the URL has no `scheme://host` or its port is not a number.
fn port_span(url: &str) -> Option<(&str, Range<usize>)> {
    let (scheme, rest) = url.split_once("://")?;
    let scheme_ok = scheme.starts_with(|c: char| c.is_ascii_alphabetic())
        && scheme
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b));
    if !scheme_ok {
        return None;
    }
    let authority_start = scheme.len() + "://".len();
    let authority_len = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..authority_len];
    // Userinfo may hold colons of its own; the host starts after the last `@`.
    let host_start = authority.rfind('@').map_or(0, |at| at + 1);
    let host_port = &authority[host_start..];
    let host_len = if host_port.starts_with('[') {
        // IPv6 literal: colons inside the brackets are not a port.
        let close = host_port.find(']')? + 1;
        match host_port[close..].chars().next() {
            None | Some(':') => close,
            Some(_) => return None,
        }
    } else {
        host_port.find(':').unwrap_or(host_port.len())
    };
    let port_digits = host_port.get(host_len + 1..).unwrap_or("");
    if host_len == 0 || !port_digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let port_start = authority_start + host_start + host_len;
    Some((scheme, port_start..authority_start + authority_len))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The legacy `X-Twilio-Signature`: HMAC-SHA1 of `data` keyed with an Auth Token, base64.
    fn sign_sha1(auth_token: &SecretString, data: &str) -> String {
        sign(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, auth_token, data)
    }

    /// The shared-key scheme's signature: HMAC-SHA256 of `data`, base64.
    fn sign_sha256(shared_key: &SecretString, data: &str) -> String {
        sign(hmac::HMAC_SHA256, shared_key, data)
    }

    fn sign(algorithm: hmac::Algorithm, secret: &SecretString, data: &str) -> String {
        let key = hmac::Key::new(algorithm, secret.expose_secret().as_bytes());
        STANDARD.encode(hmac::sign(&key, data.as_bytes()))
    }

    fn verify(
        request: &WebhookRequest<'_>,
        auth_tokens: &[SecretString],
        shared_keys: &BTreeMap<String, SecretString>,
    ) -> Result<(), Invalid> {
        WebhookVerifier::new(auth_tokens, shared_keys).verify(request)
    }

    const AUTH_TOKEN: &str = "12345";
    const URL: &str = "https://mycompany.com/myapp.php?foo=1&bar=2";
    const URL_443: &str = "https://mycompany.com:443/myapp.php?foo=1&bar=2";
    const STRING_B: &str = "https://mycompany.com/myapp.php?foo=1&bar=2CallSidCA1234567890ABCDECaller+12349013030Digits1234From+12349013030To+18005551212";
    const SIGNATURE_B: &str = "0/KCTR6DLpKmkAf8muzZqo1nDgQ=";
    const SIGNATURE_B_443: &str = "EpDEmp1PyjDYp77YxYU3GILBWzE=";
    const SIGNATURE_B_NO_PARAMS: &str = "zYQTYrRWXE7LtzbG4PfP7/bkkGo=";
    const SIGNATURE_B_REPEATED: &str = "/WQU5I9XBvIjCJBfqatzgj5wMTY=";
    const SIGNATURE_B_SHA256: &str = "Rmm4Vzj+Ky7JGoWXMCsZDZuHDszLr9xvdbvitrDr4/M=";
    const BODY_C: &[u8] = br#"{"property": "value", "boolean": true}"#;
    const HASH_C: &str = "0a1ff7634d9ab3b95db5c9a2dfe9416e41502b283a80c7cf19632632f96e6620";
    const URL_C: &str = "https://mycompany.com/myapp.php?bodySHA256=0a1ff7634d9ab3b95db5c9a2dfe9416e41502b283a80c7cf19632632f96e6620";
    const SIGNATURE_C: &str = "y77kIzt2vzLz71DgmJGsen2scGs=";

    fn params_b() -> Vec<(String, String)> {
        [
            ("CallSid", "CA1234567890ABCDE"),
            ("Caller", "+12349013030"),
            ("Digits", "1234"),
            ("From", "+12349013030"),
            ("To", "+18005551212"),
        ]
        .into_iter()
        .map(|(name, value)| (name.to_owned(), value.to_owned()))
        .collect()
    }

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
            .collect()
    }

    fn tokens(list: &[&str]) -> Vec<SecretString> {
        list.iter().map(|t| SecretString::from(*t)).collect()
    }

    fn no_shared_keys() -> BTreeMap<String, SecretString> {
        BTreeMap::new()
    }

    fn form<'a>(
        url: &'a str,
        params: &'a [(String, String)],
        signature: &'a str,
    ) -> WebhookRequest<'a> {
        WebhookRequest {
            url,
            payload: Payload::Form(params),
            signature,
            signature_settings: None,
        }
    }

    fn check(request: &WebhookRequest<'_>) -> Result<(), Invalid> {
        verify(request, &tokens(&[AUTH_TOKEN]), &no_shared_keys())
    }

    #[test]
    fn string_to_sign_matches_vector_b() {
        assert_eq!(string_to_sign(URL, &params_b()), STRING_B);
    }

    #[test]
    fn string_to_sign_sorts_names_whatever_order_they_arrive_in() {
        let mut reversed = params_b();
        reversed.reverse();
        assert_eq!(string_to_sign(URL, &reversed), STRING_B);
    }

    #[test]
    fn sha1_signature_matches_vector_b() {
        assert_eq!(
            sign_sha1(&SecretString::from(AUTH_TOKEN), STRING_B),
            SIGNATURE_B
        );
    }

    #[test]
    fn form_post_with_vector_b_signature_is_valid() {
        let params = params_b();
        assert_eq!(check(&form(URL, &params, SIGNATURE_B)), Ok(()));
    }

    #[test]
    fn changing_digits_to_9999_invalidates_the_signature() {
        let mut params = params_b();
        for (name, value) in &mut params {
            if name == "Digits" {
                *value = "9999".into();
            }
        }
        assert_eq!(
            check(&form(URL, &params, SIGNATURE_B)),
            Err(Invalid::BadSignature)
        );
    }

    #[test]
    fn signature_over_the_url_with_443_matches_vector_b() {
        let data = string_to_sign(URL_443, &params_b());
        assert_eq!(
            sign_sha1(&SecretString::from(AUTH_TOKEN), &data),
            SIGNATURE_B_443
        );
    }

    #[test]
    fn signature_over_the_url_with_443_validates_against_the_portless_url() {
        let params = params_b();
        assert_eq!(check(&form(URL, &params, SIGNATURE_B_443)), Ok(()));
    }

    #[test]
    fn signature_over_the_portless_url_validates_when_the_request_url_has_443() {
        let params = params_b();
        assert_eq!(check(&form(URL_443, &params, SIGNATURE_B)), Ok(()));
    }

    #[test]
    fn http_signatures_validate_with_or_without_port_80() {
        let params = params_b();
        let token = SecretString::from(AUTH_TOKEN);
        let plain = "http://mycompany.com/myapp.php?foo=1&bar=2";
        let with_80 = "http://mycompany.com:80/myapp.php?foo=1&bar=2";
        let over_plain = sign_sha1(&token, &string_to_sign(plain, &params));
        let over_80 = sign_sha1(&token, &string_to_sign(with_80, &params));
        assert_ne!(over_plain, over_80);
        for url in [plain, with_80] {
            for signature in [&over_plain, &over_80] {
                assert_eq!(check(&form(url, &params, signature)), Ok(()), "{url}");
            }
        }
        // 443 is not http's default: a signature over :443 says nothing about an http URL.
        let over_443 = sign_sha1(
            &token,
            &string_to_sign("http://mycompany.com:443/myapp.php?foo=1&bar=2", &params),
        );
        assert_eq!(
            check(&form(plain, &params, &over_443)),
            Err(Invalid::BadSignature)
        );
    }

    #[test]
    fn a_non_default_port_may_be_dropped_but_is_never_swapped_for_the_default() {
        let params = params_b();
        let token = SecretString::from(AUTH_TOKEN);
        let with_8443 = "https://mycompany.com:8443/myapp.php?foo=1&bar=2";
        let over_plain = sign_sha1(&token, &string_to_sign(URL, &params));
        assert_eq!(check(&form(with_8443, &params, &over_plain)), Ok(()));
        let over_443 = sign_sha1(&token, &string_to_sign(URL_443, &params));
        assert_eq!(
            check(&form(with_8443, &params, &over_443)),
            Err(Invalid::BadSignature)
        );
    }

    #[test]
    fn get_without_params_signs_the_url_alone() {
        assert_eq!(string_to_sign(URL, &[]), URL);
        assert_eq!(
            sign_sha1(&SecretString::from(AUTH_TOKEN), URL),
            SIGNATURE_B_NO_PARAMS
        );
        let get = WebhookRequest {
            url: URL,
            payload: Payload::Empty,
            signature: SIGNATURE_B_NO_PARAMS,
            signature_settings: None,
        };
        assert_eq!(check(&get), Ok(()));
        assert_eq!(check(&form(URL, &[], SIGNATURE_B_NO_PARAMS)), Ok(()));
    }

    #[test]
    fn repeated_names_contribute_each_distinct_value_in_order() {
        let params = pairs(&[("Body", "b"), ("Body", "a"), ("Body", "a"), ("From", "+1")]);
        assert_eq!(
            string_to_sign(URL, &params),
            format!("{URL}BodyaBodybFrom+1")
        );
        assert_eq!(check(&form(URL, &params, SIGNATURE_B_REPEATED)), Ok(()));
    }

    #[test]
    fn sha256_signature_matches_vector_b() {
        assert_eq!(
            sign_sha256(&SecretString::from(AUTH_TOKEN), STRING_B),
            SIGNATURE_B_SHA256
        );
    }

    fn shared_keys() -> BTreeMap<String, SecretString> {
        BTreeMap::from([("k1".to_owned(), SecretString::from(AUTH_TOKEN))])
    }

    fn with_settings<'a>(
        params: &'a [(String, String)],
        signature: &'a str,
        settings: &'a str,
    ) -> WebhookRequest<'a> {
        WebhookRequest {
            signature_settings: Some(settings),
            ..form(URL, params, signature)
        }
    }

    #[test]
    fn sha256_signature_validates_with_the_shared_key_the_settings_announce() {
        let params = params_b();
        let request = with_settings(&params, SIGNATURE_B_SHA256, "key=k1,algorithm=HMAC_SHA256");
        assert_eq!(verify(&request, &[], &shared_keys()), Ok(()));
    }

    #[test]
    fn settings_header_tolerates_spaces_and_either_order() {
        let params = params_b();
        for settings in [
            " algorithm = HMAC_SHA256 , key = k1 ",
            "key=k1, algorithm=HMAC_SHA256,",
            "version=1,key=k1,algorithm=hmac_sha256",
        ] {
            let request = with_settings(&params, SIGNATURE_B_SHA256, settings);
            assert_eq!(verify(&request, &[], &shared_keys()), Ok(()), "{settings}");
        }
    }

    #[test]
    fn shared_key_scheme_refuses_unknown_keys_algorithms_and_malformed_settings() {
        let params = params_b();
        let cases = [
            ("key=k2,algorithm=HMAC_SHA256", Invalid::UnknownSigningKey),
            ("key=k1,algorithm=HMAC_SHA1", Invalid::UnsupportedAlgorithm),
            (
                "key=k1,algorithm=HMAC_SHA512",
                Invalid::UnsupportedAlgorithm,
            ),
            ("key=k1", Invalid::MalformedSettings),
            ("algorithm=HMAC_SHA256", Invalid::MalformedSettings),
            (
                "key=k1,key=k2,algorithm=HMAC_SHA256",
                Invalid::MalformedSettings,
            ),
            ("key=,algorithm=HMAC_SHA256", Invalid::MalformedSettings),
            ("k1 HMAC_SHA256", Invalid::MalformedSettings),
            (",", Invalid::MalformedSettings),
        ];
        for (settings, reason) in cases {
            let request = with_settings(&params, SIGNATURE_B_SHA256, settings);
            let tokens = tokens(&[AUTH_TOKEN]);
            assert_eq!(
                verify(&request, &tokens, &shared_keys()),
                Err(reason),
                "{settings}"
            );
        }
    }

    #[test]
    fn an_empty_settings_header_is_no_header() {
        // As Twilio's libraries read it: a proxy may forward an absent header as "".
        let params = params_b();
        let tokens = tokens(&[AUTH_TOKEN]);
        for settings in ["", "  "] {
            let sha1 = with_settings(&params, SIGNATURE_B, settings);
            assert_eq!(
                verify(&sha1, &tokens, &shared_keys()),
                Ok(()),
                "{settings:?}"
            );
            let sha256 = with_settings(&params, SIGNATURE_B_SHA256, settings);
            assert_eq!(
                verify(&sha256, &tokens, &shared_keys()),
                Err(Invalid::BadSignature),
                "{settings:?}"
            );
        }
    }

    #[test]
    fn each_scheme_accepts_only_its_own_signatures() {
        let params = params_b();
        let tokens = tokens(&[AUTH_TOKEN]);
        // A SHA-256 signature without the settings header is checked as SHA-1 and fails …
        assert_eq!(
            verify(
                &form(URL, &params, SIGNATURE_B_SHA256),
                &tokens,
                &shared_keys()
            ),
            Err(Invalid::BadSignature)
        );
        // … and with the header, an Auth Token signature is not tried against the Auth Tokens.
        let request = with_settings(&params, SIGNATURE_B, "key=k1,algorithm=HMAC_SHA256");
        assert_eq!(
            verify(&request, &tokens, &shared_keys()),
            Err(Invalid::BadSignature)
        );
    }

    fn json<'a>(url: &'a str, body: &'a [u8], signature: &'a str) -> WebhookRequest<'a> {
        WebhookRequest {
            url,
            payload: Payload::Raw(body),
            signature,
            signature_settings: None,
        }
    }

    #[test]
    fn body_hash_matches_vector_c() {
        assert_eq!(BODY_C.len(), 38);
        assert_eq!(crate::twilio::sha256_hex(BODY_C), HASH_C);
        assert_eq!(
            sign_sha1(&SecretString::from(AUTH_TOKEN), URL_C),
            SIGNATURE_C
        );
    }

    #[test]
    fn json_body_with_vector_c_signature_is_valid() {
        assert_eq!(check(&json(URL_C, BODY_C, SIGNATURE_C)), Ok(()));
    }

    #[test]
    fn one_changed_body_byte_is_a_body_hash_mismatch() {
        let mut body = BODY_C.to_vec();
        body[14] ^= 0x01;
        assert_eq!(
            check(&json(URL_C, &body, SIGNATURE_C)),
            Err(Invalid::BodyHashMismatch)
        );
    }

    #[test]
    fn a_changed_body_hash_in_the_url_breaks_the_signature() {
        let url = URL_C.replace("6620", "6621");
        assert_eq!(
            check(&json(&url, BODY_C, SIGNATURE_C)),
            Err(Invalid::BadSignature)
        );
    }

    #[test]
    fn a_raw_body_without_body_sha256_in_the_url_is_invalid() {
        // Signed correctly, so only the missing hash can be the reason.
        let signature = sign_sha1(&SecretString::from(AUTH_TOKEN), URL);
        assert_eq!(
            check(&json(URL, BODY_C, &signature)),
            Err(Invalid::MissingBodyHash)
        );
        assert_eq!(
            check(&json(URL, b"", &signature)),
            Err(Invalid::MissingBodyHash)
        );
    }

    #[test]
    fn a_url_that_names_a_body_hash_is_checked_against_the_body_whatever_is_given() {
        // Vector C's URL and signature, replayed without its body or as a form.
        let without_body = WebhookRequest {
            payload: Payload::Empty,
            ..json(URL_C, BODY_C, SIGNATURE_C)
        };
        assert_eq!(check(&without_body), Err(Invalid::BodyHashMismatch));
        assert_eq!(
            check(&form(URL_C, &[], SIGNATURE_C)),
            Err(Invalid::BodyHashMismatch)
        );
        // A URL signed for an empty body: valid given no body or an empty one.
        let url = URL_C.replace(HASH_C, &crate::twilio::sha256_hex(b""));
        let signature = sign_sha1(&SecretString::from(AUTH_TOKEN), &url);
        let empty = json(&url, b"", &signature);
        assert_eq!(check(&empty), Ok(()));
        let without_body = WebhookRequest {
            payload: Payload::Empty,
            ..empty
        };
        assert_eq!(check(&without_body), Ok(()));
    }

    #[test]
    fn json_body_validates_across_port_variants() {
        let url_443 = URL_C.replacen("mycompany.com", "mycompany.com:443", 1);
        assert_eq!(check(&json(&url_443, BODY_C, SIGNATURE_C)), Ok(()));
    }

    #[test]
    fn the_right_token_second_in_the_list_validates() {
        let params = params_b();
        let request = form(URL, &params, SIGNATURE_B);
        let rotating = tokens(&["old-token-no-longer-used", AUTH_TOKEN]);
        assert_eq!(verify(&request, &rotating, &no_shared_keys()), Ok(()));
    }

    #[test]
    fn no_matching_token_is_invalid() {
        let params = params_b();
        let request = form(URL, &params, SIGNATURE_B);
        let wrong = tokens(&["primary-but-wrong", "secondary-but-wrong"]);
        assert_eq!(
            verify(&request, &wrong, &no_shared_keys()),
            Err(Invalid::BadSignature)
        );
    }

    #[test]
    fn no_credentials_fail_closed() {
        let params = params_b();
        let request = form(URL, &params, SIGNATURE_B);
        assert_eq!(
            verify(&request, &[], &no_shared_keys()),
            Err(Invalid::NoCredentials)
        );
        // Anyone can compute an HMAC under an empty key, so it is no credential at all.
        let empty = SecretString::from("");
        let forged = sign_sha1(&empty, &string_to_sign(URL, &params));
        assert_eq!(
            verify(&form(URL, &params, &forged), &[empty], &no_shared_keys()),
            Err(Invalid::NoCredentials)
        );
        let empty_shared = BTreeMap::from([("k1".to_owned(), SecretString::from(""))]);
        let forged = sign_sha256(&SecretString::from(""), &string_to_sign(URL, &params));
        let request = with_settings(&params, &forged, "key=k1,algorithm=HMAC_SHA256");
        assert_eq!(
            verify(&request, &[], &empty_shared),
            Err(Invalid::UnknownSigningKey)
        );
    }

    #[test]
    fn empty_or_garbage_signatures_are_invalid() {
        let params = params_b();
        for signature in ["", "   "] {
            assert_eq!(
                check(&form(URL, &params, signature)),
                Err(Invalid::MissingSignature)
            );
        }
        for signature in [
            "garbage!",
            "0/KCTR6DLpKmkAf8muzZqo1nDgQ",
            "0/KCTR6DLpKmkAf8muzZqo1nDgQ==",
            "0/KCTR6DLpKmkAf8muzZqo1nDg",
            "AAAAAAAAAAAAAAAAAAAAAAAAAAA=",
            "0_KCTR6DLpKmkAf8muzZqo1nDgQ=",
        ] {
            assert_eq!(
                check(&form(URL, &params, signature)),
                Err(Invalid::BadSignature),
                "{signature}"
            );
        }
    }

    #[test]
    fn query_strings_are_kept_byte_for_byte() {
        let url = "https://mycompany.com/a%2Fb?z=1&a=%7e+x&b=%20";
        let params = params_b();
        let data = string_to_sign(url, &params);
        assert!(data.starts_with(url));
        let signature = sign_sha1(&SecretString::from(AUTH_TOKEN), &data);
        assert_eq!(check(&form(url, &params, &signature)), Ok(()));
        let with_443 = "https://mycompany.com:443/a%2Fb?z=1&a=%7e+x&b=%20";
        assert_eq!(check(&form(with_443, &params, &signature)), Ok(()));
        // The same query re-encoded or reordered is another string, so another signature.
        let reencoded = "https://mycompany.com/a%2Fb?z=1&a=~%20x&b=%20";
        assert_eq!(
            check(&form(reencoded, &params, &signature)),
            Err(Invalid::BadSignature)
        );
    }

    #[test]
    fn url_variants_change_only_the_port() {
        let cases: [(&str, &[&str]); 9] = [
            (URL, &[URL, URL_443]),
            (URL_443, &[URL_443, URL]),
            ("http://h/p", &["http://h/p", "http://h:80/p"]),
            ("https://h", &["https://h", "https://h:443"]),
            (
                "https://h?q=a:1",
                &["https://h?q=a:1", "https://h:443?q=a:1"],
            ),
            ("HTTPS://h:8443/p", &["HTTPS://h:8443/p", "HTTPS://h/p"]),
            (
                "https://user:pa:ss@h:443/p?x=@:9",
                &[
                    "https://user:pa:ss@h:443/p?x=@:9",
                    "https://user:pa:ss@h/p?x=@:9",
                ],
            ),
            (
                "https://[::1]/p",
                &["https://[::1]/p", "https://[::1]:443/p"],
            ),
            (
                "https://[::1]:8080/p",
                &["https://[::1]:8080/p", "https://[::1]/p"],
            ),
        ];
        for (url, expected) in cases {
            assert_eq!(url_variants(url), expected.to_vec(), "{url}");
        }
    }

    #[test]
    fn unreadable_urls_are_tried_only_as_given() {
        for url in [
            "/myapp.php?foo=1",
            "mycompany.com/myapp.php",
            "https://h:abc/p",
            "https:///p",
            "https://[::1/p",
            "ftp?x=https://h/p",
        ] {
            assert_eq!(url_variants(url), vec![url], "{url}");
        }
        assert_eq!(url_variants("wss://h/p"), vec!["wss://h/p"]);
    }

    #[test]
    fn nothing_printed_contains_a_secret() {
        let secrets = ["primary-auth-token-s3cret", "secondary-auth-token-s3cret"];
        let shared = BTreeMap::from([("k1".to_owned(), SecretString::from("shared-key-s3cret"))]);
        let verifier = WebhookVerifier::new(&tokens(&secrets), &shared);
        let debug = format!("{verifier:?}");
        for secret in secrets.iter().chain(&["shared-key-s3cret"]) {
            assert!(!debug.contains(secret), "{debug}");
        }
        assert!(debug.contains("k1"), "{debug}");

        // Refusals carry no request data today; this keeps it so if one ever gains a field.
        let params = params_b();
        let failures = [
            verifier.verify(&form(URL, &params, SIGNATURE_B)),
            verifier.verify(&form(URL, &params, "")),
            verifier.verify(&json(URL, BODY_C, SIGNATURE_B)),
            verifier.verify(&with_settings(
                &params,
                SIGNATURE_B,
                "key=zz,algorithm=HMAC_SHA256",
            )),
        ];
        for failure in failures {
            let reason = failure.unwrap_err();
            let printed = format!("{reason} {reason:?}");
            for secret in secrets.iter().chain(&["shared-key-s3cret", "12345"]) {
                assert!(!printed.contains(secret), "{printed}");
            }
            assert!(!printed.contains("mycompany"), "{printed}");
        }
    }
}
