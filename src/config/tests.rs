use std::collections::HashMap;
use std::io::Write;

use super::*;

const ACCOUNT: &str = "AC0123456789abcdef0123456789abcdef";
const KEY: &str = "SKfedcba9876543210fedcba9876543210";
const KEY2: &str = "SK00000000000000000000000000000002";
const SECRET: &str = "known-api-key-secret-value-0001";
const SECRET2: &str = "known-api-key-secret-value-0002";
const HS_SECRET: &str = "known-hs256-client-secret-0123456789abcdef";

fn env() -> Env {
    env_with(&[])
}

/// [`env`] and the variables in `more`.
fn env_with(more: &[(&str, &str)]) -> Env {
    let mut vars = HashMap::from([
        ("ACCOUNT".into(), ACCOUNT.into()),
        ("KEY".into(), KEY.into()),
        ("SECRET".into(), SECRET.into()),
        ("KEY2".into(), KEY2.into()),
        ("SECRET2".into(), SECRET2.into()),
        ("HS".into(), HS_SECRET.into()),
    ]);
    vars.extend(
        more.iter()
            .map(|&(name, value)| (name.into(), value.into())),
    );
    Env::Fixed(vars)
}

const VALID: &str = r#"
[server]
listen = "127.0.0.1:8081"
admin_listen = "127.0.0.1:9091"
default_app = "support"

[accounts.main]
account_sid = "env:ACCOUNT"
region = "ie1"
rotation_period = "30days"
[[accounts.main.signing_keys]]
sid = "env:KEY"
secret = "env:SECRET"
created = "2026-01-01"
[[accounts.main.signing_keys]]
sid = "env:KEY2"
secret = "env:SECRET2"

[auth.corp]
kind = "jwt"
issuer = "https://login.example.com/"
audiences = ["support-web"]
algorithms = ["HS256"]
hs256_secret = "env:HS"

[auth.edge]
kind = "gateway"
identity_header = "X-Authenticated-User"
claim_headers = { email = "X-Authenticated-Email" }
trusted_proxies = ["10.0.0.0/8", "192.168.1.1"]

[apps.support]
account = "main"
auth = "corp"
identity = "{sub|hash}"
ttl = "30m"
max_ttl = "4h"
cors_origins = ["https://support.example.com", "http://localhost:3000"]
rate_limit = "30/min"

[apps.support.grants.voice]
incoming = true
outgoing_application_sid = "AP00112233445566778899aabbccddeeff"
outgoing_params = { agent = "{sub}" }
push_credentials = { ios = "CR00112233445566778899aabbccddeeff" }
require_claims = { roles = "agent" }

[apps.support.grants.video]
rooms = ["support-*"]

[apps.edge]
account = "main"
auth = "edge"
identity = "user_{email|hash}"

[apps.edge.grants.sync]
service_sid = "IS00112233445566778899aabbccddeeff"
"#;

fn load_text(toml: &str) -> Result<Settings, ConfigError> {
    load(&Source::text(toml).with_env(env()))
}

fn problems(toml: &str) -> Vec<Problem> {
    load_text(toml)
        .expect_err("configuration was accepted")
        .problems
}

fn has(problems: &[Problem], path: &str, fragment: &str) -> bool {
    problems
        .iter()
        .any(|p| p.path == path && p.message.contains(fragment))
}

#[track_caller]
fn assert_problem(problems: &[Problem], path: &str, fragment: &str) {
    assert!(
        has(problems, path, fragment),
        "no problem at {path} containing {fragment:?} in {problems:#?}"
    );
}

#[test]
fn built_in_demo_configuration_is_valid() {
    let settings = load(&Source::default()).unwrap();
    assert_eq!(settings.server.listen.to_string(), "127.0.0.1:8080");
    assert!(settings.server.allow_literal_secrets);
    assert_eq!(settings.server.default_app.as_deref(), Some("demo"));
    assert!(settings.apps.contains_key("demo"));
}

#[test]
fn a_valid_file_becomes_domain_types() {
    let settings = load_text(VALID).unwrap();
    let account = &settings.accounts["main"];
    assert_eq!(account.keys.len(), 2);
    assert_eq!(account.keys[0].created, Some(1_767_225_600)); // 2026-01-01
    assert_eq!(account.rotation_period, Duration::from_secs(30 * 24 * 3600));
    assert_eq!(account.signer().key_sid().as_str(), KEY);
    assert_eq!(account.region.as_deref(), Some("ie1"));
    let app = &settings.apps["support"];
    assert_eq!(app.policy.ttl_secs, 1800);
    assert_eq!(app.policy.max_ttl_secs, 4 * 3600);
    assert_eq!(
        app.rate_limit,
        Some(RateLimit {
            count: 30,
            per: Duration::from_secs(60)
        })
    );
    assert!(app.cors.allows(b"https://support.example.com"));
    assert!(!app.cors.allows(b"https://support.example.com/"));
    assert_eq!(
        settings.server.admin_listen.unwrap().to_string(),
        "127.0.0.1:9091"
    );
}

#[test]
fn defaults_come_from_code_not_the_demo_file() {
    let minimal = r#"
[accounts.a]
account_sid = "env:ACCOUNT"
[[accounts.a.signing_keys]]
sid = "env:KEY"
secret = "env:SECRET"
[auth.g]
kind = "gateway"
identity_header = "X-User"
trusted_proxies = ["127.0.0.1"]
[apps.x]
account = "a"
auth = "g"
[apps.x.grants.video]
rooms = ["*"]
"#;
    let settings = load_text(minimal).unwrap();
    assert_eq!(settings.server.listen.to_string(), "0.0.0.0:8080");
    assert_eq!(settings.server.admin_listen, None);
    assert_eq!(settings.server.request_timeout, Duration::from_secs(10));
    assert_eq!(settings.server.shutdown_grace, Duration::from_secs(10));
    assert_eq!(settings.server.max_body_bytes, 16384);
    assert!(!settings.server.allow_literal_secrets);
    assert_eq!(settings.server.default_app, None);
    assert_eq!(settings.log.format, LogFormat::Json);
    assert_eq!(settings.log.level, "info");
    let app = &settings.apps["x"];
    assert_eq!((app.policy.ttl_secs, app.policy.max_ttl_secs), (3600, 3600));
    // nothing inherited from the demo file
    assert!(!settings.apps.contains_key("demo"));
    assert!(!settings.accounts.contains_key("demo"));
}

#[test]
fn environment_variables_override_the_file() {
    let env = env_with(&[
        ("TOKENMINT__SERVER__LISTEN", "127.0.0.1:9999"),
        ("TOKENMINT__APPS__SUPPORT__TTL", "2h"),
        ("TOKENMINT__SERVER__MAX_BODY_BYTES", "2048"),
        ("TOKENMINT__SERVER__ALLOW_LITERAL_SECRETS", "true"),
        // A string that looks like a number stays as written.
        ("TOKENMINT__AUTH__CORP__ISSUER", "0123"),
    ]);
    let settings = load(&Source::text(VALID).with_env(env)).unwrap();
    assert_eq!(settings.server.listen.to_string(), "127.0.0.1:9999");
    assert_eq!(settings.apps["support"].policy.ttl_secs, 7200);
    assert_eq!(settings.server.max_body_bytes, 2048);
    assert!(settings.server.allow_literal_secrets);
    let AuthSettings::Jwt(corp) = &settings.auth["corp"] else {
        panic!("auth.corp is not a jwt authenticator")
    };
    assert_eq!(corp.issuer, "0123");
}

#[test]
fn a_boolean_is_true_or_false_and_nothing_else() {
    let with_flag = |flag: &str| {
        VALID.replace(
            "[server]",
            &format!("[server]\nallow_literal_secrets = {flag}"),
        )
    };
    for (flag, value) in [("true", true), ("false", false), ("\"false\"", false)] {
        let settings = load_text(&with_flag(flag)).unwrap_or_else(|e| panic!("{flag}: {e}"));
        assert_eq!(settings.server.allow_literal_secrets, value, "{flag}");
    }
    // As a reference gives it.
    let env = env_with(&[("FLAG", "true")]);
    let settings = load(&Source::text(with_flag("\"env:FLAG\"")).with_env(env)).unwrap();
    assert!(settings.server.allow_literal_secrets);
    // The config crate alone would read these as flags.
    for flag in ["\"yes\"", "\"on\"", "\"TRUE\"", "1", "0", "\"flase\""] {
        assert_problem(
            &problems(&with_flag(flag)),
            "server.allow_literal_secrets",
            "wrong type or value (not shown): expected a boolean",
        );
        let incoming = VALID.replace("incoming = true", &format!("incoming = {flag}"));
        assert_problem(
            &problems(&incoming),
            "apps.support.grants.voice.incoming",
            "expected a boolean",
        );
    }
}

#[test]
fn a_count_is_a_whole_number_and_nothing_else() {
    let with_limit =
        |limit: &str| VALID.replace("[server]", &format!("[server]\nmax_body_bytes = {limit}"));
    for limit in ["2048", "\"2048\""] {
        let settings = load_text(&with_limit(limit)).unwrap_or_else(|e| panic!("{limit}: {e}"));
        assert_eq!(settings.server.max_body_bytes, 2048, "{limit}");
    }
    // The config crate alone would read `true` as 1 and round a fraction.
    for limit in ["true", "2048.5", "1e3", "\"2k\"", "\"+2048\"", "-1"] {
        assert_problem(
            &problems(&with_limit(limit)),
            "server.max_body_bytes",
            "wrong type or value (not shown): expected a whole number",
        );
    }
}

/// `VALID` with references in values of every kind that is not a secret: a list, a
/// duration, a number, a log filter.
fn with_plain_references() -> String {
    VALID
        .replace(
            r#"audiences = ["support-web"]"#,
            r#"audiences = ["env:AUDIENCE", "file:FILE"]"#,
        )
        .replace(r#"ttl = "30m""#, r#"ttl = "env:TTL""#)
        .replace(
            "[server]\n",
            "[server]\nmax_body_bytes = \"env:MAX_BODY\"\n",
        )
        + "\n[log]\nlevel = \"env:LOG_LEVEL\"\n"
}

#[test]
fn any_string_value_may_be_a_reference() {
    let mut file = tempfile::NamedTempFile::new().unwrap();
    writeln!(file, "support-mobile").unwrap();
    let toml = with_plain_references().replace("FILE", &file.path().display().to_string());
    let env = env_with(&[
        // A resolved value is not resolved again.
        ("AUDIENCE", "file:/nonexistent/audience"),
        ("TTL", "2h"),
        ("MAX_BODY", "2048"),
        ("LOG_LEVEL", "debug"),
    ]);
    let settings = load(&Source::text(&toml).with_env(env)).unwrap();
    let AuthSettings::Jwt(corp) = &settings.auth["corp"] else {
        panic!("auth.corp is not a jwt authenticator")
    };
    assert_eq!(
        corp.audiences,
        ["file:/nonexistent/audience", "support-mobile"]
    );
    assert_eq!(settings.apps["support"].policy.ttl_secs, 7200);
    assert_eq!(settings.server.max_body_bytes, 2048);
    assert_eq!(settings.log.level, "debug");
}

#[test]
fn a_reference_that_does_not_resolve_is_one_problem_at_its_key() {
    let toml = with_plain_references()
        .replace("FILE", "/nonexistent/audience")
        .replace(r#"listen = "127.0.0.1:8081""#, r#"listen = "env:LISTEN""#)
        .replace("env:ACCOUNT", "env:ACCOUNT_SID");
    let problems = problems(&toml);
    let expected = [
        (
            "auth.corp.audiences[0]",
            "environment variable AUDIENCE is not set",
        ),
        (
            "auth.corp.audiences[1]",
            "cannot read file /nonexistent/audience",
        ),
        ("log.level", "environment variable LOG_LEVEL is not set"),
        ("server.listen", "environment variable LISTEN is not set"),
        (
            "server.max_body_bytes",
            "environment variable MAX_BODY is not set",
        ),
        ("apps.support.ttl", "environment variable TTL is not set"),
        (
            "accounts.main.account_sid",
            "environment variable ACCOUNT_SID is not set",
        ),
    ];
    for (path, message) in expected {
        assert_problem(&problems, path, message);
    }
    // Nothing more: not "is required" for the account SID, nor the like.
    assert_eq!(problems.len(), expected.len(), "{problems:#?}");
}

#[test]
fn every_problem_is_reported_with_its_key_path() {
    let broken = r#"
[server]
lisen = "0.0.0.0:1"
default_app = "nope"

[accounts.main]
account_sid = "AC123"
[[accounts.main.signing_keys]]
sid = "env:KEY"
secret = "env:MISSING_SECRET_VAR"
note = "first key"

[auth.corp]
kind = "jwt"
issuer = ""
audiences = []
algorithms = ["none", "RS256"]
jwks_url = "http://idp.example.com/jwks.json"
jwks_file = "/nonexistent/jwks.json"

[auth.short]
kind = "jwt"
issuer = "https://i/"
audiences = ["a"]
algorithms = ["HS256"]
hs256_secret = "env:SECRET2"

[auth.edge]
kind = "gateway"
identity_header = "X-User"
issuer = "https://wrong-kind/"

[apps.support]
account = "ghost"
auth = "edge"
identity = "{email}"
ttl = "2h"
max_ttl = "25h"
ttll = "1h"
cors_origins = ["*", "https://ok.example.com/path"]
rate_limit = "lots"

[apps.support.grants.voice]
outgoing_application_sid = "XX00112233445566778899aabbccddeeff"
incomming = true
[apps.support.grants.video]
rooms = []
[apps.support.grants.fax]
number = "1"
"#;
    let problems = problems(broken);
    assert_problem(&problems, "server.lisen", "unknown key");
    assert_problem(&problems, "apps.support.ttll", "unknown key");
    assert_problem(&problems, "apps.support.grants.fax", "unknown key");
    // Inside an optional table, and in a list element, the path is written like any other.
    assert_problem(
        &problems,
        "apps.support.grants.voice.incomming",
        "unknown key",
    );
    assert_problem(
        &problems,
        "accounts.main.signing_keys[0].note",
        "unknown key",
    );
    assert_problem(&problems, "server.default_app", "\"nope\"");
    assert_problem(&problems, "accounts.main.account_sid", "account SID");
    assert_problem(
        &problems,
        "accounts.main.signing_keys[0].secret",
        "MISSING_SECRET_VAR",
    );
    assert_problem(&problems, "auth.corp.issuer", "empty");
    assert_problem(&problems, "auth.corp.audiences", "at least one");
    assert_problem(&problems, "auth.corp.algorithms[0]", "\"none\"");
    // Two key sources are one problem, and each source's own problems are reported with it.
    assert_problem(&problems, "auth.corp", "exactly one key source");
    assert_problem(&problems, "auth.corp.jwks_url", "https");
    assert_problem(&problems, "auth.corp.jwks_file", "cannot read");
    assert_problem(&problems, "auth.short.hs256_secret", "32 bytes");
    assert_problem(
        &problems,
        "auth.edge.issuer",
        "not a setting of kind \"gateway\"",
    );
    assert_problem(&problems, "auth.edge", "trusted_proxies");
    assert_problem(&problems, "apps.support.account", "\"ghost\"");
    // Found although the app's grants have a problem of their own (the video rooms).
    assert_problem(&problems, "apps.support.identity", "\"email\"");
    assert_problem(
        &problems,
        "apps.support.grants.video.rooms",
        "at least one room pattern",
    );
    assert_problem(&problems, "apps.support.max_ttl", "24h");
    assert_problem(&problems, "apps.support.cors_origins[0]", "wildcard");
    assert_problem(&problems, "apps.support.cors_origins[1]", "no path");
    assert_problem(&problems, "apps.support.rate_limit", "\"lots\"");
    assert_problem(
        &problems,
        "apps.support.grants.voice.outgoing_application_sid",
        "TwiML application SID",
    );
}

#[test]
fn ttl_may_not_exceed_max_ttl() {
    let toml = VALID.replace("ttl = \"30m\"", "ttl = \"5h\"");
    assert_problem(&problems(&toml), "apps.support.ttl", "max_ttl");
    // Each over 24h is a problem at its own key, the one written.
    let both = problems(&VALID.replace(
        "ttl = \"30m\"\nmax_ttl = \"4h\"",
        "ttl = \"25h\"\nmax_ttl = \"48h\"",
    ));
    assert_problem(&both, "apps.support.ttl", "must not exceed 24h");
    assert_problem(&both, "apps.support.max_ttl", "must not exceed 24h");
    let alone = problems(&VALID.replace("ttl = \"30m\"\nmax_ttl = \"4h\"", "ttl = \"30h\""));
    assert_problem(&alone, "apps.support.ttl", "must not exceed 24h");
    assert!(!has(&alone, "apps.support.max_ttl", ""), "{alone:#?}");
}

#[test]
fn literal_secrets_are_refused_unless_allowed() {
    let toml = VALID.replace("secret = \"env:SECRET\"", &format!("secret = \"{SECRET}\""));
    let problems = problems(&toml);
    assert_problem(
        &problems,
        "accounts.main.signing_keys[0].secret",
        "references",
    );
    let allowed = toml.replace("[server]", "[server]\nallow_literal_secrets = true");
    assert!(load_text(&allowed).is_ok());
}

#[test]
fn a_plain_setting_pointed_at_a_secret_never_prints_it() {
    // An operator gives plain settings references to secrets by mistake: the problems name the
    // references, never the values nor a piece of them.
    let mut file = tempfile::NamedTempFile::new().unwrap();
    writeln!(file, "{SECRET2}").unwrap();
    let toml = VALID
        .replace(
            "listen = \"127.0.0.1:8081\"",
            &format!("listen = \"file:{}\"", file.path().display()),
        )
        .replace("default_app = \"support\"", "default_app = \"env:SECRET\"")
        .replace("\"10.0.0.0/8\"", "\"env:HS\"")
        .replace(
            "identity = \"user_{email|hash}\"",
            "identity = \"env:TEMPLATE\"",
        )
        .replace("[auth.corp]", "[log]\nlevel = \"env:LEVEL\"\n\n[auth.corp]")
        .replace("{ agent = \"{sub}\" }", "{ agent = \"env:PARAM\" }")
        .replace(
            "service_sid = \"IS00112233445566778899aabbccddeeff\"",
            "service_sid = \"IS00112233445566778899aabbccddeeff\"\n\n\
             [apps.edge.grants.video]\nrooms = [\"env:ROOM\"]",
        );
    let env = env_with(&[
        // A template whose claim name is a secret, which the gateway authenticator does not
        // supply.
        ("TEMPLATE", &format!("{{{HS_SECRET}}}")),
        // Problems that quote a piece of the value (a word of a log filter, a template's
        // filter name) or sit above the setting (the claims an app's grants use).
        ("LEVEL", "SecretLevelWord0042"),
        ("PARAM", "{sub|SecretFilter0042}"),
        ("ROOM", "room-{SecretClaim0042}"),
    ]);
    let error = load(&Source::text(&toml).with_env(env)).unwrap_err();
    let text = format!("{error}\n{error:?}");
    for secret in [
        SECRET,
        SECRET2,
        HS_SECRET,
        "SecretLevelWord0042",
        "SecretFilter0042",
        "SecretClaim0042",
    ] {
        assert!(!text.contains(secret), "secret leaked in: {text}");
    }
    for (path, message) in [
        ("server.listen", "the value of file:"),
        (
            "apps.edge.identity",
            "the value of env:TEMPLATE is not valid here",
        ),
        ("server.default_app", "the value of env:SECRET"),
        ("auth.edge.trusted_proxies[0]", "the value of env:HS"),
        ("log.level", "the value of env:LEVEL"),
        (
            "apps.support.grants.voice.outgoing_params.agent",
            "the value of env:PARAM",
        ),
        ("apps.edge.grants.video.rooms[0]", "the value of env:ROOM"),
    ] {
        assert_problem(&error.problems, path, message);
    }
}

#[test]
fn errors_and_debug_output_never_contain_secret_values() {
    // A secret that is present but too short, and a literal one that is refused.
    let toml = VALID
        .replace("hs256_secret = \"env:HS\"", "hs256_secret = \"env:SECRET\"")
        .replace(
            "secret = \"env:SECRET2\"",
            &format!("secret = \"{HS_SECRET}\""),
        );
    let error = load_text(&toml).unwrap_err();
    let text = format!("{error}\n{error:?}");
    for secret in [SECRET, SECRET2, HS_SECRET] {
        assert!(!text.contains(secret), "secret leaked in: {text}");
    }

    let settings = load_text(VALID).unwrap();
    let debug = format!("{settings:?}");
    for secret in [SECRET, SECRET2, HS_SECRET] {
        assert!(!debug.contains(secret), "secret leaked in Debug output");
    }
    assert!(
        debug.contains(KEY),
        "Debug output should still name key SIDs"
    );
}

#[test]
fn type_and_syntax_errors_say_where_not_what() {
    let text = |error: ConfigError| format!("{error}\n{error:?}");
    let wrong_type = [
        // An Auth Token written as a string where the list belongs, and a secret in a list.
        (
            VALID.replace(
                "[accounts.main]",
                &format!("[accounts.main]\nauth_tokens = \"{SECRET}\""),
            ),
            "accounts.main.auth_tokens",
            "expected a sequence",
        ),
        (
            VALID.replace(
                "secret = \"env:SECRET\"",
                &format!("secret = [\"{SECRET}\"]"),
            ),
            "accounts.main.signing_keys[0].secret",
            "expected a string",
        ),
    ];
    for (toml, path, expected) in wrong_type {
        let error = load_text(&toml).unwrap_err();
        assert_problem(&error.problems, path, expected);
        assert!(!text(error).contains(SECRET), "{path}: the value was shown");
    }

    // The same from the environment.
    let env = env_with(&[("TOKENMINT__ACCOUNTS__MAIN__AUTH_TOKENS", SECRET)]);
    let error = load(&Source::text(VALID).with_env(env)).unwrap_err();
    assert_problem(
        &error.problems,
        "accounts.main.auth_tokens",
        "expected a sequence",
    );
    assert!(!text(error).contains(SECRET));

    // A line the TOML parser cannot read (here the 13th) is not quoted.
    let broken = VALID.replace(
        "secret = \"env:SECRET\"",
        &format!("secret = \"{SECRET}\" x"),
    );
    let error = load_text(&broken).unwrap_err();
    let problem = &error.problems[0];
    assert!(
        problem.path.starts_with("(file) line 13, column "),
        "{problem:?}"
    );
    assert!(
        problem.message.starts_with("not valid TOML: "),
        "{problem:?}"
    );
    assert!(!text(error).contains(SECRET), "the line was quoted");
}

#[test]
fn every_value_of_the_wrong_type_is_reported_with_the_other_problems() {
    let broken = VALID
        // In a list of tables, in a list, in a nested table, and a whole table.
        .replace(
            "secret = \"env:SECRET2\"",
            &format!("secret = [\"{SECRET}\"]"),
        )
        .replace(
            "rooms = [\"support-*\"]",
            &format!("rooms = [\"support-*\", [\"{SECRET}\"]]"),
        )
        .replace("incoming = true", &format!("incoming = [\"{SECRET}\"]"))
        .replace(
            "[apps.edge.grants.sync]\nservice_sid = \"IS00112233445566778899aabbccddeeff\"",
            &format!("grants = \"{SECRET}\""),
        )
        .replace("[apps.edge]\naccount", "[apps.edge]\nacount")
        .replace("ttl = \"30m\"", "ttl = \"30 fortnights\"")
        .replace(
            "account_sid = \"env:ACCOUNT\"",
            "account_sid = \"env:NOPE\"",
        );
    let error = load_text(&broken).unwrap_err();
    let problems = &error.problems;
    let wrong = "wrong type or value (not shown): expected";
    assert_problem(problems, "accounts.main.signing_keys[1].secret", wrong);
    assert_problem(problems, "apps.support.grants.video.rooms[1]", wrong);
    assert_problem(problems, "apps.support.grants.voice.incoming", wrong);
    assert_problem(problems, "apps.edge.grants", wrong);
    // The rest of the file is still read and checked.
    assert_problem(problems, "apps.edge.acount", "unknown key");
    assert_problem(problems, "apps.support.ttl", "\"30 fortnights\"");
    assert_problem(problems, "accounts.main.account_sid", "NOPE");
    // A dropped key is one problem: not also "is required" or "offers no grant".
    for path in [
        "accounts.main.signing_keys[1].secret",
        "apps.support.grants.video.rooms",
        "apps.edge.grants",
    ] {
        let at = problems.iter().filter(|p| p.path.starts_with(path)).count();
        assert_eq!(at, 1, "{path}: {problems:#?}");
    }
    let shown = format!("{error}\n{error:?}");
    assert!(!shown.contains(SECRET), "a value was shown: {shown}");

    // An account written as a string: one problem, and the app naming it is not told that no
    // account "main" is configured.
    let from_auth = &VALID[VALID.find("[auth.corp]").unwrap()..];
    let whole_table = format!("[accounts]\nmain = \"{SECRET}\"\n\n{from_auth}");
    let only = load_text(&whole_table).unwrap_err().problems;
    assert_eq!(only.len(), 1, "{only:#?}");
    assert_problem(&only, "accounts.main", "expected a table");
}

#[test]
fn file_references_are_read_once_at_load() {
    let mut file = tempfile::NamedTempFile::new().unwrap();
    writeln!(file, "{SECRET}").unwrap();
    let toml = VALID.replace(
        "secret = \"env:SECRET\"",
        &format!("secret = \"file:{}\"", file.path().display()),
    );
    assert!(load_text(&toml).is_ok());

    let missing = VALID.replace(
        "secret = \"env:SECRET\"",
        "secret = \"file:/nonexistent/tm-secret\"",
    );
    assert_problem(
        &problems(&missing),
        "accounts.main.signing_keys[0].secret",
        "/nonexistent/tm-secret",
    );
}

#[test]
fn a_config_file_that_cannot_be_read_is_named() {
    let error = load(&Source::file("/nonexistent/tokenmint.toml")).unwrap_err();
    assert_eq!(error.problems[0].path, "--config");
    assert!(
        error.problems[0]
            .message
            .contains("/nonexistent/tokenmint.toml")
    );
}

#[test]
fn syntax_errors_are_configuration_errors() {
    let error = load_text("[server\nlisten=").unwrap_err();
    assert_eq!(error.problems.len(), 1);
}

#[test]
fn a_jwt_authenticator_keeps_the_claims_its_apps_policies_read() {
    // A second app on `corp` whose identity reads `email` and whose video rooms read `team`; an
    // app on another JWT authenticator reads `tenant`, which `corp`'s callers need not keep.
    let toml = format!(
        r#"{VALID}
[auth.partner]
kind = "jwt"
issuer = "https://partner.example.com/"
audiences = ["partner"]
algorithms = ["HS256"]
hs256_secret = "env:HS"

[apps.agents]
account = "main"
auth = "corp"
identity = "{{email}}"
[apps.agents.grants.video]
rooms = ["team-{{team}}"]
[apps.agents.grants.sync]
service_sid = "IS00112233445566778899aabbccddeeff"
require_claims = {{ iss = "https://login.example.com/" }}

[apps.partner]
account = "main"
auth = "partner"
identity = "{{tenant}}-{{sub}}"
[apps.partner.grants.sync]
service_sid = "IS00112233445566778899aabbccddeeff"
"#
    );
    let settings = load_text(&toml).unwrap();
    let kept = |name: &str| match &settings.auth[name] {
        AuthSettings::Jwt(jwt) => {
            let mut claims = jwt.policy_claims.clone();
            claims.sort();
            claims
        }
        AuthSettings::Gateway(_) => panic!("{name} is a gateway"),
    };
    // `support` reads roles, `agents` email, team and iss; `sub` is every caller's subject.
    assert_eq!(kept("corp"), ["email", "iss", "roles", "team"]);
    assert_eq!(kept("partner"), ["tenant"]);
}

#[test]
fn jwt_authenticators_need_exactly_one_key_source() {
    let none = VALID.replace("hs256_secret = \"env:HS\"", "");
    assert_problem(&problems(&none), "auth.corp", "exactly one key source");
    let two = VALID.replace(
        "hs256_secret = \"env:HS\"",
        "hs256_secret = \"env:HS\"\njwks_url = \"https://login.example.com/jwks\"",
    );
    let two = problems(&two);
    assert_problem(&two, "auth.corp", "exactly one key source");
    // Not also what each source would allow, which contradict each other.
    assert!(
        !two.iter().any(|p| p.path == "auth.corp.algorithms"),
        "{two:#?}"
    );
}

#[test]
fn key_sets_never_verify_hmac_and_secrets_verify_only_hs256() {
    let jwks_with_hmac = VALID.replace(
        "hs256_secret = \"env:HS\"",
        "jwks_url = \"https://login.example.com/jwks\"",
    );
    assert_problem(&problems(&jwks_with_hmac), "auth.corp.algorithms", "HMAC");
    let secret_with_rsa = VALID.replace(
        "algorithms = [\"HS256\"]",
        "algorithms = [\"HS256\", \"RS256\"]",
    );
    assert_problem(
        &problems(&secret_with_rsa),
        "auth.corp.algorithms",
        "HS256 only",
    );
}

#[test]
fn jwks_urls_may_be_http_only_on_loopback() {
    for url in [
        "http://127.0.0.1:9000/jwks",
        "http://localhost/jwks",
        "http://[::1]/jwks",
        "https://idp/jwks",
    ] {
        let toml = VALID
            .replace("algorithms = [\"HS256\"]", "algorithms = [\"RS256\"]")
            .replace(
                "hs256_secret = \"env:HS\"",
                &format!("jwks_url = \"{url}\""),
            );
        assert!(load_text(&toml).is_ok(), "{url} refused");
    }
}

#[test]
fn gateway_templates_may_use_only_supplied_claims() {
    let toml = VALID.replace(
        "identity = \"user_{email|hash}\"",
        "identity = \"{groups}\"",
    );
    assert_problem(&problems(&toml), "apps.edge.identity", "\"groups\"");
    // Each at the key that reads the claim.
    let toml = VALID.replace(
        "[apps.edge.grants.sync]\n",
        "[apps.edge.grants.video]\nrooms = [\"team-*\", \"{room}\"]\n\
         [apps.edge.grants.voice]\noutgoing_application_sid = \"AP00112233445566778899aabbccddeeff\"\n\
         outgoing_params = { to = \"{phone}\" }\nrequire_claims = { roles = \"agent\" }\n\
         [apps.edge.grants.sync]\n",
    );
    let problems = problems(&toml);
    for (key, claim) in [
        ("video.rooms[1]", "room"),
        ("voice.outgoing_params.to", "phone"),
        ("voice.require_claims.roles", "roles"),
    ] {
        assert_problem(
            &problems,
            &format!("apps.edge.grants.{key}"),
            &format!("{claim:?}"),
        );
    }
}

#[test]
fn a_room_pattern_problem_names_its_index() {
    let toml = VALID.replace(
        "rooms = [\"support-*\"]",
        "rooms = [\"support-*\", \"{sub\"]",
    );
    assert_problem(
        &problems(&toml),
        "apps.support.grants.video.rooms[1]",
        "unclosed '{'",
    );
}

#[test]
fn an_app_must_offer_a_grant() {
    let toml = VALID.replace(
        "[apps.edge.grants.sync]\nservice_sid = \"IS00112233445566778899aabbccddeeff\"",
        "",
    );
    assert_problem(&problems(&toml), "apps.edge.grants", "at least one grant");
}

#[test]
fn web_and_an_empty_name_are_not_push_platforms() {
    for (platform, message) in [("web", "no push credential"), ("\"\"", "not be empty")] {
        let toml = VALID.replace(
            "push_credentials = { ios = ",
            &format!("push_credentials = {{ {platform} = "),
        );
        let path = format!(
            "apps.support.grants.voice.push_credentials.{}",
            platform.trim_matches('"')
        );
        assert_problem(&problems(&toml), &path, message);
    }
}

#[test]
fn unknown_authenticator_kinds_are_refused() {
    let toml = VALID.replace("kind = \"gateway\"", "kind = \"saml\"");
    assert_problem(&problems(&toml), "auth.edge.kind", "\"saml\"");
    // A wrong or missing kind does not hide the problems of the settings that say which kind
    // was meant.
    let corp = "kind = \"jwt\"\nissuer = \"https://login.example.com/\"";
    for kind in ["kind = \"JWT\"", ""] {
        let toml = VALID
            .replace(corp, &format!("{kind}\nissuer = \"\""))
            .replace("hs256_secret = \"env:HS\"", "hs256_secret = \"env:UNSET\"");
        let problems = problems(&toml);
        assert_problem(&problems, "auth.corp.kind", "\"jwt\" or \"gateway\"");
        assert_problem(&problems, "auth.corp.issuer", "must not be empty");
        assert_problem(&problems, "auth.corp.hs256_secret", "UNSET is not set");
    }
}

#[test]
fn durations_below_their_minimum_are_refused() {
    let with = |server: &str, corp: &str| {
        VALID
            .replace(
                "default_app = \"support\"",
                &format!("default_app = \"support\"\n{server}"),
            )
            .replace(
                "hs256_secret = \"env:HS\"",
                &format!("hs256_secret = \"env:HS\"\n{corp}"),
            )
    };
    let too_short = problems(&with(
        "request_timeout = \"0s\"\nheader_read_timeout = \"900ms\"",
        "jwks_cache_ttl = \"0s\"\njwks_refetch_cooldown = \"500ms\"\nleeway = \"6m\"",
    ));
    assert_problem(&too_short, "server.request_timeout", "at least 100ms");
    assert_problem(&too_short, "server.header_read_timeout", "at least 1s");
    assert_problem(&too_short, "auth.corp.jwks_cache_ttl", "at least 1s");
    assert_problem(&too_short, "auth.corp.jwks_refetch_cooldown", "at least 1s");
    assert_problem(&too_short, "auth.corp.leeway", "at most 5 minutes");

    // A fetched key set must outlive one failed refresh; a file's or a secret's never ages.
    let remote = |timing: &str| {
        VALID.replace(
            "algorithms = [\"HS256\"]\nhs256_secret = \"env:HS\"",
            &format!(
                "algorithms = [\"RS256\"]\njwks_url = \"https://login.example.com/jwks\"\n{timing}"
            ),
        )
    };
    let stale = problems(&remote(
        "jwks_cache_ttl = \"10m\"\njwks_max_stale = \"19m\"",
    ));
    assert_problem(
        &stale,
        "auth.corp.jwks_max_stale",
        "at least twice jwks_cache_ttl,",
    );
    // Nor with jwks_cache_ttl's value, which may come from a reference.
    let toml = remote("jwks_cache_ttl = \"env:TTL\"\njwks_max_stale = \"24h\"");
    let env = env_with(&[("TTL", "13h 7m 42s")]);
    let error = load(&Source::text(toml).with_env(env)).unwrap_err();
    assert_problem(&error.problems, "auth.corp.jwks_max_stale", "twice");
    assert!(!error.to_string().contains("13h"), "{error}");
    let stale = problems(&remote("jwks_cache_ttl = \"13h\""));
    assert_problem(
        &stale,
        "auth.corp.jwks_cache_ttl",
        "at most half of jwks_max_stale",
    );
    load_text(&remote(
        "jwks_cache_ttl = \"10m\"\njwks_max_stale = \"20m\"",
    ))
    .unwrap();
    load_text(&with(
        "",
        "jwks_cache_ttl = \"10m\"\njwks_max_stale = \"10m\"",
    ))
    .unwrap();
    // A refused cache_ttl is reported alone, not again against max_stale.
    let refused = problems(&remote("jwks_cache_ttl = \"0s\"\njwks_max_stale = \"5m\""));
    assert_eq!(refused.len(), 1, "{refused:#?}");
    // A refused refetch cooldown does not hide a max_stale too short for cache_ttl.
    let both = problems(&remote(
        "jwks_cache_ttl = \"5s\"\njwks_refetch_cooldown = \"500ms\"\njwks_max_stale = \"9s\"",
    ));
    assert_problem(&both, "auth.corp.jwks_refetch_cooldown", "at least 1s");
    assert_problem(
        &both,
        "auth.corp.jwks_max_stale",
        "at least twice jwks_cache_ttl",
    );

    // The minimums themselves are accepted.
    let settings = load_text(&with(
        "request_timeout = \"100ms\"\nheader_read_timeout = \"1s\"",
        "jwks_cache_ttl = \"1s\"\njwks_refetch_cooldown = \"1s\"\nleeway = \"5m\"",
    ))
    .unwrap();
    assert_eq!(settings.server.request_timeout, Duration::from_millis(100));
    assert_eq!(settings.server.header_read_timeout, Duration::from_secs(1));
}

#[test]
fn a_log_filter_of_bare_words_without_a_level_is_refused() {
    let with_level =
        |level: &str| VALID.replace("[server]", &format!("[log]\nlevel = {level:?}\n\n[server]"));
    // With no level for the rest, a word that is no level would silence every log line.
    for typo in [
        "warning",
        "inf",
        "hyper",
        "tokenmint=warning",
        "warning,tokenmint=debug",
    ] {
        let problems = problems(&with_level(typo));
        assert_problem(&problems, "log.level", "is not a log level");
    }
    for good in [
        "WARN",
        "debug",
        "3",
        "info,tokenmint::audit",
        "warn,tokenmint=debug",
        "info,[request]",
        "info,hyper",
        "warn,tokenmint",
        "tokenmint",
        "tokenmint::audit",
    ] {
        let settings = load_text(&with_level(good)).unwrap_or_else(|e| panic!("{good}: {e}"));
        assert_eq!(settings.log.level, good);
    }
}

#[test]
fn an_admin_listener_on_the_public_port_is_refused() {
    let with = |listen: &str, admin: &str| {
        VALID
            .replace(
                "listen = \"127.0.0.1:8081\"",
                &format!("listen = {listen:?}"),
            )
            .replace(
                "admin_listen = \"127.0.0.1:9091\"",
                &format!("admin_listen = {admin:?}"),
            )
    };
    for (listen, admin) in [
        ("127.0.0.1:8081", "127.0.0.1:8081"),
        ("0.0.0.0:8081", "127.0.0.1:8081"),
        ("127.0.0.1:8081", "0.0.0.0:8081"),
        ("[::]:8081", "127.0.0.1:8081"),
        ("127.0.0.1:8081", "[::]:8081"),
        ("127.0.0.1:8081", "[::ffff:127.0.0.1]:8081"),
    ] {
        let problems = problems(&with(listen, admin));
        assert_problem(&problems, "server.admin_listen", "must not share its port");
    }
    for (listen, admin) in [
        ("127.0.0.1:8081", "127.0.0.2:8081"),
        ("0.0.0.0:8081", "127.0.0.1:9091"),
        ("127.0.0.1:0", "127.0.0.1:0"),
        // 0.0.0.0 takes the IPv4 port only.
        ("0.0.0.0:8081", "[::1]:8081"),
        ("[::1]:8081", "0.0.0.0:8081"),
    ] {
        load_text(&with(listen, admin)).unwrap_or_else(|e| panic!("{listen} {admin}: {e}"));
    }
}

#[test]
fn a_source_prints_no_configuration_text_nor_environment_value() {
    let source = Source::text("[accounts.main]\nauth_tokens = [\"literal-auth-token-s3cret\"]\n")
        .with_env(Env::Fixed(HashMap::from([(
            "TWILIO_API_KEY_SECRET".into(),
            "env-api-key-s3cret".into(),
        )])));
    let shown = format!("{source:?}");
    assert!(!shown.contains("s3cret"), "{shown}");
    assert!(shown.contains("TWILIO_API_KEY_SECRET"), "{shown}");
}
