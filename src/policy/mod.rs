//! Per-app decisions: given a verified caller and what the client asked for, which token may be
//! minted. Pure: no I/O, no clock, no HTTP; everything it needs was parsed at configuration load.

mod rooms;
mod template;

use std::collections::BTreeMap;

pub use rooms::{DefaultRoom, MAX_ROOM_BYTES, Rooms};
pub use template::Template;

use crate::auth::Principal;
use crate::twilio::MAX_IDENTITY_BYTES;
use crate::twilio::grants::{
    ChatGrant, Grants, SyncGrant, TaskRouterGrant, VideoGrant, VoiceGrant, VoiceOutgoing,
};
use crate::twilio::sid::{Application, Credential, Role, Service, Sid, Worker, Workspace};

/// The grants tokenmint can issue, by the names clients and configuration use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum GrantKind {
    Chat,
    Sync,
    TaskRouter,
    Video,
    Voice,
}

// `kind as usize` indexes tables of one entry per kind (the minted-token counters), so the
// discriminants must be the positions in `GrantKind::ALL`.
const _: () = {
    let mut i = 0;
    while i < GrantKind::ALL.len() {
        assert!(
            GrantKind::ALL[i] as usize == i,
            "GrantKind::ALL is not in discriminant order"
        );
        i += 1;
    }
};

impl GrantKind {
    pub const ALL: [GrantKind; 5] = [
        GrantKind::Chat,
        GrantKind::Sync,
        GrantKind::TaskRouter,
        GrantKind::Video,
        GrantKind::Voice,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            GrantKind::Chat => "chat",
            GrantKind::Sync => "sync",
            GrantKind::TaskRouter => "task_router",
            GrantKind::Video => "video",
            GrantKind::Voice => "voice",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.as_str() == name)
    }
}

/// `require_claims`: every listed claim must equal or contain the value.
pub type Requirements = BTreeMap<String, String>;

#[derive(Debug, Clone)]
pub struct VoicePolicy {
    pub incoming: bool,
    pub outgoing_application_sid: Option<Sid<Application>>,
    pub outgoing_params: BTreeMap<String, Template>,
    pub push_credentials: BTreeMap<String, Sid<Credential>>,
    pub require_claims: Requirements,
}

#[derive(Debug, Clone)]
pub struct VideoPolicy {
    pub rooms: Rooms,
    pub require_claims: Requirements,
}

#[derive(Debug, Clone)]
pub struct ChatPolicy {
    pub service_sid: Option<Sid<Service>>,
    pub deployment_role_sid: Option<Sid<Role>>,
    pub push_credentials: BTreeMap<String, Sid<Credential>>,
    pub require_claims: Requirements,
}

#[derive(Debug, Clone)]
pub struct SyncPolicy {
    pub service_sid: Option<Sid<Service>>,
    pub require_claims: Requirements,
}

#[derive(Debug, Clone)]
pub struct TaskRouterPolicy {
    pub workspace_sid: Option<Sid<Workspace>>,
    pub worker_sid: Option<Sid<Worker>>,
    pub role: Option<String>,
    pub require_claims: Requirements,
}

/// The grants an app may issue; `None` means the app never issues that grant.
#[derive(Debug, Clone, Default)]
pub struct GrantPolicies {
    pub voice: Option<VoicePolicy>,
    pub video: Option<VideoPolicy>,
    pub chat: Option<ChatPolicy>,
    pub sync: Option<SyncPolicy>,
    pub task_router: Option<TaskRouterPolicy>,
}

impl GrantPolicies {
    fn requirements(&self, kind: GrantKind) -> Option<&Requirements> {
        match kind {
            GrantKind::Voice => self.voice.as_ref().map(|g| &g.require_claims),
            GrantKind::Video => self.video.as_ref().map(|g| &g.require_claims),
            GrantKind::Chat => self.chat.as_ref().map(|g| &g.require_claims),
            GrantKind::Sync => self.sync.as_ref().map(|g| &g.require_claims),
            GrantKind::TaskRouter => self.task_router.as_ref().map(|g| &g.require_claims),
        }
    }

    /// Every template claim and required claim the grants read, each with the key that reads
    /// it, below the grants table (`voice.require_claims.roles`, `video.rooms[0]`).
    pub fn claims(&self) -> Vec<(String, &str)> {
        let mut claims: Vec<(String, &str)> = GrantKind::ALL
            .into_iter()
            .filter_map(|kind| Some((kind.as_str(), self.requirements(kind)?)))
            .flat_map(|(kind, req)| {
                req.keys()
                    .map(move |claim| (format!("{kind}.require_claims.{claim}"), claim.as_str()))
            })
            .collect();
        if let Some(voice) = &self.voice {
            for (name, template) in &voice.outgoing_params {
                let key = format!("voice.outgoing_params.{name}");
                claims.extend(template.claims().map(|claim| (key.clone(), claim)));
            }
        }
        if let Some(video) = &self.video {
            let rooms = video.rooms.claims().into_iter();
            claims.extend(rooms.map(|(i, claim)| (format!("video.rooms[{i}]"), claim)));
        }
        claims
    }

    fn push_platforms(&self) -> impl Iterator<Item = &String> {
        let voice = self.voice.iter().flat_map(|g| g.push_credentials.keys());
        let chat = self.chat.iter().flat_map(|g| g.push_credentials.keys());
        voice.chain(chat)
    }
}

/// One app's policy, ready to apply.
#[derive(Debug, Clone)]
pub struct AppPolicy {
    pub name: String,
    pub identity: Template,
    /// Lifetime when the client asks for none, in seconds.
    pub ttl_secs: u64,
    /// Longest lifetime a client may ask for, in seconds (≤ 24 h, checked at load).
    pub max_ttl_secs: u64,
    pub grants: GrantPolicies,
}

/// What a client asked for, already parsed from the body or query.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MintRequest {
    pub grants: Option<Vec<GrantKind>>,
    pub room: Option<String>,
    pub ttl_secs: Option<u64>,
    pub platform: Option<String>,
    pub device_id: Option<String>,
}

/// What will be minted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MintPlan {
    pub identity: String,
    /// Sorted, without duplicates.
    pub kinds: Vec<GrantKind>,
    pub grants: Grants,
    pub ttl_secs: u64,
}

/// Why the policy said no. `code` is shown to the client; `reason` goes to the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denial {
    pub code: DenialCode,
    pub reason: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DenialCode {
    InvalidRequest,
    RoomRequired,
    UnknownPlatform,
    GrantNotAllowed,
    RoomNotAllowed,
    InvalidIdentity,
}

/// Why `room` cannot name a Video room, if it cannot: 1 to 128 bytes, no control characters.
fn room_problem(room: &str) -> Option<&'static str> {
    if room.is_empty() || room.len() > MAX_ROOM_BYTES {
        Some("room must be 1 to 128 bytes")
    } else if room.chars().any(char::is_control) {
        Some("room contains control characters")
    } else {
        None
    }
}

fn deny(code: DenialCode, reason: impl Into<String>) -> Denial {
    Denial {
        code,
        reason: reason.into(),
    }
}

/// Why `identity` cannot be used with `kind`, per Twilio's documented limits.
pub fn identity_problem(kind: GrantKind, identity: &str) -> Option<&'static str> {
    if identity.is_empty() {
        return Some("identity is empty");
    }
    if identity
        .chars()
        .any(|c| c.is_whitespace() || c.is_control())
    {
        return Some("identity contains whitespace or control characters");
    }
    match kind {
        GrantKind::Voice if identity.len() > 121 => {
            Some("voice identities are at most 121 characters")
        }
        GrantKind::Voice
            if !identity
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_') =>
        {
            Some("voice identities may hold only letters, digits and underscores")
        }
        GrantKind::Video if identity.len() > 128 => Some("video identities are at most 128 bytes"),
        _ if identity.len() > MAX_IDENTITY_BYTES => Some("identities are at most 256 bytes"),
        _ => None,
    }
}

fn valid_device_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

impl AppPolicy {
    /// Every claim the policy reads: its identity template's and its grants'.
    pub fn claims(&self) -> impl Iterator<Item = &str> {
        let grants = self.grants.claims().into_iter().map(|(_, claim)| claim);
        self.identity.claims().chain(grants)
    }

    /// The grants this app issues at all.
    pub fn offered(&self) -> Vec<GrantKind> {
        GrantKind::ALL
            .into_iter()
            .filter(|kind| self.grants.requirements(*kind).is_some())
            .collect()
    }

    fn qualifies(&self, kind: GrantKind, principal: &Principal) -> bool {
        self.grants.requirements(kind).is_some_and(|req| {
            req.iter()
                .all(|(claim, wanted)| principal.claim_contains(claim, wanted))
        })
    }

    /// `principal`'s identity in this app: its template rendered with the caller's claims.
    pub fn identity_of(&self, principal: &Principal) -> Result<String, Denial> {
        self.identity.render(principal).map_err(|claim| {
            deny(
                DenialCode::InvalidIdentity,
                format!("identity template needs claim {claim:?}, which the caller lacks"),
            )
        })
    }

    /// Decides what `principal` receives for `request`.
    pub fn plan(&self, principal: &Principal, request: &MintRequest) -> Result<MintPlan, Denial> {
        use DenialCode::*;

        let ttl_secs = match request.ttl_secs {
            None => self.ttl_secs,
            Some(0) => return Err(deny(InvalidRequest, "ttl must be at least 1 second")),
            Some(ttl) => ttl.min(self.max_ttl_secs),
        };
        if let Some(device_id) = &request.device_id
            && !valid_device_id(device_id)
        {
            return Err(deny(
                InvalidRequest,
                "device_id must match [A-Za-z0-9_-]{1,64}",
            ));
        }
        if let Some(problem) = request.room.as_deref().and_then(room_problem) {
            return Err(deny(InvalidRequest, problem));
        }

        let kinds = self.choose_kinds(principal, request)?;

        let identity = self.identity_of(principal)?;
        for kind in &kinds {
            if let Some(problem) = identity_problem(*kind, &identity) {
                return Err(deny(
                    InvalidIdentity,
                    format!("{}: {problem}", kind.as_str()),
                ));
            }
        }

        let push = match request.platform.as_deref() {
            None | Some("web") => None,
            Some(platform) => {
                if !self.grants.push_platforms().any(|p| p == platform) {
                    return Err(deny(
                        UnknownPlatform,
                        format!(
                            "no push credential for platform {:?}",
                            crate::text::truncate(platform)
                        ),
                    ));
                }
                Some(platform)
            }
        };
        let push_sid = |credentials: &BTreeMap<String, Sid<Credential>>| {
            push.and_then(|p| credentials.get(p)).cloned()
        };
        let endpoint_id = request
            .device_id
            .as_ref()
            .map(|device| format!("{}:{}:{}", self.name, identity, device));

        let mut grants = Grants::default();
        for kind in &kinds {
            match kind {
                GrantKind::Voice => {
                    let Some(policy) = &self.grants.voice else {
                        continue;
                    };
                    let outgoing = match &policy.outgoing_application_sid {
                        None => None,
                        Some(sid) => Some(VoiceOutgoing {
                            application_sid: sid.clone(),
                            params: render_params(&policy.outgoing_params, principal)?,
                        }),
                    };
                    grants.voice = Some(VoiceGrant {
                        endpoint_id: endpoint_id.clone(),
                        incoming: policy.incoming,
                        outgoing,
                        push_credential_sid: push_sid(&policy.push_credentials),
                    });
                }
                GrantKind::Video => {
                    let Some(policy) = &self.grants.video else {
                        continue;
                    };
                    let room = match &request.room {
                        Some(room) if policy.rooms.allows(room, principal) => Some(room.clone()),
                        Some(_) => {
                            return Err(deny(RoomNotAllowed, "room matches no allowed pattern"));
                        }
                        None => match policy.rooms.default_room(principal) {
                            DefaultRoom::Every => None,
                            // Rendered from the caller's claims, so checked like a request's.
                            DefaultRoom::Room(room) => match room_problem(&room) {
                                None => Some(room),
                                Some(problem) => {
                                    return Err(deny(
                                        RoomNotAllowed,
                                        format!("the policy's room for this caller: {problem}"),
                                    ));
                                }
                            },
                            DefaultRoom::CallerMustChoose => {
                                return Err(deny(
                                    RoomRequired,
                                    "policy cannot choose a room; the client must",
                                ));
                            }
                        },
                    };
                    grants.video = Some(VideoGrant { room });
                }
                GrantKind::Chat => {
                    let Some(policy) = &self.grants.chat else {
                        continue;
                    };
                    grants.chat = Some(ChatGrant {
                        deployment_role_sid: policy.deployment_role_sid.clone(),
                        endpoint_id: endpoint_id.clone(),
                        push_credential_sid: push_sid(&policy.push_credentials),
                        service_sid: policy.service_sid.clone(),
                    });
                }
                GrantKind::Sync => {
                    let Some(policy) = &self.grants.sync else {
                        continue;
                    };
                    grants.sync = Some(SyncGrant {
                        endpoint_id: endpoint_id.clone(),
                        service_sid: policy.service_sid.clone(),
                    });
                }
                GrantKind::TaskRouter => {
                    let Some(policy) = &self.grants.task_router else {
                        continue;
                    };
                    grants.task_router = Some(TaskRouterGrant {
                        role: policy.role.clone(),
                        worker_sid: policy.worker_sid.clone(),
                        workspace_sid: policy.workspace_sid.clone(),
                    });
                }
            }
        }
        grants.identity = identity.clone();

        Ok(MintPlan {
            identity,
            kinds,
            grants,
            ttl_secs,
        })
    }

    fn choose_kinds(
        &self,
        principal: &Principal,
        request: &MintRequest,
    ) -> Result<Vec<GrantKind>, Denial> {
        use DenialCode::*;

        let mut kinds = match &request.grants {
            Some(requested) => {
                if requested.is_empty() {
                    return Err(deny(InvalidRequest, "grants must not be empty"));
                }
                for kind in requested {
                    if !self.qualifies(*kind, principal) {
                        return Err(deny(
                            GrantNotAllowed,
                            format!("{} is not offered to this caller", kind.as_str()),
                        ));
                    }
                }
                if request.room.is_some() && !requested.contains(&GrantKind::Video) {
                    return Err(deny(InvalidRequest, "room given without the video grant"));
                }
                requested.clone()
            }
            None => {
                let video_defaults = |video: &VideoPolicy| {
                    request.room.is_some()
                        || video.rooms.default_room(principal) != DefaultRoom::CallerMustChoose
                };
                let kinds: Vec<GrantKind> = self
                    .offered()
                    .into_iter()
                    .filter(|kind| self.qualifies(*kind, principal))
                    .filter(|kind| {
                        *kind != GrantKind::Video
                            || self.grants.video.as_ref().is_some_and(video_defaults)
                    })
                    .collect();
                if request.room.is_some() && !kinds.contains(&GrantKind::Video) {
                    return Err(deny(GrantNotAllowed, "video is not offered to this caller"));
                }
                if kinds.is_empty() {
                    return Err(deny(GrantNotAllowed, "caller qualifies for no grant"));
                }
                kinds
            }
        };
        kinds.sort_unstable();
        kinds.dedup();
        Ok(kinds)
    }
}

fn render_params(
    params: &BTreeMap<String, Template>,
    principal: &Principal,
) -> Result<BTreeMap<String, String>, Denial> {
    params
        .iter()
        .map(|(name, template)| {
            template
                .render(principal)
                .map(|value| (name.clone(), value))
                .map_err(|claim| {
                    deny(
                        DenialCode::GrantNotAllowed,
                        format!("outgoing param {name:?} needs claim {claim:?}"),
                    )
                })
        })
        .collect()
}

#[cfg(test)]
mod tests;
