//! The RSA verification of the benchmark examples' floor: a caller JWT's signature checked with
//! a key parsed once, and nothing else of the token looked at.

use aws_lc_rs::signature::{ParsedPublicKey, RSA_PKCS1_2048_8192_SHA256, RsaPublicKeyComponents};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// The first RSA key of a JWKS document, parsed for RS256.
pub fn rsa_key(jwks: &[u8]) -> ParsedPublicKey {
    let jwks: serde_json::Value = serde_json::from_slice(jwks).expect("a JWKS document");
    let key = jwks["keys"]
        .as_array()
        .and_then(|keys| keys.iter().find(|k| k["kty"] == "RSA"))
        .expect("an RSA key in the JWKS");
    let component = |name: &str| {
        URL_SAFE_NO_PAD
            .decode(key[name].as_str().expect("n and e"))
            .expect("base64url")
    };
    let (n, e) = (component("n"), component("e"));
    RsaPublicKeyComponents { n: &n, e: &e }
        .to_parsed_public_key(&RSA_PKCS1_2048_8192_SHA256)
        .expect("a valid RSA key")
}

/// Whether `token` (a compact JWS) carries a valid RS256 signature by `key`.
pub fn signature_ok(key: &ParsedPublicKey, token: &str) -> bool {
    let Some((signed, signature)) = token.rsplit_once('.') else {
        return false;
    };
    let mut bytes = [0u8; 1024];
    URL_SAFE_NO_PAD
        .decode_slice(signature, &mut bytes)
        .is_ok_and(|len| key.verify_sig(signed.as_bytes(), &bytes[..len]).is_ok())
}
