//! Who is calling: bearer token → principal (roles, and the node it is bound to, if any).
//!
//! Plain tokens come from the environment, one per role, plus the shared service token.
//! Node-bound tokens are `bnt2~<node_id>~<host>~<mac>`, the mac being the hex HMAC-SHA256
//! under the secret of `"baa-node-token/v2/" + node_id + "\n" + host`: verified without a
//! database lookup, they let a node act only as itself and only for its own host.
//! Every comparison is constant-time, and no token text ever leaves this module.

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use shared::auth::{LEGACY_NODE_TOKEN_PREFIX, NODE_TOKEN_PREFIX};
use shared::ids::is_valid_node_id;
use shared::{ErrorCode, Role};

use super::config::Config;
use super::error::ApiError;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// What the token is, for audit records: a role name, `shared_service`, `node` or `auth_disabled`.
    pub label: &'static str,
    pub roles: Vec<Role>,
    /// The node a node-bound token speaks for; it may act as no other controller or worker.
    pub bound_node: Option<String>,
    /// The host a node-bound token was minted for; it may act for no other host.
    pub bound_host: Option<String>,
}

impl Principal {
    pub fn may_call(&self, allowed: &[Role]) -> bool {
        self.roles.iter().any(|role| allowed.contains(role))
    }

    pub fn may_call_route(&self, route: &shared::Route) -> bool {
        route.admits(&self.roles)
    }

    /// The node this principal acts for on a route with an `id_field` (`controller_id` or
    /// `worker_id`): the bound node when there is one (a different claimed id is forbidden),
    /// otherwise the claimed id, which is then required.
    pub fn acting_node(&self, id_field: &'static str, claimed: Option<String>) -> Result<String, ApiError> {
        match (&self.bound_node, claimed) {
            (Some(bound), Some(claimed)) if *bound != claimed => Err(ApiError::new(
                ErrorCode::Forbidden,
                format!("this token is bound to another node and may not act as {id_field} {claimed:?}"),
            )
            .with_field(id_field)),
            (Some(bound), _) => Ok(bound.clone()),
            (None, Some(claimed)) => Ok(claimed),
            (None, None) => Err(ApiError::invalid_field(id_field, "is required")),
        }
    }

    /// `claimed` (a request's `host`) when this principal may act for it: a node-bound token
    /// only for the host it was minted for.
    pub fn acting_host(&self, claimed: String) -> Result<String, ApiError> {
        match &self.bound_host {
            Some(bound) if *bound != claimed => Err(ApiError::new(
                ErrorCode::Forbidden,
                format!("this token is bound to host {bound:?} and may not act for host {:?}", shown(&claimed)),
            )
            .with_field("host")),
            _ => Ok(claimed),
        }
    }
}

/// At most 128 characters of a caller's text, for echoing it in an error.
pub fn shown(text: &str) -> String {
    if text.chars().count() <= 128 {
        return text.to_string();
    }
    let mut cut: String = text.chars().take(128).collect();
    cut.push('…');
    cut
}

/// Whether `value` may name a host in a node token: like a node id.
pub fn is_valid_host(value: &str) -> bool {
    is_valid_node_id(value)
}

const SERVICE_ROLES: [Role; 2] = [Role::Controller, Role::Worker];

pub fn authenticate(config: &Config, authorization: Option<&str>) -> Result<Principal, ApiError> {
    if !config.auth_required {
        return Ok(Principal { label: "auth_disabled", roles: Role::ALL.to_vec(), bound_node: None, bound_host: None });
    }
    if !config.has_any_token() {
        return Err(ApiError::new(
            ErrorCode::AuthNotConfigured,
            "no API token is configured on this control plane; set the CONTROL_API_*_TOKEN secrets",
        ));
    }
    let Some(header) = authorization else {
        return Err(ApiError::new(ErrorCode::MissingBearerToken, "an Authorization: Bearer <token> header is required"));
    };
    let token = match header.split_once(' ') {
        Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() && !token.trim().contains(' ') => {
            token.trim()
        }
        _ => {
            return Err(ApiError::new(
                ErrorCode::InvalidAuthorizationHeader,
                "the Authorization header must be of the form: Bearer <token>",
            ))
        }
    };
    if token.starts_with(LEGACY_NODE_TOKEN_PREFIX) && config.node_token_secret.is_some() {
        return Err(ApiError::new(
            ErrorCode::UnknownToken,
            "node tokens of the first form (bnt1.) no longer bind a host and are refused: mint a new one with control-local mint-node-token --node-id <id> --host <host>",
        ));
    }
    resolve_token(config, token).ok_or_else(|| ApiError::new(ErrorCode::UnknownToken, "the bearer token is not recognised"))
}

fn resolve_token(config: &Config, token: &str) -> Option<Principal> {
    let presented = Sha256::digest(token.as_bytes());
    // Check every configured token without stopping at the first match, so timing says
    // nothing about which (or whether one) matched.
    let mut found: Option<Principal> = None;
    for (role, configured) in &config.role_tokens {
        if digest_eq(&presented, &Sha256::digest(configured.as_bytes())) && found.is_none() {
            found = Some(Principal { label: role.as_str(), roles: vec![*role], bound_node: None, bound_host: None });
        }
    }
    if let Some(shared) = &config.shared_token {
        if digest_eq(&presented, &Sha256::digest(shared.as_bytes())) && found.is_none() {
            found = Some(Principal { label: "shared_service", roles: SERVICE_ROLES.to_vec(), bound_node: None, bound_host: None });
        }
    }
    if found.is_none() {
        if let (Some(secret), Some(rest)) = (&config.node_token_secret, token.strip_prefix(NODE_TOKEN_PREFIX)) {
            let parts: Vec<&str> = rest.split('~').collect();
            if let [node_id, host, mac_hex] = parts[..] {
                if is_valid_node_id(node_id) && is_valid_host(host) && verify_node_mac(secret, node_id, host, mac_hex) {
                    found = Some(Principal {
                        label: "node",
                        roles: SERVICE_ROLES.to_vec(),
                        bound_node: Some(node_id.to_string()),
                        bound_host: Some(host.to_string()),
                    });
                }
            }
        }
    }
    found
}

fn digest_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn node_mac(secret: &str, node_id: &str, host: &str) -> Hmac<Sha256> {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes keys of any length");
    mac.update(b"baa-node-token/v2/");
    mac.update(node_id.as_bytes());
    mac.update(b"\n");
    mac.update(host.as_bytes());
    mac
}

fn verify_node_mac(secret: &str, node_id: &str, host: &str, mac_hex: &str) -> bool {
    let Some(bytes) = decode_hex(mac_hex) else { return false };
    node_mac(secret, node_id, host).verify_slice(&bytes).is_ok()
}

/// Mints the node-bound token for `node_id` on `host` under `secret`.
pub fn mint_node_token(secret: &str, node_id: &str, host: &str) -> Result<String, ApiError> {
    let rule = "must be 1-128 characters of A-Z a-z 0-9 . _ - starting with a letter or digit";
    if !is_valid_node_id(node_id) {
        return Err(ApiError::invalid_field("node_id", rule));
    }
    if !is_valid_host(host) {
        return Err(ApiError::invalid_field("host", rule));
    }
    let mac = node_mac(secret, node_id, host).finalize().into_bytes();
    Ok(format!("{NODE_TOKEN_PREFIX}{node_id}~{host}~{}", encode_hex(&mac)))
}

pub fn encode_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        out.push(DIGITS[(byte >> 4) as usize] as char);
        out.push(DIGITS[(byte & 15) as usize] as char);
    }
    out
}

fn decode_hex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len()).step_by(2).map(|index| u8::from_str_radix(text.get(index..index + 2)?, 16).ok()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> Config {
        Config {
            role_tokens: vec![(Role::Readonly, "read-token".into())],
            shared_token: Some("shared-token".into()),
            node_token_secret: Some("node-secret".into()),
            auth_required: true,
            ..Config::default()
        }
    }

    #[test]
    fn node_tokens_bind_to_their_node_and_host_and_reject_forgeries() {
        let token = mint_node_token("node-secret", "mini-main", "mini.local").unwrap();
        let principal = resolve_token(&config(), &token).unwrap();
        assert_eq!(principal.bound_node.as_deref(), Some("mini-main"));
        assert_eq!(principal.bound_host.as_deref(), Some("mini.local"));
        assert!(principal.acting_host("mini.local".into()).is_ok());
        assert_eq!(principal.acting_host("mac".into()).unwrap_err().code, ErrorCode::Forbidden);
        assert!(resolve_token(&config(), &token.replace("mini-main", "mac-standby")).is_none());
        assert!(resolve_token(&config(), &token.replace("~mini.local~", "~mac~")).is_none());
        let other_secret = mint_node_token("other", "mini-main", "mini.local").unwrap();
        assert!(resolve_token(&config(), &other_secret).is_none());
        assert!(mint_node_token("node-secret", "mini-main", "a~b").is_err());
        let legacy = authenticate(&config(), Some("Bearer bnt1.mini-main.00ff")).unwrap_err();
        assert!(legacy.message.contains("mint-node-token"), "{}", legacy.message);
    }

    #[test]
    fn echoed_text_is_capped() {
        assert_eq!(shown("short"), "short");
        assert_eq!(shown(&"x".repeat(5_000)).chars().count(), 129);
    }

    #[test]
    fn plain_tokens() {
        assert_eq!(resolve_token(&config(), "read-token").unwrap().roles, vec![Role::Readonly]);
        assert_eq!(resolve_token(&config(), "shared-token").unwrap().label, "shared_service");
        assert!(resolve_token(&config(), "read-token2").is_none());
    }
}
