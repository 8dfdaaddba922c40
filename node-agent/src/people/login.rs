//! `node-agent login` and `logout`: a fleet's control plane and token kept for this user.

use std::io::{IsTerminal, Read};
use std::path::Path;

use super::api::Api;
use super::discover;

/// The token from a prompt that does not echo it, or from stdin's first line.
fn read_token(base: &str) -> Result<String, String> {
    let token = if std::io::stdin().is_terminal() {
        rpassword::prompt_password(format!("Admin (or read-only) token for {base}: ")).map_err(|error| error.to_string())?
    } else {
        let mut text = String::new();
        std::io::stdin().read_to_string(&mut text).map_err(|error| error.to_string())?;
        text.lines().next().unwrap_or("").to_string()
    };
    let token = token.trim().to_string();
    if token.is_empty() {
        return Err("no token given".into());
    }
    Ok(token)
}

pub async fn login(base: Option<String>, token: Option<String>, login_file: &Path) -> Result<(), String> {
    let base = base.ok_or("login needs --control-api-base URL (the fleet's control plane)")?;
    let base = base.trim().trim_end_matches('/').to_string();
    if !(base.starts_with("http://") || base.starts_with("https://")) {
        return Err(format!("--control-api-base must be an http:// or https:// URL, got {base:?}"));
    }
    let token = match token {
        Some(token) => token,
        None => read_token(&base)?,
    };
    // The token is tried before it is kept: a typo is told now, not at the next command.
    Api::new(&base, &token)?.get("/v1/system/state").await.map_err(|error| format!("{base} refused the token: {error}"))?;
    discover::write_login(login_file, &discover::Login { control_api_base: base.clone(), token })?;
    println!("logged in to {base}; kept in {} (mode 0600)", login_file.display());
    Ok(())
}

pub fn logout(login_file: &Path) -> Result<(), String> {
    match std::fs::remove_file(login_file) {
        Ok(()) => println!("logged out: removed {}", login_file.display()),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => println!("not logged in ({} does not exist)", login_file.display()),
        Err(error) => return Err(format!("{}: {error}", login_file.display())),
    }
    Ok(())
}
