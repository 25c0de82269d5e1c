//! `cadloop mcp`: the Model Context Protocol server, on stdin and stdout
//! until the client closes it, or with `--http` on streamable HTTP behind
//! the studio's guard; Ctrl-C or SIGTERM stop either.

use std::sync::Arc;

use anyhow::Context;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::ServiceExt;

use crate::cli::{GlobalArgs, McpArgs};
use crate::interrupt::Interrupt;
use crate::mcp::Cadloop;
use crate::studio::Guard;

use super::settings::Settings;
use super::ExitStatus;

/// `cadloop mcp`.
pub async fn mcp(global: &GlobalArgs, args: &McpArgs) -> anyhow::Result<ExitStatus> {
    let (setup, no_llm) = Settings::read(global)?.studio(&args.llm, &args.budget, &args.limits)?;
    if no_llm.is_some() {
        tracing::info!(
            "no LLM endpoint is configured: build, tweak, views, check and runs work; \
             generate and refine say how to configure one"
        );
    }
    let interrupt = Interrupt::on_signals()?;
    // Bound before the engine starts, so a port in use fails fast.
    let listener = match args.http {
        Some(addr) => Some(tokio::net::TcpListener::bind(addr).await.with_context(|| {
            format!("cannot listen on {addr}; is another server running there? Choose another --http ADDR:PORT")
        })?),
        None => None,
    };
    let (engine, run_settings) = setup.start(interrupt.clone()).await?;
    let engine = Arc::new(engine);
    let server = Cadloop::new(engine.clone(), &args.runs, run_settings, no_llm)
        .with_context(|| format!("cannot use the runs folder {}", args.runs.display()))?;
    let served = match listener {
        Some(listener) => serve_http(server, listener, &interrupt).await,
        None => serve_stdio(server, &interrupt).await,
    };
    engine.shutdown().await;
    served?;
    match interrupt.raised() {
        Some(cause) => Ok(ExitStatus::Interrupted(cause)),
        None => Ok(ExitStatus::Success),
    }
}

/// One session on stdin and stdout, until the client ends it or a signal.
async fn serve_stdio(server: Cadloop, interrupt: &Interrupt) -> anyhow::Result<()> {
    tracing::info!("MCP server on stdin and stdout");
    let service = server
        .serve(rmcp::transport::stdio())
        .await
        .context("the MCP client did not start a session")?;
    tokio::select! {
        ended = service.waiting() => { ended.context("the MCP session failed")?; }
        _ = interrupt.wait() => {}
    }
    Ok(())
}

/// Streamable HTTP at `/mcp` on `listener`, any number of sessions, until a
/// signal. The studio's guard stands in front: the Host and Origin of every
/// request, and a token on any address but loopback.
async fn serve_http(
    server: Cadloop,
    listener: tokio::net::TcpListener,
    interrupt: &Interrupt,
) -> anyhow::Result<()> {
    let addr = listener.local_addr()?;
    let token = (!addr.ip().is_loopback())
        .then(super::serve::new_token)
        .transpose()?;
    let stop = tokio_util::sync::CancellationToken::new();
    // The guard checks Host and Origin itself, with the bound address.
    let config = StreamableHttpServerConfig::default()
        .disable_allowed_hosts()
        .with_cancellation_token(stop.child_token());
    let service = StreamableHttpService::new(
        move || Ok(server.clone()),
        Arc::new(LocalSessionManager::default()),
        config,
    );
    let guard = Guard::for_mcp(addr, token.clone());
    let router = axum::Router::new().nest_service("/mcp", service).layer(
        axum::middleware::from_fn_with_state(guard, crate::studio::guard::middleware),
    );
    let url = super::serve::served_url(addr, "/mcp", token.as_deref());
    let mut said = format!("cadloop mcp: {url}  (Ctrl-C stops it)");
    if let Some(token) = &token {
        said += &format!("\n  or send the header  Authorization: Bearer {token}");
    }
    super::serve::announce(&said);
    let interrupt = interrupt.clone();
    axum::serve(listener, router)
        .with_graceful_shutdown(async move {
            interrupt.wait().await;
            stop.cancel();
        })
        .await
        .context("the MCP HTTP server failed")
}
