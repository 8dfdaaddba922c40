//! The `node-agent` command line as a user runs it: a real process, real environment.

use std::process::{Command, Output};

use serde_json::Value;

fn agent(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_node-agent"));
    command.args(args).env_clear().env("HOME", "/home/tester");
    for (key, value) in env {
        command.env(key, value);
    }
    command.output().unwrap()
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn json(output: &Output) -> Value {
    assert!(output.status.success(), "{}", stderr(output));
    serde_json::from_slice(&output.stdout).unwrap_or_else(|error| panic!("{error}: {}", stdout(output)))
}

const TOKEN: &str = "a-very-secret-agent-token";

#[test]
fn config_prints_the_resolved_configuration_without_the_token() {
    let output = agent(&["config", "--host", "mini", "--control-api-base", "http://127.0.0.1:8787/"], &[("BAA_SHARED_TOKEN", TOKEN)]);
    assert!(output.status.success());
    let text = stdout(&output);
    for expected in [
        "node_id                  mini-main",
        "role                     primary",
        "token                    set",
        "priority                 100",
        "control_api_base         http://127.0.0.1:8787",
        "lease_ttl_sec            30",
        "runs_dir",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
    }
    assert!(!text.contains(TOKEN) && !stderr(&output).contains(TOKEN));

    let config = json(&agent(&["config", "--json", "--role", "standby", "--host", "mac"], &[("BAA_SHARED_TOKEN", TOKEN)]));
    assert_eq!(config["node_id"], "mac-standby");
    assert_eq!(config["priority"], 50);
    assert_eq!(config["preferred"], false);
    assert_eq!(config["token_set"], true);
    assert_eq!(config["local_api"], "127.0.0.1:4317");
    assert!(!config.to_string().contains(TOKEN));
    let root = if cfg!(target_os = "macos") {
        "/home/tester/Library/Application Support/baa-conductor"
    } else {
        "/home/tester/.local/state/baa-conductor"
    };
    assert_eq!(config["paths"]["runs"], format!("{root}/runs"));
}

#[test]
fn flags_override_environment_fallbacks() {
    let env = [
        ("BAA_CONDUCTOR_LEASE_TTL_SEC", "10"),
        ("BAA_CONDUCTOR_PREFERRED", "false"),
        ("BAA_NODE_ID", "from-env"),
        ("BAA_CONDUCTOR_LOCAL_API", "http://127.0.0.1:9999"),
        ("BAA_RUNTIME_ROOT", "/srv/baa"),
        ("BAA_LOGS_DIR", "/var/log/baa"),
    ];
    let from_env = json(&agent(&["config", "--json"], &env));
    assert_eq!(from_env["lease_ttl_sec"], 10);
    assert_eq!(from_env["preferred"], false);
    assert_eq!(from_env["node_id"], "from-env");
    assert_eq!(from_env["local_api"], "127.0.0.1:9999");
    assert_eq!(from_env["paths"]["runs"], "/srv/baa/runs");
    assert_eq!(from_env["paths"]["logs"], "/var/log/baa");
    let overridden = json(&agent(&["config", "--json", "--lease-ttl-sec", "20", "--preferred", "--node-id", "from-flag"], &env));
    assert_eq!(overridden["lease_ttl_sec"], 20);
    assert_eq!(overridden["preferred"], true);
    assert_eq!(overridden["node_id"], "from-flag");
}

#[test]
fn bad_values_give_one_clear_error_naming_the_option() {
    // (arguments, environment, what the error names)
    type Case<'a> = (&'a [&'a str], &'a [(&'a str, &'a str)], &'a str);
    let cases: &[Case] = &[
        (&["--lease-ttl-sec", "abc"], &[], "--lease-ttl-sec (BAA_CONDUCTOR_LEASE_TTL_SEC)"),
        (&["--lease-ttl-sec", "0"], &[], "--lease-ttl-sec"),
        (&["--role", "boss"], &[], "--role (BAA_CONDUCTOR_ROLE)"),
        (&["--node-id", "a b"], &[], "--node-id (BAA_NODE_ID)"),
        (&["--local-api", "nowhere"], &[], "--local-api (BAA_CONDUCTOR_LOCAL_API)"),
        (&["--control-api-base", "ftp://x"], &[], "--control-api-base (BAA_CONTROL_API_BASE)"),
        (&["--heartbeat-interval-ms", "5"], &[], "--heartbeat-interval-ms"),
        (&["--renew-failure-threshold", "-1"], &[], "--renew-failure-threshold"),
        (&["--priority", "high"], &[], "--priority (BAA_CONDUCTOR_PRIORITY)"),
        (&[], &[("BAA_CONDUCTOR_PREFERRED", "maybe")], "--preferred/--no-preferred (BAA_CONDUCTOR_PREFERRED)"),
        (&[], &[("BAA_CONDUCTOR_LEASE_RENEW_INTERVAL_MS", "soon")], "--lease-renew-interval-ms (BAA_CONDUCTOR_LEASE_RENEW_INTERVAL_MS)"),
    ];
    for (args, env, named) in cases {
        let mut all = vec!["config"];
        all.extend_from_slice(args);
        let output = agent(&all, env);
        assert_eq!(output.status.code(), Some(2), "{args:?} {env:?}");
        let message = stderr(&output);
        assert!(message.starts_with("error: ") && message.contains(named), "{args:?}: {message}");
        assert_eq!(message.lines().count(), 1, "one error: {message}");
    }
    let unknown = agent(&["start", "--lease-tll-sec", "3"], &[]);
    assert_eq!(unknown.status.code(), Some(2));
    assert!(stderr(&unknown).contains("--lease-tll-sec"));
}

#[test]
fn warnings_name_what_is_wrong() {
    let config = json(&agent(
        &["config", "--json", "--lease-renew-interval-ms", "30000", "--local-api", "off"],
        &[("BAA_SHARED_TOKEN", "replace-me")],
    ));
    let warnings = config["warnings"].to_string();
    for expected in ["renew interval (30000 ms) is not shorter than the lease TTL", "no local API", "replace-me", "no control API base"] {
        assert!(warnings.contains(expected), "{expected}: {warnings}");
    }
    let missing = json(&agent(&["config", "--json", "--control-api-base", "http://h:1"], &[]));
    assert!(missing["warnings"].to_string().contains("no token"));
}

#[test]
fn checklist_and_help() {
    let text = stdout(&agent(&["checklist"], &[]));
    let ids = ["register-controller", "acquire-lease", "load-runs", "reconcile-runs", "start-heartbeat-loop", "start-scheduler"];
    let positions: Vec<usize> = ids.iter().map(|id| text.find(id).unwrap_or_else(|| panic!("{id} in {text}"))).collect();
    assert!(positions.windows(2).all(|pair| pair[0] < pair[1]), "in order: {text}");
    let listed = json(&agent(&["checklist", "--json"], &[]));
    let listed: Vec<&str> = listed.as_array().unwrap().iter().map(|item| item["id"].as_str().unwrap()).collect();
    assert_eq!(listed, ids);
    let help = agent(&["help"], &[]);
    assert!(help.status.success());
    for option in ["--node-id", "--control-api-base", "--lease-ttl-sec", "--renew-failure-threshold", "--run-once", "BAA_CONDUCTOR_ROLE"] {
        assert!(stdout(&help).contains(option), "help mentions {option}");
    }
    assert!(stdout(&agent(&["--help"], &[])).contains("--no-preferred"));
}

#[test]
fn run_once_with_the_control_plane_down_reports_degraded_and_exits_zero() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let base = format!("http://127.0.0.1:{port}");
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().display().to_string();
    let output =
        agent(&["start", "--run-once", "--json", "--control-api-base", &base, "--runtime-root", &root], &[("BAA_SHARED_TOKEN", TOKEN)]);
    let snapshot = json(&output);
    assert_eq!(snapshot["lease"]["state"], "degraded");
    assert_eq!(snapshot["token_set"], true);
    assert_eq!(snapshot["control_api_base"], base);
    assert_eq!(snapshot["node_id"], "localhost-main");
    assert_eq!(snapshot["loops"]["scheduler"]["active"], false);
    let ids: Vec<&str> = snapshot["checklist"].as_array().unwrap().iter().map(|item| item["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["register-controller", "acquire-lease", "load-runs", "reconcile-runs", "start-heartbeat-loop", "start-scheduler"]);
    assert_eq!(snapshot["checklist"][5]["status"], "skipped");
    assert!(!stdout(&output).contains(TOKEN) && !stderr(&output).contains(TOKEN));

    let refused = agent(&["start"], &[("BAA_SHARED_TOKEN", TOKEN)]);
    assert_eq!(refused.status.code(), Some(2));
    assert!(stderr(&refused).contains("--control-api-base URL (BAA_CONTROL_API_BASE)") && stderr(&refused).contains("--embedded"));
}
