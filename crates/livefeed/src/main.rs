//! `livefeed`: capture, encode, serve over RTSP, and measure every frame's latency.
//!
//! With no subcommand it runs the demo: server, test-pattern publisher and receiver in one
//! process, printing one status line per second.

mod audio_probe;
mod audio_tone;
mod cli;
mod pipeline;
mod preview;
mod report;
mod server_link;
mod sources;
mod whip_publisher;

use std::io::IsTerminal;

use clap::Parser;
use tracing_subscriber::EnvFilter;

fn main() -> std::process::ExitCode {
    let cli = cli::Cli::parse();
    // Logs go through a bounded, lossy queue: a stalled stderr drops lines instead of
    // stalling the server.
    let (writer, _flush_on_exit) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .lossy(true)
        .finish(std::io::stderr());
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(cli.log_filter())),
        )
        .with_writer(writer)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_stack_size(livefeed_server::WORKER_STACK_BYTES)
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("livefeed: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(cli::run(cli)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("livefeed: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
