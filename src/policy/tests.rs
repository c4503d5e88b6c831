use serde_json::json;

use super::*;

const AP: &str = "AP00112233445566778899aabbccddeeff";
const CR_IOS: &str = "CR000000000000000000000000000000a1";
const CR_ANDROID: &str = "CR000000000000000000000000000000a2";
const CR_CHAT_IOS: &str = "CR000000000000000000000000000000c1";
const IS_CHAT: &str = "IS000000000000000000000000000000c0";
const IS_SYNC: &str = "IS000000000000000000000000000000b0";

fn principal(sub: &str, claims: serde_json::Value) -> Principal {
    let mut claims = claims.as_object().cloned().unwrap_or_default();
    claims.insert("sub".into(), json!(sub));
    Principal {
        subject: sub.into(),
        claims,
    }
}

fn alice() -> Principal {
    principal(
        "alice",
        json!({"roles": ["agent"], "email": "alice@example.com"}),
    )
}

fn rooms(patterns: &[&str]) -> Rooms {
    Rooms::parse(&patterns.iter().map(|p| p.to_string()).collect::<Vec<_>>()).unwrap()
}

fn app() -> AppPolicy {
    AppPolicy {
        name: "support".into(),
        identity: Template::parse("{sub}").unwrap(),
        ttl_secs: 3600,
        max_ttl_secs: 4 * 3600,
        grants: GrantPolicies {
            voice: Some(VoicePolicy {
                incoming: true,
                outgoing_application_sid: Some(Sid::parse(AP).unwrap()),
                outgoing_params: BTreeMap::from([(
                    "agent".into(),
                    Template::parse("{sub}").unwrap(),
                )]),
                push_credentials: BTreeMap::from([
                    ("ios".into(), Sid::parse(CR_IOS).unwrap()),
                    ("android".into(), Sid::parse(CR_ANDROID).unwrap()),
                ]),
                require_claims: BTreeMap::from([("roles".into(), "agent".into())]),
            }),
            video: Some(VideoPolicy {
                rooms: rooms(&["support-*", "user-{sub}"]),
                require_claims: BTreeMap::new(),
            }),
            chat: Some(ChatPolicy {
                service_sid: Some(Sid::parse(IS_CHAT).unwrap()),
                deployment_role_sid: None,
                push_credentials: BTreeMap::from([(
                    "ios".into(),
                    Sid::parse(CR_CHAT_IOS).unwrap(),
                )]),
                require_claims: BTreeMap::new(),
            }),
            sync: Some(SyncPolicy {
                service_sid: Some(Sid::parse(IS_SYNC).unwrap()),
                require_claims: BTreeMap::new(),
            }),
            task_router: None,
        },
    }
}

fn request() -> MintRequest {
    MintRequest::default()
}

fn with_grants(kinds: &[GrantKind]) -> MintRequest {
    MintRequest {
        grants: Some(kinds.to_vec()),
        ..request()
    }
}

fn code(result: Result<MintPlan, Denial>) -> DenialCode {
    result.expect_err("expected a denial").code
}

#[test]
fn default_set_is_every_qualifying_grant_that_needs_no_input() {
    let plan = app().plan(&alice(), &request()).unwrap();
    // video left out: no room asked, and the patterns name no single literal room
    assert_eq!(
        plan.kinds,
        [GrantKind::Chat, GrantKind::Sync, GrantKind::Voice]
    );
    assert!(plan.grants.video.is_none());
    assert_eq!(plan.identity, "alice");
    assert_eq!(plan.grants.identity, "alice");
    assert_eq!(plan.ttl_secs, 3600);
}

#[test]
fn default_set_leaves_out_grants_whose_required_claims_are_missing() {
    let bob = principal("bob", json!({"roles": ["viewer"]}));
    let plan = app().plan(&bob, &request()).unwrap();
    assert_eq!(plan.kinds, [GrantKind::Chat, GrantKind::Sync]);
}

#[test]
fn requesting_a_grant_the_caller_does_not_qualify_for_is_refused() {
    let bob = principal("bob", json!({"roles": "viewer,guest"}));
    assert_eq!(
        code(app().plan(&bob, &with_grants(&[GrantKind::Voice]))),
        DenialCode::GrantNotAllowed
    );
}

#[test]
fn required_claims_match_equal_values_arrays_and_lists() {
    let policy = app();
    for roles in [
        json!("agent"),
        json!(["x", "agent"]),
        json!("admin,agent"),
        json!("read agent"),
    ] {
        let p = principal("carol", json!({ "roles": roles }));
        assert!(
            policy.plan(&p, &with_grants(&[GrantKind::Voice])).is_ok(),
            "{roles}"
        );
    }
    for roles in [
        json!("agents"),
        json!(["agentx"]),
        json!(null),
        json!({"agent": true}),
    ] {
        let p = principal("carol", json!({ "roles": roles }));
        assert_eq!(
            code(policy.plan(&p, &with_grants(&[GrantKind::Voice]))),
            DenialCode::GrantNotAllowed,
            "{roles}"
        );
    }
}

#[test]
fn requesting_a_grant_the_app_does_not_offer_is_refused() {
    assert_eq!(
        code(app().plan(&alice(), &with_grants(&[GrantKind::TaskRouter]))),
        DenialCode::GrantNotAllowed
    );
}

#[test]
fn an_empty_grant_list_is_a_bad_request() {
    assert_eq!(
        code(app().plan(&alice(), &with_grants(&[]))),
        DenialCode::InvalidRequest
    );
}

#[test]
fn requested_subset_is_sorted_and_deduplicated() {
    let req = with_grants(&[GrantKind::Sync, GrantKind::Chat, GrantKind::Sync]);
    let plan = app().plan(&alice(), &req).unwrap();
    assert_eq!(plan.kinds, [GrantKind::Chat, GrantKind::Sync]);
    assert!(plan.grants.voice.is_none());
}

#[test]
fn video_without_a_room_needs_a_policy_that_can_choose() {
    assert_eq!(
        code(app().plan(&alice(), &with_grants(&[GrantKind::Video]))),
        DenialCode::RoomRequired
    );
}

#[test]
fn video_room_must_match_a_pattern() {
    let policy = app();
    for room in ["support-42", "user-alice"] {
        let req = MintRequest {
            grants: Some(vec![GrantKind::Video]),
            room: Some(room.into()),
            ..request()
        };
        let plan = policy.plan(&alice(), &req).unwrap();
        assert_eq!(plan.grants.video.unwrap().room.as_deref(), Some(room));
    }
    let req = MintRequest {
        room: Some("user-bob".into()),
        ..request()
    };
    assert_eq!(
        code(policy.plan(&alice(), &req)),
        DenialCode::RoomNotAllowed
    );
}

#[test]
fn a_room_joins_the_default_set() {
    let req = MintRequest {
        room: Some("support-1".into()),
        ..request()
    };
    let plan = app().plan(&alice(), &req).unwrap();
    assert!(plan.kinds.contains(&GrantKind::Video));
}

#[test]
fn a_room_without_the_video_grant_is_a_bad_request() {
    let req = MintRequest {
        grants: Some(vec![GrantKind::Chat]),
        room: Some("support-1".into()),
        ..request()
    };
    assert_eq!(code(app().plan(&alice(), &req)), DenialCode::InvalidRequest);
}

#[test]
fn overlong_empty_or_control_character_rooms_are_bad_requests() {
    for room in [
        "".to_owned(),
        "a".repeat(129),
        "support-\n".to_owned(),
        "support-\u{7f}".to_owned(),
    ] {
        let req = MintRequest {
            room: Some(room.clone()),
            ..request()
        };
        assert_eq!(
            code(app().plan(&alice(), &req)),
            DenialCode::InvalidRequest,
            "{room:?}"
        );
    }
}

#[test]
fn star_policy_gives_every_room_by_default_and_a_single_literal_room_is_chosen() {
    let mut any = app();
    any.grants.video.as_mut().unwrap().rooms = rooms(&["*"]);
    let plan = any.plan(&alice(), &request()).unwrap();
    assert_eq!(plan.grants.video, Some(VideoGrant { room: None }));

    let mut own = app();
    own.grants.video.as_mut().unwrap().rooms = rooms(&["user-{sub}"]);
    let plan = own.plan(&alice(), &request()).unwrap();
    assert_eq!(
        plan.grants.video.unwrap().room.as_deref(),
        Some("user-alice")
    );
}

#[test]
fn a_default_room_rendered_from_claims_is_checked_like_a_requested_one() {
    let mut own = app();
    own.identity = Template::parse("agent_1").unwrap();
    own.grants.video.as_mut().unwrap().rooms = rooms(&["user-{sub}"]);
    let video = with_grants(&[GrantKind::Video]);
    let at_limit = "a".repeat(MAX_ROOM_BYTES - "user-".len());
    let plan = own.plan(&principal(&at_limit, json!({})), &video).unwrap();
    assert_eq!(
        plan.grants.video.unwrap().room.unwrap().len(),
        MAX_ROOM_BYTES
    );
    for sub in [format!("{at_limit}a"), "alice\u{1}".to_owned()] {
        let denial = own.plan(&principal(&sub, json!({})), &video).unwrap_err();
        assert_eq!(denial.code, DenialCode::RoomNotAllowed, "{sub:?}");
    }
}

#[test]
fn voice_grant_carries_incoming_outgoing_and_rendered_params() {
    let plan = app()
        .plan(&alice(), &with_grants(&[GrantKind::Voice]))
        .unwrap();
    let voice = plan.grants.voice.unwrap();
    assert!(voice.incoming);
    let outgoing = voice.outgoing.unwrap();
    assert_eq!(outgoing.application_sid.as_str(), AP);
    assert_eq!(
        outgoing.params,
        BTreeMap::from([("agent".into(), "alice".into())])
    );
    assert_eq!(voice.push_credential_sid, None);
    assert_eq!(voice.endpoint_id, None);
}

#[test]
fn platform_picks_each_grants_push_credential() {
    let req = MintRequest {
        platform: Some("ios".into()),
        ..request()
    };
    let plan = app().plan(&alice(), &req).unwrap();
    assert_eq!(
        plan.grants
            .voice
            .unwrap()
            .push_credential_sid
            .unwrap()
            .as_str(),
        CR_IOS
    );
    assert_eq!(
        plan.grants
            .chat
            .unwrap()
            .push_credential_sid
            .unwrap()
            .as_str(),
        CR_CHAT_IOS
    );

    let req = MintRequest {
        platform: Some("android".into()),
        ..request()
    };
    let plan = app().plan(&alice(), &req).unwrap();
    assert_eq!(
        plan.grants
            .voice
            .unwrap()
            .push_credential_sid
            .unwrap()
            .as_str(),
        CR_ANDROID
    );
    assert_eq!(plan.grants.chat.unwrap().push_credential_sid, None);
}

#[test]
fn web_platform_means_no_push_and_unknown_platforms_are_refused() {
    let req = MintRequest {
        platform: Some("web".into()),
        ..request()
    };
    let plan = app().plan(&alice(), &req).unwrap();
    assert_eq!(plan.grants.voice.unwrap().push_credential_sid, None);

    let req = MintRequest {
        platform: Some("ios_sandbox".into()),
        ..request()
    };
    assert_eq!(
        code(app().plan(&alice(), &req)),
        DenialCode::UnknownPlatform
    );

    // The reason, written to the audit log, repeats at most 64 characters of the platform.
    let req = MintRequest {
        platform: Some("A".repeat(5000)),
        ..request()
    };
    let denial = app().plan(&alice(), &req).unwrap_err();
    assert_eq!(denial.code, DenialCode::UnknownPlatform);
    assert!(
        denial.reason.contains(&format!("\"{}…\"", "A".repeat(64))),
        "{}",
        denial.reason
    );
    assert!(denial.reason.len() < 120, "{}", denial.reason);
}

#[test]
fn device_id_gives_endpoint_ids_to_voice_chat_and_sync() {
    let req = MintRequest {
        device_id: Some("phone-1_A".into()),
        ..request()
    };
    let plan = app().plan(&alice(), &req).unwrap();
    let expected = Some("support:alice:phone-1_A".to_owned());
    assert_eq!(plan.grants.voice.unwrap().endpoint_id, expected);
    assert_eq!(plan.grants.chat.unwrap().endpoint_id, expected);
    assert_eq!(plan.grants.sync.unwrap().endpoint_id, expected);
}

#[test]
fn malformed_device_ids_are_bad_requests() {
    for id in ["", "a b", "a:b", "ü", &"a".repeat(65)] {
        let req = MintRequest {
            device_id: Some(id.into()),
            ..request()
        };
        assert_eq!(
            code(app().plan(&alice(), &req)),
            DenialCode::InvalidRequest,
            "{id:?}"
        );
    }
}

#[test]
fn ttl_defaults_clamps_to_max_and_refuses_zero() {
    let policy = app();
    let ttl = |t| {
        policy.plan(
            &alice(),
            &MintRequest {
                ttl_secs: Some(t),
                ..request()
            },
        )
    };
    assert_eq!(ttl(60).unwrap().ttl_secs, 60);
    assert_eq!(ttl(4 * 3600).unwrap().ttl_secs, 4 * 3600);
    assert_eq!(ttl(100_000).unwrap().ttl_secs, 4 * 3600);
    assert_eq!(ttl(u64::MAX).unwrap().ttl_secs, 4 * 3600);
    assert_eq!(code(ttl(0)), DenialCode::InvalidRequest);
}

#[test]
fn identity_rules_apply_per_requested_grant() {
    let policy = app();
    let p = principal("auth0|5f3", json!({"roles": "agent"}));
    // `|` is fine for chat and sync, not for voice
    assert!(
        policy
            .plan(&p, &with_grants(&[GrantKind::Chat, GrantKind::Sync]))
            .is_ok()
    );
    assert_eq!(
        code(policy.plan(&p, &with_grants(&[GrantKind::Voice]))),
        DenialCode::InvalidIdentity
    );
    // ... and the default set includes voice for an agent
    assert_eq!(
        code(policy.plan(&p, &request())),
        DenialCode::InvalidIdentity
    );
}

#[test]
fn hashed_identity_is_a_valid_voice_identity() {
    let mut policy = app();
    policy.identity = Template::parse("{sub|hash}").unwrap();
    let p = principal("auth0|5f3", json!({"roles": "agent"}));
    let plan = policy.plan(&p, &with_grants(&[GrantKind::Voice])).unwrap();
    assert_eq!(plan.identity.len(), 64);
    assert!(plan.identity.bytes().all(|b| b.is_ascii_hexdigit()));
}

#[test]
fn identity_from_a_missing_claim_is_refused() {
    let mut policy = app();
    policy.identity = Template::parse("{employee_id}").unwrap();
    assert_eq!(
        code(policy.plan(&alice(), &request())),
        DenialCode::InvalidIdentity
    );
}

#[test]
fn identity_limits_match_twilios_documentation() {
    use GrantKind::*;
    assert_eq!(identity_problem(Voice, "alice_01"), None);
    assert!(identity_problem(Voice, &"a".repeat(121)).is_none());
    assert!(identity_problem(Voice, &"a".repeat(122)).is_some());
    assert!(identity_problem(Voice, "a-b").is_some());
    assert!(identity_problem(Voice, "a@b.c").is_some());
    assert!(identity_problem(Video, "a@b.c").is_none());
    assert!(identity_problem(Video, &"a".repeat(128)).is_none());
    assert!(identity_problem(Video, &"a".repeat(129)).is_some());
    // double-byte characters count by their UTF-8 bytes
    assert!(identity_problem(Video, &"é".repeat(65)).is_some());
    assert!(identity_problem(Chat, &"a".repeat(256)).is_none());
    assert!(identity_problem(Chat, &"a".repeat(257)).is_some());
    assert!(identity_problem(Sync, &"a".repeat(257)).is_some());
    for kind in GrantKind::ALL {
        assert!(identity_problem(kind, "").is_some());
        assert!(identity_problem(kind, "a b").is_some());
        assert!(identity_problem(kind, "a\tb").is_some());
        assert!(identity_problem(kind, "a\u{0}b").is_some());
    }
}

#[test]
fn grant_names_round_trip() {
    for kind in GrantKind::ALL {
        assert_eq!(GrantKind::parse(kind.as_str()), Some(kind));
    }
    assert_eq!(GrantKind::parse("data_sync"), None);
    assert_eq!(GrantKind::parse("Voice"), None);
}

#[test]
fn caller_who_qualifies_for_nothing_is_refused() {
    let mut policy = app();
    policy.grants = GrantPolicies {
        voice: policy.grants.voice.take(),
        ..GrantPolicies::default()
    };
    let bob = principal("bob", json!({}));
    assert_eq!(
        code(policy.plan(&bob, &request())),
        DenialCode::GrantNotAllowed
    );
}

#[test]
fn task_router_grant_copies_its_policy() {
    let mut policy = app();
    policy.grants.task_router = Some(TaskRouterPolicy {
        workspace_sid: Some(Sid::parse("WS00112233445566778899aabbccddeeff").unwrap()),
        worker_sid: None,
        role: Some("worker".into()),
        require_claims: BTreeMap::new(),
    });
    let plan = policy
        .plan(&alice(), &with_grants(&[GrantKind::TaskRouter]))
        .unwrap();
    let grant = plan.grants.task_router.unwrap();
    assert_eq!(grant.role.as_deref(), Some("worker"));
    assert_eq!(
        grant.workspace_sid.unwrap().as_str(),
        "WS00112233445566778899aabbccddeeff"
    );
}
