//! Webhook signature canonicalisation and checking: arbitrary URLs, parameters, bodies and
//! headers never panic and never validate without the Auth Token's HMAC.

#![no_main]

use std::collections::BTreeMap;

use libfuzzer_sys::fuzz_target;
use secrecy::SecretString;
use tokenmint::twilio::webhook::{Payload, WebhookRequest, WebhookVerifier, string_to_sign};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // Fields separated by a unit separator: url, params (k=v&k=v), body, signature, settings.
    let mut fields = text.split('\u{1f}');
    let url = fields.next().unwrap_or_default();
    let params: Vec<(String, String)> = fields
        .next()
        .unwrap_or_default()
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    let body = fields.next();
    let signature = fields.next().unwrap_or_default();
    let settings = fields.next();

    let _ = string_to_sign(url, &params);
    let tokens = [SecretString::from("fuzz-auth-token-0123456789")];
    let keys = BTreeMap::from([("k1".to_owned(), SecretString::from("fuzz-shared-key-0123"))]);
    let verifier = WebhookVerifier::new(&tokens, &keys);
    for payload in [
        Payload::Empty,
        Payload::Form(&params),
        Payload::Raw(body.unwrap_or_default().as_bytes()),
    ] {
        let request = WebhookRequest {
            url,
            payload,
            signature,
            signature_settings: settings,
        };
        assert!(verifier.verify(&request).is_err(), "a forged signature was accepted");
    }
});
