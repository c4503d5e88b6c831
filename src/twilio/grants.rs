//! The grants of an Access Token, serialised exactly as Twilio's helper libraries do: one JSON
//! key per product, unset fields omitted, and `identity` inside the `grants` object.
//!
//! Fields are declared in alphabetical order, which is also the order the reference libraries
//! produce for the documented test vector, so the serialised bytes are stable and comparable.

use std::collections::BTreeMap;

use serde::{Serialize, Serializer};

use super::sid::{Application, Credential, Role, Service, Sid, Worker, Workspace};

/// Every grant of one token, plus the identity it is issued to.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Grants {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub chat: Option<ChatGrant>,
    /// Sync; Twilio names the key `data_sync`.
    #[serde(rename = "data_sync", skip_serializing_if = "Option::is_none")]
    pub sync: Option<SyncGrant>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub task_router: Option<TaskRouterGrant>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub video: Option<VideoGrant>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub voice: Option<VoiceGrant>,
    pub identity: String,
}

/// Programmable Voice.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct VoiceGrant {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub endpoint_id: Option<String>,
    /// Serialised as `{"allow": true}`, and left out entirely when false.
    #[serde(
        skip_serializing_if = "std::ops::Not::not",
        serialize_with = "serialize_incoming"
    )]
    pub incoming: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outgoing: Option<VoiceOutgoing>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub push_credential_sid: Option<Sid<Credential>>,
}

/// Outgoing calls through a TwiML application.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VoiceOutgoing {
    pub application_sid: Sid<Application>,
    /// Passed to the application's voice URL; omitted when empty.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub params: BTreeMap<String, String>,
}

fn serialize_incoming<S: Serializer>(allow: &bool, serializer: S) -> Result<S::Ok, S::Error> {
    #[derive(Serialize)]
    struct Incoming {
        allow: bool,
    }
    Incoming { allow: *allow }.serialize(serializer)
}

/// Programmable Video. Without a room the token is valid for every room.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct VideoGrant {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub room: Option<String>,
}

/// Chat / Conversations.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ChatGrant {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deployment_role_sid: Option<Sid<Role>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub endpoint_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub push_credential_sid: Option<Sid<Credential>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service_sid: Option<Sid<Service>>,
}

/// Sync.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SyncGrant {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub endpoint_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service_sid: Option<Sid<Service>>,
}

/// TaskRouter.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct TaskRouterGrant {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub worker_sid: Option<Sid<Worker>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workspace_sid: Option<Sid<Workspace>>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn to_value(grants: &Grants) -> serde_json::Value {
        serde_json::to_value(grants).unwrap()
    }

    #[test]
    fn only_identity_is_emitted_when_no_grant_is_set() {
        let grants = Grants {
            identity: "alice".into(),
            ..Grants::default()
        };
        assert_eq!(to_value(&grants), json!({"identity": "alice"}));
    }

    #[test]
    fn empty_grants_serialise_as_empty_objects() {
        let grants = Grants {
            video: Some(VideoGrant::default()),
            voice: Some(VoiceGrant::default()),
            chat: Some(ChatGrant::default()),
            sync: Some(SyncGrant::default()),
            task_router: Some(TaskRouterGrant::default()),
            identity: "a".into(),
        };
        assert_eq!(
            to_value(&grants),
            json!({"video": {}, "voice": {}, "chat": {}, "data_sync": {}, "task_router": {}, "identity": "a"})
        );
    }

    #[test]
    fn every_field_uses_twilios_names() {
        let grants = Grants {
            voice: Some(VoiceGrant {
                endpoint_id: Some("app:a:d".into()),
                incoming: true,
                outgoing: Some(VoiceOutgoing {
                    application_sid: Sid::parse("AP00112233445566778899aabbccddeeff").unwrap(),
                    params: BTreeMap::new(),
                }),
                push_credential_sid: Some(
                    Sid::parse("CR00112233445566778899aabbccddeeff").unwrap(),
                ),
            }),
            chat: Some(ChatGrant {
                deployment_role_sid: Some(
                    Sid::parse("RL00112233445566778899aabbccddeeff").unwrap(),
                ),
                endpoint_id: Some("e".into()),
                push_credential_sid: None,
                service_sid: Some(Sid::parse("IS00112233445566778899aabbccddeeff").unwrap()),
            }),
            sync: Some(SyncGrant {
                endpoint_id: None,
                service_sid: Some(Sid::parse("IS00112233445566778899aabbccddee00").unwrap()),
            }),
            task_router: Some(TaskRouterGrant {
                role: Some("worker".into()),
                worker_sid: Some(Sid::parse("WK00112233445566778899aabbccddeeff").unwrap()),
                workspace_sid: Some(Sid::parse("WS00112233445566778899aabbccddeeff").unwrap()),
            }),
            video: Some(VideoGrant {
                room: Some("r".into()),
            }),
            identity: "a".into(),
        };
        assert_eq!(
            to_value(&grants),
            json!({
                "voice": {
                    "endpoint_id": "app:a:d",
                    "incoming": {"allow": true},
                    "outgoing": {"application_sid": "AP00112233445566778899aabbccddeeff"},
                    "push_credential_sid": "CR00112233445566778899aabbccddeeff"
                },
                "chat": {
                    "deployment_role_sid": "RL00112233445566778899aabbccddeeff",
                    "endpoint_id": "e",
                    "service_sid": "IS00112233445566778899aabbccddeeff"
                },
                "data_sync": {"service_sid": "IS00112233445566778899aabbccddee00"},
                "task_router": {
                    "role": "worker",
                    "worker_sid": "WK00112233445566778899aabbccddeeff",
                    "workspace_sid": "WS00112233445566778899aabbccddeeff"
                },
                "video": {"room": "r"},
                "identity": "a"
            })
        );
    }
}
