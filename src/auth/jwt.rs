//! Strict verification of callers' JWTs.
//!
//! aws-lc-rs does the signature arithmetic, with each key parsed once when its key set is
//! loaded; `jsonwebtoken` supplies the JWK and algorithm types. Everything around the arithmetic
//! is decided here, because a JWT library's defaults are too lenient for a token server
//! (RFC 8725): the header is parsed by us (the algorithm must be on the authenticator's
//! allow-list, `crit` is refused, `typ` must say JWT or access token, `jku`/`x5u`/`jwk`/`x5c` are
//! never followed), the key comes only from the configured key set and must suit the algorithm,
//! and `iss`, `aud`, `exp`, `sub` are required, with `nbf`/`iat` checked against the leeway.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use aws_lc_rs::{hmac, signature};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::Algorithm;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, PublicKeyUse};
use serde::Deserialize;
use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_json::{Map, Value};

use super::jwks::RemoteKeys;
use super::{AuthError, Principal};
use crate::metrics::{CacheCounters, Metrics};

/// Largest encoded JOSE header accepted, in bytes.
const MAX_HEADER_BYTES: usize = 2048;
/// Largest RSA/EC/EdDSA key set kept from one JWKS document.
pub const MAX_JWKS_KEYS: usize = 50;
/// Smallest and largest RSA modulus accepted, in bits.
const MIN_RSA_BITS: usize = 2048;
const MAX_RSA_BITS: usize = 8192;
/// NumericDate values must be non-negative and before the year 10000 (the last date RFC 3339
/// can write), so a token that claims to live for millennia is refused, not believed.
const MAX_NUMERIC_DATE: f64 = 253_402_300_800.0; // 10000-01-01T00:00:00Z

/// Where a `jwt` authenticator's keys come from.
pub enum KeySource {
    /// A JWKS URL, fetched and cached at run time.
    Remote {
        url: String,
        cache_ttl: Duration,
        refetch_cooldown: Duration,
        max_stale: Duration,
    },
    /// Keys known at load: a JWKS file or an HS256 secret.
    Static(Arc<KeySet>),
}

impl fmt::Debug for KeySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeySource::Remote { url, .. } => f.debug_struct("Remote").field("url", url).finish(),
            KeySource::Static(set) => f.debug_tuple("Static").field(&set.len()).finish(),
        }
    }
}

/// A `[auth.<name>]` of kind `jwt`, validated.
#[derive(Debug)]
pub struct JwtSettings {
    pub issuer: String,
    pub audiences: Vec<String>,
    pub algorithms: Vec<Algorithm>,
    pub leeway_secs: u64,
    pub keys: KeySource,
    /// The claims that the policies of the apps using this authenticator read: beside the
    /// registered claims it checks, the only ones a caller's token is parsed for.
    pub policy_claims: Vec<String>,
}

impl JwtSettings {
    /// Adds `claims` to [`JwtSettings::policy_claims`]; `sub` is the caller's subject, never kept
    /// twice.
    pub fn keep_claims<'a>(&mut self, claims: impl IntoIterator<Item = &'a str>) {
        for claim in claims {
            if claim != "sub" && !self.policy_claims.iter().any(|kept| kept == claim) {
                self.policy_claims.push(claim.to_owned());
            }
        }
    }
}

/// The key family an algorithm needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KeyKind {
    Hmac,
    Rsa,
    P256,
    P384,
    Ed25519,
}

fn key_kind(alg: Algorithm) -> Option<KeyKind> {
    use Algorithm::*;
    match alg {
        HS256 | HS384 | HS512 => Some(KeyKind::Hmac),
        RS256 | RS384 | RS512 | PS256 | PS384 | PS512 => Some(KeyKind::Rsa),
        ES256 => Some(KeyKind::P256),
        ES384 => Some(KeyKind::P384),
        EdDSA => Some(KeyKind::Ed25519),
        _ => None,
    }
}

/// One verification key, prepared once for each algorithm it may check, so a verification is
/// the signature arithmetic alone (no key rebuilt from its JWK per token).
struct VerifyingKey {
    kid: Option<String>,
    kind: KeyKind,
    /// The `alg` the JWK is pinned to, if it names one.
    alg: Option<Algorithm>,
    verifiers: Vec<(Algorithm, Verifier)>,
}

enum Verifier {
    Public(signature::ParsedPublicKey),
    Hmac(Box<hmac::Key>),
}

impl VerifyingKey {
    fn verify(&self, alg: Algorithm, signed: &[u8], signature: &[u8]) -> bool {
        match self.verifiers.iter().find(|(a, _)| *a == alg) {
            Some((_, Verifier::Public(key))) => key.verify_sig(signed, signature).is_ok(),
            Some((_, Verifier::Hmac(key))) => hmac::verify(key, signed, signature).is_ok(),
            None => false,
        }
    }
}

/// The RSA algorithms, with aws-lc's parameters for each.
const RSA_ALGORITHMS: [(Algorithm, &signature::RsaParameters); 6] = [
    (Algorithm::RS256, &signature::RSA_PKCS1_2048_8192_SHA256),
    (Algorithm::RS384, &signature::RSA_PKCS1_2048_8192_SHA384),
    (Algorithm::RS512, &signature::RSA_PKCS1_2048_8192_SHA512),
    (Algorithm::PS256, &signature::RSA_PSS_2048_8192_SHA256),
    (Algorithm::PS384, &signature::RSA_PSS_2048_8192_SHA384),
    (Algorithm::PS512, &signature::RSA_PSS_2048_8192_SHA512),
];

/// The keys of one provider.
pub struct KeySet {
    keys: Vec<VerifyingKey>,
    /// Unique for the life of the process: tells the verified-caller cache which key set
    /// verified an entry (an address could be reused by a later set).
    id: u64,
}

fn next_key_set_id() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

impl fmt::Debug for KeySet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kids: Vec<_> = self.keys.iter().map(|k| k.kid.as_deref()).collect();
        f.debug_struct("KeySet").field("kids", &kids).finish()
    }
}

impl KeySet {
    /// A single HMAC key (an `hs256_secret`).
    pub fn hmac(secret: &[u8]) -> Self {
        let verifiers = [
            (Algorithm::HS256, hmac::HMAC_SHA256),
            (Algorithm::HS384, hmac::HMAC_SHA384),
            (Algorithm::HS512, hmac::HMAC_SHA512),
        ]
        .into_iter()
        .map(|(alg, hmac_alg)| {
            (
                alg,
                Verifier::Hmac(Box::new(hmac::Key::new(hmac_alg, secret))),
            )
        })
        .collect();
        Self {
            keys: vec![VerifyingKey {
                kid: None,
                kind: KeyKind::Hmac,
                alg: None,
                verifiers,
            }],
            id: next_key_set_id(),
        }
    }

    /// Parses a JWKS document, keeping only keys usable for signature verification: no
    /// symmetric keys, no encryption keys, no RSA outside 2048-8192 bits, no key aws-lc refuses to
    /// parse. Fails when nothing usable remains or the document is malformed.
    pub fn from_jwks(document: &[u8]) -> Result<Self, &'static str> {
        #[derive(serde::Deserialize)]
        struct Document {
            keys: Vec<Value>,
        }
        let document: Document =
            serde_json::from_slice(document).map_err(|_| "not a JWKS document")?;
        if document.keys.len() > MAX_JWKS_KEYS {
            return Err("too many keys");
        }
        let keys: Vec<VerifyingKey> = document
            .keys
            .into_iter()
            .filter_map(|value| serde_json::from_value::<Jwk>(value).ok())
            .filter_map(|jwk| verifying_key(&jwk))
            .collect();
        if keys.is_empty() {
            return Err("no usable keys");
        }
        Ok(Self {
            keys,
            id: next_key_set_id(),
        })
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    pub fn has_kid(&self, kid: &str) -> bool {
        self.keys.iter().any(|k| k.kid.as_deref() == Some(kid))
    }

    /// The key that may verify a token with this `alg` and `kid`: the suitable key with that
    /// `kid`, else one without a `kid` (an HS256 secret); for a token without `kid`, the only
    /// suitable key.
    fn find(&self, alg: Algorithm, kid: Option<&str>) -> Option<&VerifyingKey> {
        let suitable =
            |k: &&VerifyingKey| Some(k.kind) == key_kind(alg) && k.alg.is_none_or(|a| a == alg);
        match kid {
            // The named key first, wherever a key without `kid` stands in the set.
            Some(kid) => {
                let mut candidates = self.keys.iter().filter(suitable);
                candidates
                    .clone()
                    .find(|k| k.kid.as_deref() == Some(kid))
                    .or_else(|| candidates.find(|k| k.kid.is_none()))
            }
            None => {
                let mut candidates = self.keys.iter().filter(suitable);
                match (candidates.next(), candidates.next()) {
                    (Some(only), None) => Some(only),
                    _ => None,
                }
            }
        }
    }
}

fn decode_b64(value: &str) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD.decode(value.trim_end_matches('=')).ok()
}

/// An EC public key as SEC 1 uncompressed point bytes: `x` and `y` must have the curve's exact
/// length (RFC 7518 §6.2.1.2).
fn ec_point(x: &str, y: &str, len: usize) -> Option<Vec<u8>> {
    let (x, y) = (decode_b64(x)?, decode_b64(y)?);
    (x.len() == len && y.len() == len).then(|| [&[4u8][..], &x, &y].concat())
}

/// A supported curve's key family, JWS algorithm, aws-lc parameters (JWS signatures are the
/// fixed-size `r || s`) and coordinate length in bytes.
fn ec_curve(
    curve: &EllipticCurve,
) -> Option<(
    KeyKind,
    Algorithm,
    &'static signature::EcdsaVerificationAlgorithm,
    usize,
)> {
    match curve {
        EllipticCurve::P256 => Some((
            KeyKind::P256,
            Algorithm::ES256,
            &signature::ECDSA_P256_SHA256_FIXED,
            32,
        )),
        EllipticCurve::P384 => Some((
            KeyKind::P384,
            Algorithm::ES384,
            &signature::ECDSA_P384_SHA384_FIXED,
            48,
        )),
        _ => None,
    }
}

fn verifying_key(jwk: &Jwk) -> Option<VerifyingKey> {
    if matches!(jwk.common.public_key_use, Some(PublicKeyUse::Encryption)) {
        return None;
    }
    let pinned = match jwk.common.key_algorithm {
        None => None,
        Some(key_alg) => Some(Algorithm::try_from(key_alg).ok()?),
    };
    let wanted = |alg: Algorithm| pinned.is_none_or(|p| p == alg);
    let parse = |alg, parameters: &'static dyn signature::VerificationAlgorithm, bytes: &[u8]| {
        signature::ParsedPublicKey::new(parameters, bytes)
            .ok()
            .map(|key| (alg, Verifier::Public(key)))
    };
    let (kind, verifiers): (KeyKind, Option<Vec<_>>) = match &jwk.algorithm {
        AlgorithmParameters::RSA(rsa) => {
            let modulus = decode_b64(&rsa.n)?;
            let modulus = &modulus[modulus.iter().take_while(|b| **b == 0).count()..];
            let bits =
                (modulus.len() * 8).saturating_sub(modulus.first()?.leading_zeros() as usize);
            // aws-lc verifies with moduli of 2048 to 8192 bits: any other key could never verify.
            if !(MIN_RSA_BITS..=MAX_RSA_BITS).contains(&bits) {
                return None;
            }
            let exponent = decode_b64(&rsa.e)?;
            let components = signature::RsaPublicKeyComponents {
                n: modulus,
                e: exponent.as_slice(),
            };
            let verifiers = RSA_ALGORITHMS
                .iter()
                .filter(|(alg, _)| wanted(*alg))
                .map(|(alg, parameters)| {
                    let key = components.to_parsed_public_key(parameters).ok()?;
                    Some((*alg, Verifier::Public(key)))
                })
                .collect();
            (KeyKind::Rsa, verifiers)
        }
        AlgorithmParameters::EllipticCurve(ec) => {
            let (kind, alg, parameters, len) = ec_curve(&ec.curve)?;
            let point = ec_point(&ec.x, &ec.y, len)?;
            (kind, parse(alg, parameters, &point).map(|v| vec![v]))
        }
        AlgorithmParameters::OctetKeyPair(okp) if okp.curve == EllipticCurve::Ed25519 => {
            let x = decode_b64(&okp.x).filter(|x| x.len() == 32)?;
            let verifier = parse(Algorithm::EdDSA, &signature::ED25519, &x);
            (KeyKind::Ed25519, verifier.map(|v| vec![v]))
        }
        // Symmetric keys never come from a key set: a JWKS is public.
        _ => return None,
    };
    if pinned.is_some_and(|alg| key_kind(alg) != Some(kind)) {
        return None;
    }
    let verifiers = verifiers.filter(|v| !v.is_empty())?;
    Some(VerifyingKey {
        kid: jwk.common.key_id.clone(),
        kind,
        alg: pinned,
        verifiers,
    })
}

/// How many verified caller tokens are remembered.
pub const VERIFIED_CACHE_ENTRIES: usize = 4096;

/// Caller tokens whose signature verified, by the SHA-256 of the whole token, each with the
/// [`KeySet::id`] of the set that verified it: trusted only while that set is in force. A hit
/// skips the signature, not the claims: they are parsed and checked again, `exp` included, so
/// an entry never outlives its token.
///
/// The id only, not the caller's claims: an entry is plain data inside the cache's own table, so
/// remembering a token allocates nothing and forgetting it frees nothing. Keeping the parsed
/// claims instead cost more CPU under load than parsing them again on a hit does (db22823 in
/// bench/RESULTS.md): each entry held some twenty allocations, freed thousands of requests
/// later by whichever worker evicted it, long out of the CPU's caches.
type VerifiedCache = quick_cache::sync::Cache<[u8; 32], u64>;

fn verified_cache() -> VerifiedCache {
    // Caller tokens arrive once or a few times, each soon after the last. quick_cache keeps 97 %
    // of its space for entries that were hit before by default, which leaves room for only ~120
    // new tokens; here most of the space goes to recent arrivals instead.
    let options = quick_cache::OptionsBuilder::new()
        .estimated_items_capacity(VERIFIED_CACHE_ENTRIES)
        .weight_capacity(VERIFIED_CACHE_ENTRIES as u64)
        .hot_allocation(0.05)
        .build();
    match options {
        Ok(options) => VerifiedCache::with_options(
            options,
            Default::default(),
            Default::default(),
            Default::default(),
        ),
        Err(_) => VerifiedCache::new(VERIFIED_CACHE_ENTRIES),
    }
}

/// A `jwt` authenticator with its keys.
pub struct JwtAuthenticator {
    settings: JwtSettings,
    remote: Option<Arc<RemoteKeys>>,
    /// Verified tokens by the SHA-256 of the whole token, so a caller that asks again before
    /// its token expires costs a hash and a parse of its claims instead of a signature
    /// verification.
    verified: VerifiedCache,
    cache_counters: CacheCounters,
}

impl fmt::Debug for JwtAuthenticator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwtAuthenticator")
            .field("settings", &self.settings)
            .field("remote", &self.remote)
            .field("verified_cached", &self.verified.len())
            .finish()
    }
}

/// The parts of a compact JWS, checked for shape only.
struct Parts<'a> {
    header: &'a str,
    payload: &'a str,
    signature: &'a str,
    /// `header.payload`, the signed bytes.
    signed: &'a str,
}

/// Whether `s` is non-empty base64url (RFC 4648 §5) without padding. The check has no early
/// exit, so the compiler tests 16 or 32 bytes at a time: a caller's token is most of a kilobyte.
fn is_base64url(s: &str) -> bool {
    let in_alphabet = |b: u8| b.is_ascii_alphanumeric() | (b == b'-') | (b == b'_');
    !s.is_empty() && s.bytes().fold(true, |all, b| all & in_alphabet(b))
}

fn split(token: &str) -> Result<Parts<'_>, AuthError> {
    let malformed = || AuthError::unauthenticated("malformed_token");
    let mut pieces = token.split('.');
    let (Some(header), Some(payload), Some(signature), None) =
        (pieces.next(), pieces.next(), pieces.next(), pieces.next())
    else {
        return Err(malformed());
    };
    if ![header, payload, signature].into_iter().all(is_base64url) {
        return Err(malformed());
    }
    Ok(Parts {
        header,
        payload,
        signature,
        signed: &token[..header.len() + 1 + payload.len()],
    })
}

/// A payload's claims: the registered ones [`JwtAuthenticator::check_claims`] reads, and those
/// the policies read ([`JwtSettings::policy_claims`]). Every other claim is skipped unparsed, so
/// a token's claims cost allocations only for what is used.
#[derive(Default)]
struct Claims {
    iss: Option<Value>,
    sub: Option<Value>,
    aud: Option<Value>,
    exp: Option<Value>,
    nbf: Option<Value>,
    iat: Option<Value>,
    /// The claims the policies read, registered ones included.
    kept: Map<String, Value>,
}

/// Reads a JSON object into [`Claims`], keeping the claims named here.
struct ClaimsSeed<'k>(&'k [String]);

impl<'de> DeserializeSeed<'de> for ClaimsSeed<'_> {
    type Value = Claims;
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Claims, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for ClaimsSeed<'_> {
    type Value = Claims;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Claims, A::Error> {
        let mut claims = Claims::default();
        // A repeated claim counts with its last value, as with any JSON object here.
        while let Some(name) = map.next_key::<Member<'de>>()? {
            let name = name.text().unwrap_or_default();
            let registered = match name {
                "iss" => Some(&mut claims.iss),
                "sub" => Some(&mut claims.sub),
                "aud" => Some(&mut claims.aud),
                "exp" => Some(&mut claims.exp),
                "nbf" => Some(&mut claims.nbf),
                "iat" => Some(&mut claims.iat),
                _ => None,
            };
            let kept = self.0.iter().any(|claim| claim == name);
            match (registered, kept) {
                (Some(slot), false) => *slot = Some(map.next_value()?),
                (Some(slot), true) => {
                    let value: Value = map.next_value()?;
                    *slot = Some(value.clone());
                    claims.kept.insert(name.to_owned(), value);
                }
                (None, true) => {
                    claims.kept.insert(name.to_owned(), map.next_value()?);
                }
                (None, false) => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(claims)
    }
}

/// The claims of a payload segment: base64url of a JSON object.
fn decode_claims(payload: &str, kept: &[String]) -> Result<Claims, AuthError> {
    let malformed = || AuthError::unauthenticated("malformed_payload");
    let bytes = URL_SAFE_NO_PAD.decode(payload).map_err(|_| malformed())?;
    let mut json = serde_json::Deserializer::from_slice(&bytes);
    let claims = ClaimsSeed(kept)
        .deserialize(&mut json)
        .map_err(|_| malformed())?;
    json.end().map_err(|_| malformed())?;
    Ok(claims)
}

/// The JOSE header members this verifier reads; every other member is skipped. Strings borrow
/// from the decoded header unless they contain escapes, so parsing a well-formed header
/// allocates nothing.
struct Header<'a> {
    alg: Option<Member<'a>>,
    kid: Option<Member<'a>>,
    typ: Option<Member<'a>>,
    /// Whether `crit` is present, whatever its value.
    crit: bool,
}

/// A header member's name or value: its text when it is a JSON string.
#[derive(Deserialize)]
#[serde(untagged)]
enum Member<'a> {
    Text(#[serde(borrow)] Cow<'a, str>),
    NotText(IgnoredAny),
}

impl Member<'_> {
    fn text(&self) -> Option<&str> {
        match self {
            Member::Text(text) => Some(text),
            Member::NotText(_) => None,
        }
    }
}

impl<'de> Deserialize<'de> for Header<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Object;
        impl<'de> Visitor<'de> for Object {
            type Value = Header<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Header<'de>, A::Error> {
                let mut header = Header {
                    alg: None,
                    kid: None,
                    typ: None,
                    crit: false,
                };
                // A repeated member counts with its last value, as with any JSON object here.
                while let Some(name) = map.next_key::<Member<'de>>()? {
                    match name.text() {
                        Some("alg") => header.alg = Some(map.next_value()?),
                        Some("kid") => header.kid = Some(map.next_value()?),
                        Some("typ") => header.typ = Some(map.next_value()?),
                        Some("crit") => {
                            map.next_value::<IgnoredAny>()?;
                            header.crit = true;
                        }
                        _ => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                Ok(header)
            }
        }
        deserializer.deserialize_map(Object)
    }
}

/// `typ` values a caller's token may carry: a JWT, or an OAuth access token (RFC 9068), with or
/// without the `application/` prefix, in any case (RFC 7515 §4.1.9).
fn is_caller_typ(typ: &str) -> bool {
    let media_type = match typ.split_at_checked(12) {
        Some((prefix, rest)) if prefix.eq_ignore_ascii_case("application/") => rest,
        _ => typ,
    };
    ["JWT", "at+jwt"]
        .iter()
        .any(|accepted| media_type.eq_ignore_ascii_case(accepted))
}

/// A NumericDate claim: `Ok(None)` when absent, an error when present but not a non-negative
/// number before [`MAX_NUMERIC_DATE`].
fn numeric_date(claim: Option<&Value>) -> Result<Option<f64>, AuthError> {
    match claim {
        None => Ok(None),
        Some(Value::Number(n)) => match n.as_f64() {
            Some(v) if v.is_finite() && (0.0..MAX_NUMERIC_DATE).contains(&v) => Ok(Some(v)),
            _ => Err(AuthError::unauthenticated("bad_numeric_date")),
        },
        Some(_) => Err(AuthError::unauthenticated("bad_numeric_date")),
    }
}

impl JwtAuthenticator {
    pub fn new(
        name: &str,
        settings: JwtSettings,
        metrics: Arc<Metrics>,
        previous: Option<&JwtAuthenticator>,
    ) -> Self {
        let remote = match &settings.keys {
            KeySource::Remote {
                url,
                cache_ttl,
                refetch_cooldown,
                max_stale,
            } => {
                let reusable = previous
                    .and_then(|p| p.remote.as_ref())
                    .filter(|old| old.url() == url)
                    .map(|old| old.reconfigure(*cache_ttl, *refetch_cooldown, *max_stale));
                Some(reusable.unwrap_or_else(|| {
                    Arc::new(RemoteKeys::new(
                        name,
                        url.clone(),
                        *cache_ttl,
                        *refetch_cooldown,
                        *max_stale,
                        metrics.clone(),
                    ))
                }))
            }
            KeySource::Static(_) => None,
        };
        Self {
            settings,
            remote,
            verified: verified_cache(),
            cache_counters: metrics.caller_cache_counters(name),
        }
    }

    pub fn start(&self) {
        if let Some(remote) = &self.remote {
            remote.start();
        }
    }

    pub fn is_ready(&self) -> bool {
        self.remote.as_ref().is_none_or(|r| r.current().is_some())
    }

    /// Fetches the provider's keys now unless they are loaded.
    pub async fn load_keys(&self) {
        if let Some(remote) = &self.remote {
            remote.load().await;
        }
    }

    /// Verifies `token` at `now` (unix seconds) and returns the caller.
    pub async fn verify(&self, token: &str, now: u64) -> Result<Principal, AuthError> {
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, token.as_bytes());
        let digest: [u8; 32] = digest.as_ref().try_into().unwrap_or_default();
        let keys = self.current_keys();
        if let Some(keys) = &keys
            && self.verified.get(&digest) == Some(keys.id)
        {
            self.cache_counters.count(true);
            // The same bytes verified before, so they are a well-formed JWS.
            let payload = token.split('.').nth(1).unwrap_or_default();
            return self.principal(payload, now);
        }
        self.cache_counters.count(false);
        let (principal, keys) = self.verify_uncached(token, now, keys).await?;
        self.verified.insert(digest, keys.id);
        Ok(principal)
    }

    /// The key set in force now, if any (a remote provider may not have answered yet).
    fn current_keys(&self) -> Option<Arc<KeySet>> {
        match (&self.settings.keys, &self.remote) {
            (KeySource::Static(keys), _) => Some(keys.clone()),
            (KeySource::Remote { .. }, Some(remote)) => remote.current(),
            (KeySource::Remote { .. }, None) => None,
        }
    }

    /// Full verification; also returns the key set that verified it.
    async fn verify_uncached(
        &self,
        token: &str,
        now: u64,
        current: Option<Arc<KeySet>>,
    ) -> Result<(Principal, Arc<KeySet>), AuthError> {
        let parts = split(token)?;
        if parts.header.len() > MAX_HEADER_BYTES {
            return Err(AuthError::unauthenticated("header_too_large"));
        }
        let mut decoded = [0u8; MAX_HEADER_BYTES / 4 * 3];
        let malformed = || AuthError::unauthenticated("malformed_header");
        let len = URL_SAFE_NO_PAD
            .decode_slice(parts.header, &mut decoded)
            .map_err(|_| malformed())?;
        let header: Header<'_> =
            serde_json::from_slice(&decoded[..len]).map_err(|_| malformed())?;
        let alg = header
            .alg
            .as_ref()
            .and_then(Member::text)
            .and_then(|name| name.parse::<Algorithm>().ok())
            .filter(|alg| self.settings.algorithms.contains(alg))
            .ok_or(AuthError::unauthenticated("algorithm_not_allowed"))?;
        // No extension is understood, so any critical one must be refused (RFC 7515 §4.1.11).
        if header.crit {
            return Err(AuthError::unauthenticated("unsupported_crit"));
        }
        // Explicit typing (RFC 8725 §3.11): a token the issuer typed as something else, such as
        // a logout token or a security event, is not a caller's credential.
        if header
            .typ
            .as_ref()
            .is_some_and(|typ| !typ.text().is_some_and(is_caller_typ))
        {
            return Err(AuthError::unauthenticated("unexpected_typ"));
        }
        let kid = match &header.kid {
            None => None,
            Some(Member::Text(kid)) if kid.len() <= 256 => Some(kid.as_ref()),
            Some(_) => return Err(AuthError::unauthenticated("malformed_kid")),
        };

        let keys = match (&self.remote, current) {
            (Some(_), Some(keys)) if kid.is_none_or(|kid| keys.has_kid(kid)) => keys,
            (Some(remote), _) => remote.keys_for(kid).await?,
            (None, Some(keys)) => keys,
            (None, None) => {
                return Err(AuthError::Unavailable {
                    retry_after_secs: 1,
                });
            }
        };
        if !check_signature(&keys, alg, kid, &parts)? {
            return Err(AuthError::unauthenticated("bad_signature"));
        }

        Ok((self.principal(parts.payload, now)?, keys))
    }

    /// The caller in a verified token's payload, after the registered claims' checks.
    fn principal(&self, payload: &str, now: u64) -> Result<Principal, AuthError> {
        let claims = decode_claims(payload, &self.settings.policy_claims)?;
        self.check_claims(&claims, now)?;
        let subject = match claims.sub {
            Some(Value::String(sub)) if !sub.is_empty() => sub,
            _ => return Err(AuthError::unauthenticated("missing_sub")),
        };
        Ok(Principal {
            subject,
            claims: claims.kept,
        })
    }

    /// Checks the registered claims.
    fn check_claims(&self, claims: &Claims, now: u64) -> Result<(), AuthError> {
        match &claims.iss {
            Some(Value::String(iss)) if *iss == self.settings.issuer => {}
            _ => return Err(AuthError::unauthenticated("wrong_issuer")),
        }
        let ours = |aud: &Value| {
            aud.as_str()
                .is_some_and(|aud| self.settings.audiences.iter().any(|a| a == aud))
        };
        let audience_ok = match &claims.aud {
            Some(aud @ Value::String(_)) => ours(aud),
            Some(Value::Array(auds)) => auds.iter().any(ours),
            _ => false,
        };
        if !audience_ok {
            return Err(AuthError::unauthenticated("wrong_audience"));
        }
        let now = now as f64;
        let leeway = self.settings.leeway_secs as f64;
        let exp =
            numeric_date(claims.exp.as_ref())?.ok_or(AuthError::unauthenticated("missing_exp"))?;
        if now >= exp + leeway {
            return Err(AuthError::unauthenticated("expired"));
        }
        if numeric_date(claims.nbf.as_ref())?.is_some_and(|nbf| nbf > now + leeway) {
            return Err(AuthError::unauthenticated("not_yet_valid"));
        }
        if numeric_date(claims.iat.as_ref())?.is_some_and(|iat| iat > now + leeway) {
            return Err(AuthError::unauthenticated("issued_in_future"));
        }
        Ok(())
    }
}

fn check_signature(
    keys: &KeySet,
    alg: Algorithm,
    kid: Option<&str>,
    parts: &Parts<'_>,
) -> Result<bool, AuthError> {
    let key = keys
        .find(alg, kid)
        .ok_or(AuthError::unauthenticated("no_matching_key"))?;
    // Large enough for an RSA-8192 signature, the largest aws-lc verifies.
    let mut signature = [0u8; 1024];
    let Ok(len) = URL_SAFE_NO_PAD.decode_slice(parts.signature, &mut signature) else {
        return Ok(false);
    };
    Ok(key.verify(alg, parts.signed.as_bytes(), &signature[..len]))
}

#[cfg(test)]
mod tests {
    use aws_lc_rs::signature::{
        ECDSA_P256_SHA256_FIXED_SIGNING, ECDSA_P384_SHA384_FIXED_SIGNING, EcdsaKeyPair,
        Ed25519KeyPair, KeyPair,
    };
    use jsonwebtoken::EncodingKey;
    use serde_json::json;

    use super::*;

    /// A private key and the public JWK a provider would publish for it.
    fn key_pair(alg: Algorithm) -> (EncodingKey, Value) {
        let key = match alg {
            Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512 => {
                return (
                    EncodingKey::from_secret(b"a shared secret of 32 bytes!!!!"),
                    json!({}),
                );
            }
            Algorithm::ES256 | Algorithm::ES384 => {
                let curve = if alg == Algorithm::ES256 {
                    &ECDSA_P256_SHA256_FIXED_SIGNING
                } else {
                    &ECDSA_P384_SHA384_FIXED_SIGNING
                };
                let pkcs8 = EcdsaKeyPair::generate(curve).unwrap().to_pkcs8v1().unwrap();
                EncodingKey::from_ec_der(pkcs8.as_ref())
            }
            Algorithm::EdDSA => {
                // jsonwebtoken cannot derive an OKP JWK from a private key: built by hand.
                let pair = Ed25519KeyPair::generate().unwrap();
                let x = URL_SAFE_NO_PAD.encode(pair.public_key().as_ref());
                let jwk = json!({ "kty": "OKP", "crv": "Ed25519", "x": x, "kid": "k1" });
                let pkcs8 = pair.to_pkcs8().unwrap();
                return (EncodingKey::from_ed_der(pkcs8.as_ref()), jwk);
            }
            _ => {
                let pem = include_bytes!("../../tests/fixtures/rsa_a.pem");
                EncodingKey::from_rsa_pem(pem).unwrap()
            }
        };
        let mut jwk = serde_json::to_value(Jwk::from_encoding_key(&key, alg).unwrap()).unwrap();
        jwk["kid"] = json!("k1");
        jwk.as_object_mut().unwrap().remove("alg");
        (key, jwk)
    }

    fn signed_token(key: &EncodingKey, alg: Algorithm) -> String {
        let header = URL_SAFE_NO_PAD.encode(json!({ "alg": alg, "kid": "k1" }).to_string());
        let payload = URL_SAFE_NO_PAD.encode(r#"{"sub":"alice"}"#);
        let signed = format!("{header}.{payload}");
        let signature = jsonwebtoken::crypto::sign(signed.as_bytes(), key, alg).unwrap();
        format!("{signed}.{signature}")
    }

    fn checks(keys: &KeySet, alg: Algorithm, token: &str) -> bool {
        let parts = split(token).unwrap();
        check_signature(keys, alg, Some("k1"), &parts).unwrap()
    }

    #[test]
    fn every_supported_algorithm_verifies_with_its_prepared_key_and_nothing_else() {
        use Algorithm::*;
        for alg in [
            RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, EdDSA, HS256, HS384, HS512,
        ] {
            let (key, jwk) = key_pair(alg);
            let keys = match key_kind(alg) {
                Some(KeyKind::Hmac) => KeySet::hmac(b"a shared secret of 32 bytes!!!!"),
                _ => KeySet::from_jwks(json!({ "keys": [jwk] }).to_string().as_bytes()).unwrap(),
            };
            let token = signed_token(&key, alg);
            assert!(checks(&keys, alg, &token), "{alg:?} did not verify");

            // One changed byte of the signed part, or of the signature, must fail.
            let (signed, signature) = token.rsplit_once('.').unwrap();
            let tampered = format!("{}.{signature}", signed.replace("eyJzdWIi", "eyJzdWIJ"));
            assert!(
                !checks(&keys, alg, &tampered),
                "{alg:?} accepted a changed payload"
            );
            let mut bytes = URL_SAFE_NO_PAD.decode(signature).unwrap();
            bytes[0] ^= 1;
            let forged = format!("{signed}.{}", URL_SAFE_NO_PAD.encode(&bytes));
            assert!(
                !checks(&keys, alg, &forged),
                "{alg:?} accepted a changed signature"
            );

            // The same signature presented under another algorithm of the family never passes.
            for other in [RS256, PS256, ES256, ES384, EdDSA, HS256, HS512] {
                if other != alg && key_kind(other) == key_kind(alg) {
                    assert!(!checks(&keys, other, &token), "{alg:?} passed as {other:?}");
                }
            }
        }
    }

    #[test]
    fn a_jwk_pinned_to_one_algorithm_verifies_only_that_one() {
        let (key, mut jwk) = key_pair(Algorithm::RS256);
        jwk["alg"] = json!("RS256");
        let keys = KeySet::from_jwks(json!({ "keys": [jwk] }).to_string().as_bytes()).unwrap();
        assert!(checks(
            &keys,
            Algorithm::RS256,
            &signed_token(&key, Algorithm::RS256)
        ));
        let ps = signed_token(&key, Algorithm::PS256);
        assert!(matches!(
            check_signature(&keys, Algorithm::PS256, Some("k1"), &split(&ps).unwrap()),
            Err(AuthError::Unauthenticated {
                reason: "no_matching_key"
            })
        ));
    }

    fn jwks(keys: &[&Value]) -> KeySet {
        KeySet::from_jwks(json!({ "keys": keys }).to_string().as_bytes()).unwrap()
    }

    #[test]
    fn a_token_of_another_key_family_finds_no_key() {
        let (rsa, rsa_jwk) = key_pair(Algorithm::RS256);
        let (hmac, _) = key_pair(Algorithm::HS256);
        let secret_set = KeySet::hmac(b"a shared secret of 32 bytes!!!!");
        let cases = [
            (
                jwks(&[&rsa_jwk]),
                Algorithm::HS256,
                signed_token(&hmac, Algorithm::HS256),
            ),
            (
                secret_set,
                Algorithm::RS256,
                signed_token(&rsa, Algorithm::RS256),
            ),
        ];
        for (keys, alg, token) in cases {
            assert!(matches!(
                check_signature(&keys, alg, Some("k1"), &split(&token).unwrap()),
                Err(AuthError::Unauthenticated {
                    reason: "no_matching_key"
                })
            ));
        }
    }

    #[test]
    fn a_token_naming_a_kid_is_checked_with_that_key_before_one_without_kid() {
        let (key, named) = key_pair(Algorithm::RS256);
        let pem = include_bytes!("../../tests/fixtures/rsa_b.pem");
        let other = EncodingKey::from_rsa_pem(pem).unwrap();
        let mut unnamed =
            serde_json::to_value(Jwk::from_encoding_key(&other, Algorithm::RS256).unwrap())
                .unwrap();
        unnamed.as_object_mut().unwrap().remove("kid");
        // The key without `kid` listed first must not shadow the one the token names ...
        let keys = jwks(&[&unnamed, &named]);
        assert!(checks(
            &keys,
            Algorithm::RS256,
            &signed_token(&key, Algorithm::RS256)
        ));
        // ... and still verifies a token naming a `kid` the set does not hold.
        let by_other = signed_token(&other, Algorithm::RS256);
        let parts = split(&by_other).unwrap();
        assert!(check_signature(&keys, Algorithm::RS256, Some("k2"), &parts).unwrap());
        assert!(!check_signature(&keys, Algorithm::RS256, Some("k1"), &parts).unwrap());
    }

    #[test]
    fn rsa_moduli_count_by_bit_and_leading_zero_bytes_do_not() {
        let (key, jwk) = key_pair(Algorithm::RS256);
        let n = URL_SAFE_NO_PAD.decode(jwk["n"].as_str().unwrap()).unwrap();
        assert_eq!(
            (n.len(), n[0] >> 7),
            (256, 1),
            "the fixture is a 2048-bit key"
        );
        let with_n = |n: &[u8]| {
            let mut jwk = jwk.clone();
            jwk["n"] = json!(URL_SAFE_NO_PAD.encode(n));
            json!({ "keys": [jwk] }).to_string()
        };
        // 2047 bits: one bit short, though still 256 bytes long.
        let mut short = n.clone();
        short[0] = 0x7f;
        assert_eq!(
            KeySet::from_jwks(with_n(&short).as_bytes()).err(),
            Some("no usable keys")
        );
        // A zero byte in front changes nothing: still 2048 bits, still verifies.
        let padded = KeySet::from_jwks(with_n(&[&[0u8][..], &n].concat()).as_bytes()).unwrap();
        assert!(checks(
            &padded,
            Algorithm::RS256,
            &signed_token(&key, Algorithm::RS256)
        ));
    }

    #[test]
    fn a_key_set_holds_at_most_fifty_keys_and_no_encryption_keys() {
        let (key, jwk) = key_pair(Algorithm::RS256);
        let token = signed_token(&key, Algorithm::RS256);
        let with = |keys: Vec<Value>| json!({ "keys": keys }).to_string();
        let fifty = KeySet::from_jwks(with(vec![jwk.clone(); MAX_JWKS_KEYS]).as_bytes()).unwrap();
        assert!(checks(&fifty, Algorithm::RS256, &token));
        assert_eq!(
            KeySet::from_jwks(with(vec![jwk.clone(); MAX_JWKS_KEYS + 1]).as_bytes()).err(),
            Some("too many keys")
        );

        let mut encryption = jwk.clone();
        encryption["use"] = json!("enc");
        assert_eq!(
            KeySet::from_jwks(with(vec![encryption.clone()]).as_bytes()).err(),
            Some("no usable keys")
        );
        // Beside a signing key it is left out, so its kid finds nothing.
        let mut signing = jwk;
        signing["kid"] = json!("k2");
        signing["use"] = json!("sig");
        let keys = KeySet::from_jwks(with(vec![encryption, signing]).as_bytes()).unwrap();
        assert_eq!(keys.len(), 1);
        assert!(!matches!(
            check_signature(&keys, Algorithm::RS256, Some("k1"), &split(&token).unwrap()),
            Ok(true)
        ));
    }

    #[test]
    fn every_key_set_has_its_own_id_even_from_the_same_document() {
        let (_, jwk) = key_pair(Algorithm::ES256);
        let ids: std::collections::HashSet<u64> = (0..100).map(|_| jwks(&[&jwk]).id).collect();
        assert_eq!(ids.len(), 100);
    }

    #[test]
    fn ec_coordinates_of_the_wrong_length_or_off_the_curve_are_not_keys() {
        let (_, jwk) = key_pair(Algorithm::ES256);
        let mut short = jwk.clone();
        let x = URL_SAFE_NO_PAD.decode(jwk["x"].as_str().unwrap()).unwrap();
        short["x"] = json!(URL_SAFE_NO_PAD.encode(&x[1..]));
        let mut off_curve = jwk.clone();
        let mut y = URL_SAFE_NO_PAD.decode(jwk["y"].as_str().unwrap()).unwrap();
        y[31] ^= 1;
        off_curve["y"] = json!(URL_SAFE_NO_PAD.encode(&y));
        for bad in [short, off_curve] {
            let document = json!({ "keys": [bad] }).to_string();
            assert_eq!(
                KeySet::from_jwks(document.as_bytes()).err(),
                Some("no usable keys")
            );
        }
    }

    #[test]
    fn only_the_base64url_alphabet_without_padding_is_base64url() {
        const ALPHABET: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        for c in (0..=0x7f_u8)
            .map(char::from)
            .chain(['é', '\u{2028}', '\u{ff0d}'])
        {
            let expected = ALPHABET.contains(c);
            // Alone, and at positions on both sides of 16- and 32-byte vector boundaries.
            assert_eq!(is_base64url(&c.to_string()), expected, "{c:?}");
            for at in [0, 31, 32, 63, 64, 99] {
                let mut segment: String = ALPHABET.repeat(2).chars().take(100).collect();
                segment.replace_range(at..=at, &c.to_string());
                assert_eq!(is_base64url(&segment), expected, "{c:?} at {at}");
            }
        }
        assert!(!is_base64url(""));
        assert!(!is_base64url("YWJj="), "padding");
    }

    fn header(json: &str) -> Option<(Option<String>, Option<String>, bool)> {
        let text = |member: Option<Member<'_>>| {
            member.map(|m| m.text().unwrap_or("(not text)").to_owned())
        };
        let header: Header<'_> = serde_json::from_str(json).ok()?;
        Some((text(header.alg), text(header.kid), header.crit))
    }

    #[test]
    fn a_header_reads_like_the_same_json_object_parsed_whole() {
        let some = |s: &str| Some(s.to_owned());
        // Escapes in names and values are undone, as a full JSON parse would.
        assert_eq!(
            header(r#"{"a\u006cg":"RS\u0032\u0035\u0036","kid":"rsa\/a","typ":"JWT"}"#),
            Some((some("RS256"), some("rsa/a"), false))
        );
        // Unknown members of every kind are skipped; a repeated member counts with its last value.
        assert_eq!(
            header(
                r#"{"x":{"alg":"none","y":[1,{"kid":2}]},"alg":"HS256","n":null,"alg":"ES256"}"#
            ),
            Some((some("ES256"), None, false))
        );
        assert_eq!(
            header(r#"{"alg":256,"kid":["a"]}"#),
            Some((some("(not text)"), some("(not text)"), false))
        );
        assert_eq!(
            header(r#"{"alg":null,"kid":{}}"#),
            Some((some("(not text)"), some("(not text)"), false))
        );
        // Without escapes nothing is copied.
        let plain: Header<'_> = serde_json::from_str(r#"{"alg":"RS256","kid":"rsa-a"}"#).unwrap();
        for member in [plain.alg, plain.kid] {
            assert!(matches!(member, Some(Member::Text(Cow::Borrowed(_)))));
        }
        // `crit` counts whatever its value, null included.
        for crit in ["null", "[]", r#"["b64"]"#, "false"] {
            assert_eq!(
                header(&format!(r#"{{"crit":{crit}}}"#)),
                Some((None, None, true))
            );
        }
        for not_an_object in [
            r#"["RS256"]"#,
            r#""RS256""#,
            "null",
            "1",
            r#"{"alg":"RS256"} x"#,
            r#"{"alg":"RS256""#,
        ] {
            assert_eq!(header(not_an_object), None, "{not_an_object}");
        }
    }

    /// The claims of `json` kept for `policy_claims`, with the registered claims read.
    fn claims(json: &str, policy_claims: &[&str]) -> Option<Claims> {
        let kept: Vec<String> = policy_claims.iter().map(|c| c.to_string()).collect();
        decode_claims(&URL_SAFE_NO_PAD.encode(json), &kept).ok()
    }

    #[test]
    fn a_payload_keeps_the_claims_policies_read_and_reads_the_registered_ones() {
        let json = r#"{"iss":"https://idp/","sub":"alice","aud":["a","b"],"exp":2000000000,
            "nbf":1,"iat":2,"roles":["agent"],"email":"alice@example.com","n":{"deep":[1]}}"#;
        let read = claims(json, &["roles", "iss"]).unwrap();
        assert_eq!(read.iss, Some(json!("https://idp/")));
        assert_eq!(read.sub, Some(json!("alice")));
        assert_eq!(read.aud, Some(json!(["a", "b"])));
        assert_eq!(
            (read.exp, read.nbf, read.iat),
            (Some(json!(2_000_000_000)), Some(json!(1)), Some(json!(2)))
        );
        // Only what the policies read is kept, a registered claim included; the rest is skipped.
        assert_eq!(
            Value::Object(read.kept),
            json!({"iss": "https://idp/", "roles": ["agent"]})
        );
        assert!(claims(json, &[]).unwrap().kept.is_empty());
        // A claim named in escapes is the same claim, as a full JSON parse would read it.
        let escaped = claims(r#"{"r\u006fles":"agent","\u0073ub":"bob"}"#, &["roles"]).unwrap();
        assert_eq!(Value::Object(escaped.kept), json!({"roles": "agent"}));
        assert_eq!(escaped.sub, Some(json!("bob")));
    }

    #[test]
    fn a_repeated_claim_counts_with_its_last_value_kept_or_not() {
        let json =
            r#"{"sub":"alice","roles":"admin","sub":"mallory","roles":"agent","exp":1,"exp":2}"#;
        let read = claims(json, &["roles"]).unwrap();
        assert_eq!(read.sub, Some(json!("mallory")));
        assert_eq!(read.exp, Some(json!(2)));
        assert_eq!(Value::Object(read.kept.clone()), json!({"roles": "agent"}));
        // As a full parse of the object reads it.
        let whole: Map<String, Value> = serde_json::from_str(json).unwrap();
        assert_eq!(read.sub.as_ref(), whole.get("sub"));
        assert_eq!(read.kept.get("roles"), whole.get("roles"));
    }

    #[test]
    fn a_payload_that_is_not_one_json_object_has_no_claims() {
        for not_an_object in [
            r#"["sub"]"#,
            r#""sub""#,
            "null",
            "1",
            r#"{"sub":"alice"} x"#,
            r#"{"sub":"alice"}{}"#,
            r#"{"sub":"alice""#,
            r#"{"sub":"alice","n":[1,}"#,
            "",
        ] {
            assert!(claims(not_an_object, &["sub"]).is_none(), "{not_an_object}");
        }
        // Whitespace around the object is JSON's.
        assert!(claims(" {\"sub\":\"alice\"}\n", &[]).is_some());
        // Not base64url.
        assert!(decode_claims("e30=", &[]).is_err());
    }
}
