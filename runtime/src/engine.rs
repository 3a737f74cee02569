//! The node's one wasmtime [`Engine`], configured in exactly one place: [`EngineConfig`].
//!
//! Artifacts precompiled by an engine load only into an engine with the same settings (the
//! artifact cache keys on `Engine::precompile_compatibility_hash`), so everything that
//! affects code generation lives here — including the compilation `target`, so that a
//! node can one day precompile for another node's architecture.
//!
//! # wasmtime features (`runtime/Cargo.toml`)
//!
//! `wasmtime` is built with `default-features = false` and only:
//! - `runtime`, `std`: running code at all.
//! - `cranelift`: the node compiles components itself (once per digest).
//! - `component-model`: Skiff's workloads are components.
//! - `async`: guests run on fibers so that epoch callbacks can yield — CPU throttling,
//!   time slicing and a kill switch that works on a spinning guest all need it.
//! - `pooling-allocator`: instantiation in microseconds and bounded memory per node.
//! - `parallel-compilation`: a cold start compiles a component's functions on all cores.
//!
//! Left out on purpose: `cache` (wasmtime's own compile cache: Skiff keeps its own,
//! keyed by content digest and verified before loading), `component-model-async` (WASIp3;
//! without it `concurrency_support` is off, which cut the CPU per WASIp2 HTTP request by
//! about a quarter here), `wat`, `gc*`, `threads`, `profiling`, `coredump`, `debug*`,
//! `addr2line`, `demangle`, `wit-parser` — none is used, each costs binary size.
//! `wasmtime-wasi-http` is built without `default-send-request` (rustls): outbound HTTP
//! goes through Skiff's own hook, which denies it until the pod network exists.

use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

use crate::error::{Error, Result};

/// Everything that shapes the node's [`Engine`]. [`EngineConfig::default`] suits a small
/// node; tests shrink the pools.
#[derive(Clone, Debug)]
pub struct EngineConfig {
    /// How many component instances may be live at once on the node.
    pub total_component_instances: u32,
    /// How many core instances may be live at once (a component holds a few).
    pub total_core_instances: u32,
    /// How many linear memories may be live at once.
    pub total_memories: u32,
    /// How many tables may be live at once.
    pub total_tables: u32,
    /// How many guests may be running (holding a fiber stack) at once.
    pub total_stacks: u32,
    /// The largest one linear memory may grow to, in bytes. A pod's memory limit is
    /// enforced over all its memories by the pod's own budget; this is the node's cap.
    pub max_memory_size: usize,
    /// The most wasm stack one call may use. Must be below `async_stack_size`.
    pub max_wasm_stack: usize,
    /// The size of each guest's fiber stack (wasm frames plus host calls).
    pub async_stack_size: usize,
    /// How often the epoch ticker advances the epoch: the granularity of CPU accounting,
    /// time slices, deadlines and the kill switch for a running guest.
    pub epoch_tick: Duration,
    /// Compile for another target triple (precompiling for other nodes); `None` = host.
    pub target: Option<String>,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            total_component_instances: 1000,
            total_core_instances: 4000,
            total_memories: 1000,
            total_tables: 2000,
            total_stacks: 1000,
            max_memory_size: 1 << 30,
            max_wasm_stack: 512 << 10,
            async_stack_size: 2 << 20,
            epoch_tick: Duration::from_millis(5),
            target: None,
        }
    }
}

impl EngineConfig {
    /// A configuration small enough for many engines in one test process.
    pub fn small() -> Self {
        EngineConfig {
            total_component_instances: 64,
            total_core_instances: 256,
            total_memories: 64,
            total_tables: 128,
            total_stacks: 64,
            max_memory_size: 256 << 20,
            ..EngineConfig::default()
        }
    }

    /// The wasmtime [`Config`] these settings stand for.
    pub fn wasmtime_config(&self) -> Result<Config> {
        if self.max_wasm_stack >= self.async_stack_size {
            return Err(Error::Engine(format!(
                "max_wasm_stack ({}) must be below async_stack_size ({})",
                self.max_wasm_stack, self.async_stack_size
            )));
        }
        if self.epoch_tick.is_zero() {
            return Err(Error::Engine("epoch_tick must be above zero".into()));
        }
        let mut pool = PoolingAllocationConfig::new();
        pool.total_component_instances(self.total_component_instances)
            .total_core_instances(self.total_core_instances)
            .total_memories(self.total_memories)
            .total_tables(self.total_tables)
            .total_stacks(self.total_stacks)
            .max_memory_size(self.max_memory_size);

        let mut config = Config::new();
        config
            .wasm_component_model(true)
            .epoch_interruption(true)
            .max_wasm_stack(self.max_wasm_stack)
            .async_stack_size(self.async_stack_size)
            .memory_init_cow(true)
            .parallel_compilation(true)
            .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        if let Some(target) = &self.target {
            config
                .target(target)
                .map_err(|e| Error::Engine(format!("target {target}: {e}")))?;
        }
        Ok(config)
    }

    /// Builds the node's engine.
    pub fn build(&self) -> Result<Engine> {
        let config = self.wasmtime_config()?;
        Engine::new(&config).map_err(|e| Error::Engine(format!("{e:#}")))
    }
}

/// The one thread that advances the engine's epoch every `tick`. Dropping it stops and
/// joins the thread.
pub struct EpochTicker {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for EpochTicker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EpochTicker").finish_non_exhaustive()
    }
}

impl EpochTicker {
    /// Starts the ticker thread.
    pub fn start(engine: &Engine, tick: Duration) -> Result<EpochTicker> {
        let (stop, stopped) = mpsc::channel::<()>();
        let engine = engine.clone();
        let thread = std::thread::Builder::new()
            .name("skiff-epoch".into())
            .spawn(move || {
                // The sender never sends: its drop is the stop signal.
                while let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(tick) {
                    engine.increment_epoch();
                }
            })
            .map_err(|e| Error::Engine(format!("cannot start the epoch ticker: {e}")))?;
        Ok(EpochTicker {
            stop: Some(stop),
            thread: Some(thread),
        })
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stack_must_fit_in_the_fiber() {
        let config = EngineConfig {
            max_wasm_stack: 4 << 20,
            ..EngineConfig::small()
        };
        assert!(matches!(config.wasmtime_config(), Err(Error::Engine(_))));
    }
}
