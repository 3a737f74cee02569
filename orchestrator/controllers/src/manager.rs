//! The controller manager: runs the informers, the scheduler and every controller —
//! under leader election when several servers share a store.

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use skiff_client::Client;

use crate::context::{Context, ControllerConfig};
use crate::leader::{LeaderElectionConfig, run_elected};

/// How the manager runs.
#[derive(Clone, Debug)]
pub struct ManagerConfig {
    pub controllers: ControllerConfig,
    /// `None`: run unconditionally (a single server); `Some`: only while holding the Lease.
    pub leader_election: Option<LeaderElectionConfig>,
}

/// Runs the scheduler and controllers until `cancel`.
pub async fn run(client: Client, config: ManagerConfig, cancel: CancellationToken) {
    match config.leader_election.clone() {
        None => run_all(client, config.controllers, cancel).await,
        Some(election) => {
            let controllers = config.controllers;
            run_elected(client.clone(), election, cancel, |term| {
                run_all(client.clone(), controllers.clone(), term)
            })
            .await
        }
    }
}

/// One leadership term: fresh informers, every controller, until `cancel`.
async fn run_all(client: Client, config: ControllerConfig, cancel: CancellationToken) {
    let ctx = Context::new(client, config);
    let tasks = TaskTracker::new();
    ctx.informers.spawn(&tasks, &cancel);
    macro_rules! spawn {
        ($($module:ident),*) => {$(
            tasks.spawn(crate::$module::run(ctx.clone(), cancel.clone()));
        )*};
    }
    spawn!(
        scheduler,
        replicaset,
        deployment,
        daemonset,
        job,
        nodelifecycle,
        gc,
        namespace,
        endpoints
    );
    tasks.close();
    cancel.cancelled().await;
    tasks.wait().await;
}
