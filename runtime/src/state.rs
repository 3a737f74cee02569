//! What each `Store` holds: the instance's WASI context and `wasi:config` values (its
//! whole sandbox), resource table, outbound-HTTP hooks and memory limiter. One store per
//! instance; an HTTP request gets a fresh one.

use std::future::Future;

use wasmtime::component::ResourceTable;
use wasmtime_wasi::p1::WasiP1Ctx;
use wasmtime_wasi::{FsPerms, WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};
use wasmtime_wasi_config::{WasiConfig, WasiConfigVariables};
use wasmtime_wasi_http::{WasiBody, WasiHttpCtx, WasiHttpCtxView, WasiHttpHooks, WasiHttpView};

use crate::error::{Error, Result};
use crate::limits::InstanceLimiter;
use crate::logs::ContainerLog;
use crate::pod::ContainerSpec;

/// The data of a component instance's `Store`.
pub struct InstanceState {
    wasi: WasiCtx,
    config: WasiConfigVariables,
    http: WasiHttpCtx,
    table: ResourceTable,
    hooks: EgressDenied,
    pub(crate) limiter: InstanceLimiter,
}

impl InstanceState {
    pub(crate) fn new(sandbox: Sandbox, limiter: InstanceLimiter) -> InstanceState {
        InstanceState {
            wasi: sandbox.wasi,
            config: sandbox.config,
            http: WasiHttpCtx::new(),
            table: ResourceTable::new(),
            hooks: EgressDenied,
            limiter,
        }
    }

    /// What `wasi:config/store` reads: the container's configuration.
    pub(crate) fn config(&mut self) -> WasiConfig<'_> {
        WasiConfig::new(&self.config)
    }
}

impl WasiView for InstanceState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for InstanceState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.hooks,
        }
    }
}

/// The data of a preview-1 core module's `Store`.
pub struct P1State {
    pub(crate) wasi: WasiP1Ctx,
    pub(crate) limiter: InstanceLimiter,
}

/// Outbound `wasi:http` requests are refused until the pod network and its egress policy
/// exist: no ambient network.
struct EgressDenied;

type SendResult = wasmtime_wasi_http::Result<(
    http::Response<WasiBody>,
    Box<dyn Future<Output = wasmtime_wasi_http::Result<()>> + Send>,
)>;

impl WasiHttpHooks for EgressDenied {
    fn send_request(
        &mut self,
        _request: http::Request<WasiBody>,
        _options: Option<wasmtime_wasi_http::RequestOptions>,
        _fut: Box<dyn Future<Output = wasmtime_wasi_http::Result<()>> + Send>,
    ) -> Box<dyn Future<Output = SendResult> + Send> {
        Box::new(async { Err(wasmtime_wasi_http::Error::HttpRequestDenied) })
    }
}

/// What one instance is given: its WASI context and its `wasi:config` values.
pub(crate) struct Sandbox {
    wasi: WasiCtx,
    config: WasiConfigVariables,
}

/// Builds one instance's [`Sandbox`] (or, for a preview-1 module, its `WasiP1Ctx`, which
/// has no `wasi:config`). Build once.
pub(crate) struct SandboxBuilder {
    wasi: WasiCtxBuilder,
    config: WasiConfigVariables,
}

impl SandboxBuilder {
    pub(crate) fn build(&mut self) -> Sandbox {
        Sandbox {
            wasi: self.wasi.build(),
            config: std::mem::take(&mut self.config),
        }
    }

    pub(crate) fn build_p1(&mut self) -> WasiP1Ctx {
        self.wasi.build_p1()
    }
}

/// The sandbox of one container: its args, env and preopens, stdout/stderr into its log,
/// an empty stdin — and nothing else: no host env, no host files, no sockets. Its
/// `wasi:config/store` holds the container's configuration, which is its resolved
/// environment (`env` + `envFrom`): the same keys and values as the WASI environment, the
/// last of a repeated key winning, as in Kubernetes.
pub(crate) fn wasi_builder(spec: &ContainerSpec, log: &ContainerLog) -> Result<SandboxBuilder> {
    let mut b = WasiCtxBuilder::new();
    b.args(&spec.args);
    for (k, v) in &spec.env {
        b.env(k, v);
    }
    for dir in &spec.preopens {
        let perms = if dir.read_only {
            FsPerms::ReadOnly
        } else {
            FsPerms::ReadWrite
        };
        b.preopened_dir(&dir.host, &dir.guest, perms).map_err(|e| {
            Error::InvalidSpec(format!(
                "cannot preopen {} as {}: {e:#}",
                dir.host.display(),
                dir.guest
            ))
        })?;
    }
    b.stdout(log.stdout()).stderr(log.stderr());
    Ok(SandboxBuilder {
        wasi: b,
        config: spec
            .env
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect(),
    })
}
