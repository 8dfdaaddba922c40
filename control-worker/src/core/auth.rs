//! Who is calling: bearer token → principal (roles, and the node it is bound to, if any).
//!
//! Plain tokens come from the environment, one per role, plus the shared service token.
//! Node-bound tokens are `bnt1.<node_id>.<hex HMAC-SHA256(secret, "baa-node-token/v1/" +
//! node_id)>`: verified without a database lookup, and they let a node act only as itself.
//! Every comparison is constant-time, and no token text ever leaves this module.

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use shared::auth::NODE_TOKEN_PREFIX;
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
}

impl Principal {
    pub fn may_call(&self, allowed: &[Role]) -> bool {
        self.roles.iter().any(|role| allowed.contains(role))
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
}

const SERVICE_ROLES: [Role; 2] = [Role::Controller, Role::Worker];

pub fn authenticate(config: &Config, authorization: Option<&str>) -> Result<Principal, ApiError> {
    if !config.auth_required {
        return Ok(Principal { label: "auth_disabled", roles: Role::ALL.to_vec(), bound_node: None });
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
        Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() && !token.trim().contains(' ') => token.trim(),
        _ => {
            return Err(ApiError::new(
                ErrorCode::InvalidAuthorizationHeader,
                "the Authorization header must be of the form: Bearer <token>",
            ))
        }
    };
    resolve_token(config, token)
        .ok_or_else(|| ApiError::new(ErrorCode::UnknownToken, "the bearer token is not recognised"))
}

fn resolve_token(config: &Config, token: &str) -> Option<Principal> {
    let presented = Sha256::digest(token.as_bytes());
    // Check every configured token without stopping at the first match, so timing says
    // nothing about which (or whether one) matched.
    let mut found: Option<Principal> = None;
    for (role, configured) in &config.role_tokens {
        if digest_eq(&presented, &Sha256::digest(configured.as_bytes())) && found.is_none() {
            found = Some(Principal { label: role.as_str(), roles: vec![*role], bound_node: None });
        }
    }
    if let Some(shared) = &config.shared_token {
        if digest_eq(&presented, &Sha256::digest(shared.as_bytes())) && found.is_none() {
            found = Some(Principal { label: "shared_service", roles: SERVICE_ROLES.to_vec(), bound_node: None });
        }
    }
    if found.is_none() {
        if let (Some(secret), Some(rest)) = (&config.node_token_secret, token.strip_prefix(NODE_TOKEN_PREFIX)) {
            if let Some((node_id, mac_hex)) = rest.rsplit_once('.') {
                if is_valid_node_id(node_id) && verify_node_mac(secret, node_id, mac_hex) {
                    found = Some(Principal { label: "node", roles: SERVICE_ROLES.to_vec(), bound_node: Some(node_id.to_string()) });
                }
            }
        }
    }
    found
}

fn digest_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn node_mac(secret: &str, node_id: &str) -> Hmac<Sha256> {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes keys of any length");
    mac.update(b"baa-node-token/v1/");
    mac.update(node_id.as_bytes());
    mac
}

fn verify_node_mac(secret: &str, node_id: &str, mac_hex: &str) -> bool {
    let Some(bytes) = decode_hex(mac_hex) else { return false };
    node_mac(secret, node_id).verify_slice(&bytes).is_ok()
}

/// Mints the node-bound token for `node_id` under `secret`.
pub fn mint_node_token(secret: &str, node_id: &str) -> Result<String, ApiError> {
    if !is_valid_node_id(node_id) {
        return Err(ApiError::invalid_field("node_id", "must be 1-128 characters of A-Z a-z 0-9 . _ - starting with a letter or digit"));
    }
    let mac = node_mac(secret, node_id).finalize().into_bytes();
    Ok(format!("{NODE_TOKEN_PREFIX}{node_id}.{}", encode_hex(&mac)))
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
    (0..text.len())
        .step_by(2)
        .map(|index| u8::from_str_radix(text.get(index..index + 2)?, 16).ok())
        .collect()
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
    fn node_tokens_bind_to_their_node_and_reject_forgeries() {
        let token = mint_node_token("node-secret", "mini-main").unwrap();
        let principal = resolve_token(&config(), &token).unwrap();
        assert_eq!(principal.bound_node.as_deref(), Some("mini-main"));
        let forged = token.replace("mini-main", "mac-standby");
        assert!(resolve_token(&config(), &forged).is_none());
        let other_secret = mint_node_token("other", "mini-main").unwrap();
        assert!(resolve_token(&config(), &other_secret).is_none());
    }

    #[test]
    fn plain_tokens() {
        assert_eq!(resolve_token(&config(), "read-token").unwrap().roles, vec![Role::Readonly]);
        assert_eq!(resolve_token(&config(), "shared-token").unwrap().label, "shared_service");
        assert!(resolve_token(&config(), "read-token2").is_none());
    }
}
