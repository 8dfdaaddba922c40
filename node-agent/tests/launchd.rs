//! The launchd property lists in `ops/launchd/` parse as property lists (Python's plistlib, the
//! same format `plutil -lint` checks on a Mac), keep the agent alive without killing its steps,
//! and name only environment variables the agent reads.

use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;

fn plists() -> Vec<PathBuf> {
    let folder = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../ops/launchd");
    let mut found: Vec<PathBuf> = std::fs::read_dir(&folder)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|extension| extension == "plist"))
        .collect();
    found.sort();
    found
}

fn parse(path: &PathBuf) -> Value {
    let output = Command::new("python3")
        .args(["-c", "import json, plistlib, sys; print(json.dumps(plistlib.load(open(sys.argv[1], 'rb'))))"])
        .arg(path)
        .output()
        .expect("python3 runs the property-list parser");
    assert!(output.status.success(), "{} is not a property list: {}", path.display(), String::from_utf8_lossy(&output.stderr));
    serde_json::from_slice(&output.stdout).unwrap()
}

#[test]
fn the_property_lists_parse_and_run_the_agent_as_intended() {
    let help = String::from_utf8(Command::new(env!("CARGO_BIN_EXE_node-agent")).arg("help").output().unwrap().stdout).unwrap();
    let files = plists();
    let names: Vec<String> = files.iter().map(|path| path.file_name().unwrap().to_string_lossy().into_owned()).collect();
    assert_eq!(names, ["com.baa-conductor.node-agent.mac.plist", "com.baa-conductor.node-agent.mini.plist"]);
    for path in &files {
        let plist = parse(path);
        let host = if path.to_string_lossy().contains(".mini.") { "mini" } else { "mac" };
        let role = if host == "mini" { "primary" } else { "standby" };
        assert_eq!(plist["ProgramArguments"][1], "start", "{}", path.display());
        assert_eq!((plist["KeepAlive"].as_bool(), plist["RunAtLoad"].as_bool()), (Some(true), Some(true)));
        assert_eq!(plist["AbandonProcessGroup"], true, "steps must outlive an agent restart");
        assert!(plist["ExitTimeOut"].as_i64().unwrap() > 10, "longer than the shutdown grace");
        let environment = plist["EnvironmentVariables"].as_object().unwrap();
        assert_eq!(environment["BAA_CONDUCTOR_HOST"], host);
        assert_eq!(environment["BAA_CONDUCTOR_ROLE"], role);
        for name in ["BAA_CONTROL_API_BASE", "BAA_SHARED_TOKEN", "BAA_NODE_ID"] {
            assert!(environment.contains_key(name), "{name} in {}", path.display());
        }
        if let Some(agent) = environment.get("BAA_AGENT") {
            let preset = agent.as_str().unwrap_or_default().parse::<node_agent::agents::Preset>();
            assert!(preset.is_ok(), "{}: BAA_AGENT {agent} is no preset", path.display());
        }
        for name in environment.keys().filter(|name| name.starts_with("BAA_")) {
            assert!(help.contains(&format!("[env: {name}")), "{} sets {name}, which the agent does not read", path.display());
        }
    }
}
