//! Which control plane the people's CLI talks to, and with which token (SPEC §18), first found
//! wins:
//!
//! 1. `--control-api-base` / `BAA_CONTROL_API_BASE` and `--token` / `BAA_ADMIN_TOKEN`;
//! 2. the login kept by `node-agent login` (`<config>/baa-conductor/login.json`, mode 0600);
//! 3. the embedded control plane of the agent on this host: its address
//!    (`<state>/embedded-address`) and admin token (`<state>/embedded-tokens.env`), readable by
//!    the agent's own user only.
//!
//! A token given alone goes with the address found; an address given alone takes the token
//! of the login or the embedded plane at that same address, never another one's.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::embedded;

/// What the command line and the environment say.
#[derive(Debug, Clone, Default)]
pub struct Given {
    pub base: Option<String>,
    pub token: Option<String>,
    /// The agent's state directory (`--state-dir`, `BAA_STATE_DIR`, else `<runtime root>/state`).
    pub state_dir: PathBuf,
    /// Where the login is kept.
    pub login_file: PathBuf,
}

/// A control plane and a token to call it with, and where they came from (said in errors).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connection {
    pub base: String,
    pub token: String,
    pub source: String,
}

/// The login file's content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Login {
    pub control_api_base: String,
    pub token: String,
}

/// `$XDG_CONFIG_HOME/baa-conductor/login.json`, else `~/.config/baa-conductor/login.json` (on
/// macOS too, as `gh` and `git` do: the runtime root under Application Support holds the
/// agent's state, not a person's login).
pub fn login_file(lookup: impl Fn(&str) -> Option<String>) -> PathBuf {
    let config = lookup("XDG_CONFIG_HOME")
        .filter(|dir| !dir.trim().is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(lookup("HOME").unwrap_or_else(|| ".".into())).join(".config"));
    config.join("baa-conductor").join("login.json")
}

/// The agent's state directory as the agent resolves it.
pub fn state_dir(state_dir: Option<&str>, runtime_root: Option<&str>, home: Option<&str>) -> PathBuf {
    let given = |value: Option<&str>| value.map(str::trim).filter(|value| !value.is_empty()).map(PathBuf::from);
    given(state_dir).unwrap_or_else(|| given(runtime_root).unwrap_or_else(|| crate::config::default_runtime_root(home)).join("state"))
}

pub fn read_login(path: &Path) -> Result<Option<Login>, String> {
    match std::fs::read_to_string(path) {
        Ok(text) => serde_json::from_str(&text).map(Some).map_err(|error| format!("{}: {error}", path.display())),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(error) => Err(format!("{}: {error}", path.display())),
    }
}

fn read_embedded(state_dir: &Path) -> Result<Option<(String, Option<String>)>, String> {
    let address = state_dir.join(embedded::ADDRESS_FILE);
    let base = match std::fs::read_to_string(&address) {
        Ok(text) => text.trim().to_string(),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(format!("{}: {error}", address.display())),
    };
    let token = embedded::read_admin_token(state_dir).map_err(|error| error.to_string())?;
    Ok(Some((base, token)))
}

fn same_base(a: &str, b: &str) -> bool {
    a.trim_end_matches('/') == b.trim_end_matches('/')
}

/// Where to connect, or what to do about it.
pub fn connection(given: &Given) -> Result<Connection, String> {
    let login = read_login(&given.login_file)?;
    let local = read_embedded(&given.state_dir)?;
    let base_source = match (&given.base, &login, &local) {
        (Some(base), _, _) => Some((base.clone(), "--control-api-base or BAA_CONTROL_API_BASE".to_string())),
        (None, Some(login), _) => Some((login.control_api_base.clone(), format!("the login in {}", given.login_file.display()))),
        (None, None, Some((base, _))) => {
            Some((base.clone(), format!("this host's embedded control plane ({})", given.state_dir.join(embedded::ADDRESS_FILE).display())))
        }
        (None, None, None) => None,
    };
    let Some((base, source)) = base_source else {
        return Err(format!(
            "no control plane: give --control-api-base (or BAA_CONTROL_API_BASE), run `node-agent login --control-api-base URL`, \
             or start this host's agent with --embedded (looked for {})",
            given.state_dir.join(embedded::ADDRESS_FILE).display()
        ));
    };
    let token = given
        .token
        .clone()
        .or_else(|| login.as_ref().filter(|login| same_base(&login.control_api_base, &base)).map(|login| login.token.clone()))
        .or_else(|| local.as_ref().filter(|(local, _)| same_base(local, &base)).and_then(|(_, token)| token.clone()));
    let Some(token) = token else {
        let embedded_env = local.as_ref().is_some_and(|(local, token)| same_base(local, &base) && token.is_none());
        return Err(if embedded_env {
            format!("no token for {base}: the embedded control plane's admin token came from CONTROL_API_BROWSER_ADMIN_TOKEN; give --token or BAA_ADMIN_TOKEN")
        } else {
            format!("no token for {base}: give --token (or BAA_ADMIN_TOKEN), or run `node-agent login --control-api-base {base}`")
        });
    };
    Ok(Connection { base: base.trim_end_matches('/').to_string(), token, source })
}

/// Keeps a login: the folder 0700, the file 0600, written whole or not at all.
pub fn write_login(path: &Path, login: &Login) -> Result<(), String> {
    use std::io::Write;
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    let dir = path.parent().ok_or("the login file has no folder")?;
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir).map_err(|error| format!("{}: {error}", dir.display()))?;
    let temporary = dir.join(".login.json.tmp");
    let _ = std::fs::remove_file(&temporary);
    let text = serde_json::to_string_pretty(login).map_err(|error| error.to_string())? + "\n";
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&temporary)
        .map_err(|error| format!("{}: {error}", temporary.display()))?;
    file.write_all(text.as_bytes()).and_then(|_| file.sync_all()).map_err(|error| format!("{}: {error}", temporary.display()))?;
    std::fs::rename(&temporary, path).map_err(|error| format!("{}: {error}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn given(dir: &Path) -> Given {
        Given { base: None, token: None, state_dir: dir.join("state"), login_file: dir.join("config/login.json") }
    }

    fn embedded_host(dir: &Path, token: Option<&str>) {
        std::fs::create_dir_all(dir.join("state")).unwrap();
        embedded::write_address(&dir.join("state"), "http://127.0.0.1:8787").unwrap();
        if let Some(token) = token {
            std::fs::write(dir.join("state").join(embedded::TOKENS_FILE), format!("CONTROL_API_BROWSER_ADMIN_TOKEN={token}\n")).unwrap();
        }
    }

    #[test]
    fn an_embedded_host_needs_nothing_and_flags_win() {
        let dir = tempfile::tempdir().unwrap();
        assert!(connection(&given(dir.path())).unwrap_err().starts_with("no control plane"));
        embedded_host(dir.path(), Some("local-admin"));
        let found = connection(&given(dir.path())).unwrap();
        assert_eq!((found.base.as_str(), found.token.as_str()), ("http://127.0.0.1:8787", "local-admin"));
        let mut flags = given(dir.path());
        flags.base = Some("https://fleet.example".into());
        assert!(connection(&flags).unwrap_err().contains("no token for https://fleet.example"), "the local token is not sent elsewhere");
        flags.token = Some("fleet-token".into());
        assert_eq!(connection(&flags).unwrap().token, "fleet-token");
    }

    #[test]
    fn a_login_comes_before_the_embedded_plane_and_is_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        embedded_host(dir.path(), None);
        let error = connection(&given(dir.path())).unwrap_err();
        assert!(error.contains("CONTROL_API_BROWSER_ADMIN_TOKEN"), "{error}");
        let login = Login { control_api_base: "https://fleet.example/".into(), token: "t1".into() };
        write_login(&given(dir.path()).login_file, &login).unwrap();
        let mode = std::fs::metadata(given(dir.path()).login_file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let found = connection(&given(dir.path())).unwrap();
        assert_eq!((found.base.as_str(), found.token.as_str()), ("https://fleet.example", "t1"));
        assert!(found.source.contains("login"));
    }

    #[test]
    fn paths_follow_the_agents_and_xdg() {
        assert_eq!(state_dir(Some("/s"), Some("/r"), Some("/h")), PathBuf::from("/s"));
        assert_eq!(state_dir(None, Some("/r"), Some("/h")), PathBuf::from("/r/state"));
        let lookup = |name: &str| (name == "HOME").then(|| "/home/ann".to_string());
        assert_eq!(login_file(lookup), PathBuf::from("/home/ann/.config/baa-conductor/login.json"));
        let xdg = |name: &str| (name == "XDG_CONFIG_HOME").then(|| "/x".to_string());
        assert_eq!(login_file(xdg), PathBuf::from("/x/baa-conductor/login.json"));
    }
}
