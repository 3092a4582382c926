//! `shmbus bridge`: runs the Zenoh bridge, `shmbus-bridge` (its own crate,
//! so that this CLI, the library and the daemon build without Zenoh), with
//! this command's `--bus` and `--runtime-dir` and the arguments that follow.

use std::ffi::OsString;
use std::os::unix::process::CommandExt as _;
use std::path::PathBuf;

use clap::Args;

use crate::error::CliError;
use crate::global::Global;

/// Arguments of `shmbus bridge`.
#[derive(Args, Debug)]
#[command(
    after_help = "Example:\n  shmbus --bus A bridge --export 'sensors/*' --listen tcp/0.0.0.0:7447\n  \
                        shmbus --bus B bridge --import 'sensors/*' --connect tcp/hostA:7447\n\n\
                        Every option is shmbus-bridge's: see `shmbus-bridge --help` or docs/bridge.md."
)]
pub struct BridgeArgs {
    /// Arguments for shmbus-bridge (--export, --import, --listen, --connect, ...).
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "ARGS"
    )]
    pub args: Vec<OsString>,
}

/// Replaces this process with `shmbus-bridge` (found beside this executable,
/// else on `PATH`); returns only if it cannot be run.
pub fn run(global: &Global, args: BridgeArgs) -> Result<(), CliError> {
    const NAME: &str = "shmbus-bridge";
    let beside: Option<PathBuf> = std::env::current_exe()
        .ok()
        .map(|exe| exe.with_file_name(NAME))
        .filter(|p| p.is_file());
    let program = beside.map_or_else(|| OsString::from(NAME), PathBuf::into_os_string);
    let mut cmd = std::process::Command::new(&program);
    cmd.arg("--bus").arg(&global.bus);
    if let Some(dir) = &global.runtime_dir {
        cmd.arg("--runtime-dir").arg(dir);
    }
    let err = cmd.args(&args.args).exec();
    Err(CliError::runtime(format!(
        "cannot run {}: {err}: build it with `cargo build --release -p shmbus-bridge` (it is kept out of the CLI so that the CLI builds without Zenoh)",
        program.to_string_lossy()
    )))
}
