//! `skiff run`: runs one component locally in exactly the sandbox a pod gets — the same
//! host, limits and capabilities as on a node — like `wasmtime run` / `wasmtime serve`.
//!
//! A command's stdout and stderr pass through and `skiff run` exits with its exit code; a
//! limit hit or a trap is printed as `skiff run: <Reason>: <message>`. An HTTP component
//! is served on `--listen` until Ctrl-C.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use skiff_runtime::{
    ContainerLog, ContainerSpec, EngineConfig, Host, HostConfig, HttpConfig, LogConfig, PodLimits,
    PodSandbox, Preopen, Reason, WorkloadKind,
};
use tokio_util::sync::CancellationToken;

#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// Memory limit over all the component's linear memories (a quantity: 64Mi, 1Gi)
    #[arg(long, value_name = "QUANTITY")]
    memory: Option<String>,

    /// CPU limit, throttled as Kubernetes does (a quantity: 500m, 2)
    #[arg(long, value_name = "QUANTITY")]
    cpu: Option<String>,

    /// An environment variable for the guest (repeatable); nothing of the host's is passed
    #[arg(long = "env", value_name = "KEY=VALUE")]
    env: Vec<String>,

    /// A host directory the guest sees at GUEST (repeatable; append `::ro` for read-only)
    #[arg(long = "dir", value_name = "HOST::GUEST")]
    dir: Vec<String>,

    /// Where an HTTP component listens [default: 127.0.0.1:8080]
    #[arg(long, value_name = "ADDR:PORT")]
    listen: Option<SocketAddr>,

    /// Kill a command after this long (`30s`, `500ms`, `2m`); for an HTTP component, the
    /// request timeout [default: 30s]
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    timeout: Option<Duration>,

    /// Where compiled artifacts are cached [default: $XDG_CACHE_HOME/skiff or ~/.cache/skiff]
    #[arg(long, value_name = "DIR", env = "SKIFF_CACHE_DIR")]
    cache_dir: Option<PathBuf>,

    /// The component (or preview-1 module): a path, file:///…, or sha256:<digest>
    component: String,

    /// Arguments for the guest (after the component, optionally after `--`)
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    args: Vec<String>,
}

/// `30s`, `500ms`, `2m`, `1h`; a bare number is seconds.
fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("invalid duration {text:?}: expected e.g. 30s, 500ms, 2m"))?;
    let seconds = match unit {
        "ms" => value / 1000.0,
        "" | "s" => value,
        "m" => value * 60.0,
        "h" => value * 3600.0,
        _ => return Err(format!("invalid duration unit {unit:?}: use ms, s, m or h")),
    };
    Duration::try_from_secs_f64(seconds).map_err(|e| format!("invalid duration {text:?}: {e}"))
}

fn cache_dir(args: &RunArgs) -> PathBuf {
    if let Some(dir) = &args.cache_dir {
        return dir.clone();
    }
    if let Some(xdg) = std::env::var_os("XDG_CACHE_HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(xdg).join("skiff");
    }
    if let Some(home) = std::env::var_os("HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(home).join(".cache").join("skiff");
    }
    std::env::temp_dir().join("skiff-cache")
}

/// A path, `file://…` or `sha256:…` → an image and the program name for argv[0].
fn image_of(component: &str) -> anyhow::Result<(String, String)> {
    if component.contains("://") || component.starts_with("sha256:") {
        let name = component
            .rsplit('/')
            .next()
            .unwrap_or(component)
            .to_string();
        return Ok((component.to_string(), name));
    }
    let path = std::fs::canonicalize(component)
        .with_context(|| format!("cannot open component {component}"))?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| component.to_string());
    Ok((format!("file://{}", path.display()), name))
}

fn preopen(spec: &str) -> anyhow::Result<Preopen> {
    let (host, rest) = spec
        .split_once("::")
        .with_context(|| format!("--dir {spec:?}: expected HOST::GUEST"))?;
    let (guest, read_only) = match rest.strip_suffix("::ro") {
        Some(guest) => (guest, true),
        None => (rest, false),
    };
    if host.is_empty() || guest.is_empty() {
        bail!("--dir {spec:?}: expected HOST::GUEST");
    }
    let host = std::fs::canonicalize(Path::new(host))
        .with_context(|| format!("--dir {spec:?}: cannot open {host}"))?;
    Ok(Preopen {
        host,
        guest: guest.to_string(),
        read_only,
    })
}

pub async fn run(args: RunArgs) -> anyhow::Result<()> {
    let limits = PodLimits::from_quantities(args.memory.as_deref(), args.cpu.as_deref())
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let env = args
        .env
        .iter()
        .map(|kv| {
            kv.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .with_context(|| format!("--env {kv:?}: expected KEY=VALUE"))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let preopens = args
        .dir
        .iter()
        .map(|d| preopen(d))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let (image, program) = image_of(&args.component)?;

    let host = Arc::new(Host::new(HostConfig {
        data_dir: cache_dir(&args),
        engine: EngineConfig::default(),
    })?);
    let workload = host.load(&image).await?;
    let mut argv = vec![program];
    argv.extend(args.args.iter().cloned());
    let spec = ContainerSpec {
        name: "main".into(),
        args: argv,
        env,
        preopens,
        deadline: None,
    };
    let pod = PodSandbox::new(limits);
    let log = ContainerLog::new(LogConfig {
        ring_bytes: 64 << 10,
        passthrough: true,
        ..LogConfig::default()
    });

    match workload.kind() {
        WorkloadKind::Http => {
            let addr = args
                .listen
                .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 8080)));
            let config = HttpConfig {
                request_timeout: args
                    .timeout
                    .unwrap_or(HttpConfig::default().request_timeout),
                ..HttpConfig::default()
            };
            let service = host.http_service(&workload, pod, spec, log, config)?;
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("cannot listen on {addr}"))?;
            let local = listener.local_addr().unwrap_or(addr);
            eprintln!(
                "skiff run: serving {} on http://{local}/",
                workload.digest()
            );
            let shutdown = CancellationToken::new();
            let stop = shutdown.clone();
            let serving = service.serve(listener, shutdown, Duration::from_secs(5));
            tokio::pin!(serving);
            tokio::select! {
                r = &mut serving => r?,
                () = crate::signal::wait_for_shutdown() => {
                    stop.cancel();
                    serving.await?;
                }
            }
            Ok(())
        }
        WorkloadKind::Command | WorkloadKind::Preview1 => {
            if let Some(listen) = args.listen {
                bail!(
                    "--listen {listen}: {} is {}, not an HTTP component",
                    args.component,
                    workload.kind().describe()
                );
            }
            let spec = ContainerSpec {
                deadline: args.timeout,
                ..spec
            };
            let kill = CancellationToken::new();
            let running = host.run(&workload, &pod, &spec, &log, &kill);
            tokio::pin!(running);
            let exit = tokio::select! {
                exit = &mut running => exit?,
                () = crate::signal::wait_for_shutdown() => {
                    kill.cancel();
                    running.await?
                }
            };
            match exit.reason {
                Reason::Completed => Ok(()),
                Reason::Error if exit.message.starts_with("exited with code") => {
                    std::process::exit(exit.exit_code)
                }
                reason => {
                    eprintln!("skiff run: {reason}: {}", exit.message);
                    std::process::exit(exit.exit_code)
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("3"), Ok(Duration::from_secs(3)));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("5d").is_err());
    }
}
