//! `cadloop mcp`: the Model Context Protocol server on stdin and stdout
//! until the client closes it, Ctrl-C or SIGTERM.

use anyhow::Context;
use rmcp::ServiceExt;

use crate::cli::{GlobalArgs, McpArgs};
use crate::interrupt::Interrupt;
use crate::mcp::Cadloop;

use super::settings::Settings;
use super::ExitStatus;

/// `cadloop mcp`.
pub async fn mcp(global: &GlobalArgs, args: &McpArgs) -> anyhow::Result<ExitStatus> {
    let setup = Settings::read(global)?.mcp(&args.limits)?;
    let interrupt = Interrupt::on_signals()?;
    let (engine, run_settings) = setup.start(interrupt.clone()).await?;
    let engine = std::sync::Arc::new(engine);
    let server = Cadloop::new(engine.clone(), &args.runs, run_settings)
        .with_context(|| format!("cannot use the runs folder {}", args.runs.display()))?;
    tracing::info!(runs = %args.runs.display(), "MCP server on stdin and stdout");
    let service = server
        .serve(rmcp::transport::stdio())
        .await
        .context("the MCP client did not start a session")?;
    tokio::select! {
        ended = service.waiting() => { ended.context("the MCP session failed")?; }
        _ = interrupt.wait() => {}
    }
    engine.shutdown().await;
    match interrupt.raised() {
        Some(cause) => Ok(ExitStatus::Interrupted(cause)),
        None => Ok(ExitStatus::Success),
    }
}
