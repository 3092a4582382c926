//! The Zenoh configuration of a bridge: a file if given, then the command
//! line on top (mode, endpoints, and multicast scouting off unless
//! `--scout`).

use crate::options::{BridgeArgs, Mode};

/// Builds the session's configuration; the error is one line for the user.
pub fn zenoh_config(args: &BridgeArgs) -> Result<zenoh::Config, String> {
    let mut config = match &args.zenoh_config {
        Some(path) => zenoh::Config::from_file(path).map_err(|e| {
            format!(
                "cannot read the Zenoh configuration {}: {e}",
                path.display()
            )
        })?,
        None => zenoh::Config::default(),
    };
    let mode = match args.mode {
        Mode::Peer => "\"peer\"",
        Mode::Client => "\"client\"",
    };
    set(&mut config, "mode", mode)?;
    // Off unless asked, even if the file turned it on: the command line
    // promises that nothing is sent to addresses it did not name.
    set(
        &mut config,
        "scouting/multicast/enabled",
        if args.scout { "true" } else { "false" },
    )?;
    // Without a file, listen only where told (Zenoh's peer default listens
    // on every interface); with a file, its endpoints stand unless given.
    if !args.listen.is_empty() || args.zenoh_config.is_none() {
        set(&mut config, "listen/endpoints", &json_strings(&args.listen))?;
    }
    if !args.connect.is_empty() {
        set(
            &mut config,
            "connect/endpoints",
            &json_strings(&args.connect),
        )?;
    }
    Ok(config)
}

fn set(config: &mut zenoh::Config, key: &str, value: &str) -> Result<(), String> {
    config
        .insert_json5(key, value)
        .map_err(|e| format!("invalid Zenoh setting {key} = {value}: {e}"))
}

/// A JSON array of strings.
fn json_strings(items: &[String]) -> String {
    let quoted: Vec<String> = items
        .iter()
        .map(|s| {
            let escaped = s.replace('\\', "\\\\").replace('"', "\\\"");
            format!("\"{escaped}\"")
        })
        .collect();
    format!("[{}]", quoted.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[test]
    fn command_line_sets_endpoints_and_scouting() {
        let args = BridgeArgs::parse_from([
            "shmbus-bridge",
            "--listen",
            "tcp/127.0.0.1:7447",
            "--connect",
            "tcp/127.0.0.1:7448",
        ]);
        let c = zenoh_config(&args).unwrap();
        let json = format!("{c}");
        assert!(json.contains("tcp/127.0.0.1:7447"), "{json}");
        assert!(json.contains("tcp/127.0.0.1:7448"), "{json}");
        assert_eq!(c.get_json("scouting/multicast/enabled").unwrap(), "false");
        assert_eq!(json_strings(&["a\"b".into()]), "[\"a\\\"b\"]");
    }

    #[test]
    fn bad_endpoint_is_refused_in_one_line() {
        let args = BridgeArgs::parse_from(["shmbus-bridge", "--listen", "nonsense"]);
        let e = zenoh_config(&args).expect_err("not an endpoint");
        assert!(e.contains("listen/endpoints") && !e.contains('\n'), "{e}");
    }
}
