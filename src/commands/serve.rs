//! `cadloop serve`: the studio on a local address until Ctrl-C or SIGTERM.

use std::io::Read as _;
use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;

use crate::cli::{GlobalArgs, ServeArgs};
use crate::interrupt::Interrupt;
use crate::studio::{self, Guard, StudioConfig};

use super::settings::Settings;
use super::ExitStatus;

/// `cadloop serve`.
pub async fn serve(global: &GlobalArgs, args: &ServeArgs) -> anyhow::Result<ExitStatus> {
    let (setup, no_llm) = Settings::read(global)?.studio(&args.llm, &args.budget, &args.limits)?;
    if no_llm.is_some() {
        eprintln!(
            "no LLM endpoint is configured: the studio opens, tweaks and shows runs; new runs and \
             changes in words need one (see the New run box)"
        );
    }
    let interrupt = Interrupt::on_signals()?;
    let listener = tokio::net::TcpListener::bind(SocketAddr::new(args.host, args.port))
        .await
        .with_context(|| {
            format!(
                "cannot listen on {}:{}; is another studio running there? Choose another --port",
                args.host, args.port
            )
        })?;
    let addr = listener.local_addr()?;
    let token = (!addr.ip().is_loopback()).then(new_token).transpose()?;
    let (engine, settings) = setup.start(interrupt.clone()).await?;
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let config = StudioConfig {
        runs: args.runs.clone(),
        examples: root.join("freecad-scripts/examples"),
        web_modules: std::env::var_os("CADLOOP_WEB_MODULES")
            .map(PathBuf::from)
            .unwrap_or_else(|| root.join("src/studio/web/node_modules")),
        no_llm,
    };
    let guard = Guard::new(addr, token.clone());
    let router = studio::router(config, engine, settings, guard)
        .with_context(|| format!("cannot use the runs folder {}", args.runs.display()))?;
    let url = served_url(addr, "/", token.as_deref());
    announce(&format!(
        "cadloop studio: {url}  (runs in {}; Ctrl-C stops it)",
        args.runs.display()
    ));
    if args.open {
        let _ = std::process::Command::new("xdg-open").arg(&url).spawn();
    }
    let stop = {
        let interrupt = interrupt.clone();
        async move {
            interrupt.wait().await;
        }
    };
    studio::serve(listener, router, stop).await?;
    match interrupt.raised() {
        Some(cause) => Ok(ExitStatus::Interrupted(cause)),
        None => Ok(ExitStatus::Success),
    }
}

/// The URL a server bound to `addr` is reached at, `path` on it, with the
/// token when it needs one (loopback shown as 127.0.0.1).
pub(super) fn served_url(addr: SocketAddr, path: &str, token: Option<&str>) -> String {
    let host = if addr.ip().is_loopback() {
        format!("127.0.0.1:{}", addr.port())
    } else {
        addr.to_string()
    };
    match token {
        Some(token) => format!("http://{host}{path}?token={token}"),
        None => format!("http://{host}{path}"),
    }
}

/// Prints a server's address on stdout. A stdout closed or gone (started
/// with `>&-`, or piped to a reader that left) must not stop the server,
/// as `println!` would by panicking; the lines are only lost.
pub(super) fn announce(lines: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{lines}").and_then(|()| out.flush());
}

/// 128 random bits as hex, from the kernel.
pub(super) fn new_token() -> anyhow::Result<String> {
    let mut bytes = [0u8; 16];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .context("cannot read /dev/urandom for a token")?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}
