//! The composition root: wires the client, the HTTP port, leader election
//! and the controller, and runs them until a shutdown signal or the loss
//! of the leader Lease.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, Service, ServiceAccount};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::runtime::Controller;
use kube::runtime::events::Reporter;
use kube::runtime::watcher;
use kube::{Api, Client, Resource};
use prometheus_client::registry::Registry;
use serde::de::DeserializeOwned;
use tokio::sync::watch;
use tracing::{debug, error, info};

use crate::builders::MANAGED_BY;
use crate::context::{Context, ErrorChain, Timing, error_policy};
use crate::crd::SettingsSync;
use crate::leader::{Elector, LeaderError, LeaseConfig};
use crate::metrics::Metrics;
use crate::reconcile::reconcile;

pub struct Settings {
    /// Watch only this namespace; all namespaces when `None`.
    pub namespace: Option<String>,
    pub http_listen: SocketAddr,
    pub lease: LeaseConfig,
    pub timing: Timing,
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("cannot configure the Kubernetes client (KUBECONFIG or in-cluster)")]
    Client(#[source] kube::Error),
    #[error("cannot reach the Kubernetes API server")]
    Unreachable(#[source] kube::Error),
    #[error("cannot serve the health and metrics port")]
    Http(#[source] std::io::Error),
    #[error(transparent)]
    Leader(#[from] LeaderError),
}

/// Runs the operator until `shutdown` resolves (then returns `Ok`), or
/// until it can no longer run (then returns why).
pub async fn run(
    settings: Settings,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), RunError> {
    let client = Client::try_default().await.map_err(RunError::Client)?;
    let mut registry = Registry::default();
    let metrics = Metrics::register(&mut registry);
    let (ready_tx, ready_rx) = watch::channel(false);
    let (stop_tx, stop_rx) = watch::channel(false);
    let stopped = move |mut rx: watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|stop| *stop).await;
    };

    let router = crate::http::router(Arc::new(registry), ready_rx);
    let (addr, serve) = crate::http::bind(settings.http_listen, router, stopped(stop_rx.clone()))
        .await
        .map_err(RunError::Http)?;
    info!(%addr, "serving /healthz, /readyz and /metrics");
    let http = tokio::spawn(serve);

    let version = client
        .apiserver_version()
        .await
        .map_err(RunError::Unreachable)?;
    info!(version = %version.git_version, "connected to the API server");
    let _ = ready_tx.send(true);

    let mut elector = Elector::new(client.clone(), settings.lease.clone());
    tokio::pin!(shutdown);
    let outcome = tokio::select! {
        () = &mut shutdown => Ok(()),
        acquired = elector.acquire() => match acquired {
            Err(e) => Err(e.into()),
            Ok(()) => {
                metrics.leader.set(1);
                let reporter = Reporter { controller: "settings-sync-operator".into(), instance: Some(settings.lease.identity.clone()) };
                let ctx = Arc::new(Context::new(client.clone(), reporter, metrics.clone(), settings.timing));
                let controller = controller(client, settings.namespace.as_deref(), ctx, stopped(stop_rx));
                tokio::pin!(controller);
                tokio::select! {
                    () = &mut shutdown => {
                        let _ = stop_tx.send(true);
                        controller.await;
                        elector.release().await;
                        Ok(())
                    }
                    lost = elector.keep() => Err(lost.into()),
                    () = &mut controller => Ok(()),
                }
            }
        }
    };
    metrics.leader.set(0);
    let _ = stop_tx.send(true);
    let _ = http.await;
    outcome
}

fn owned<K>(client: &Client, namespace: Option<&str>) -> Api<K>
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>,
{
    match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

async fn controller(
    client: Client,
    namespace: Option<&str>,
    ctx: Arc<Context>,
    stop: impl Future<Output = ()> + Send + Sync + 'static,
) {
    let ours = watcher::Config::default().labels(&format!("{}={}", MANAGED_BY.0, MANAGED_BY.1));
    let controller = Controller::new(
        owned::<SettingsSync>(&client, namespace),
        watcher::Config::default(),
    );
    let controller = owns::<Deployment>(controller, &client, namespace, &ours);
    let controller = owns::<Job>(controller, &client, namespace, &ours);
    let controller = owns::<Service>(controller, &client, namespace, &ours);
    let controller = owns::<ConfigMap>(controller, &client, namespace, &ours);
    let controller = owns::<ServiceAccount>(controller, &client, namespace, &ours);
    let controller = owns::<PodDisruptionBudget>(controller, &client, namespace, &ours);
    let controller = owns::<NetworkPolicy>(controller, &client, namespace, &ours);
    info!(
        namespace = namespace.unwrap_or("<all>"),
        "reconciling SettingsSync resources"
    );
    controller
        .graceful_shutdown_on(stop)
        .run(reconcile, error_policy, ctx)
        .for_each(|result| async move {
            if let Err(e) = result {
                // Reconcile errors are logged by the error policy; these
                // are the controller's own (a watch failing, say).
                use kube::runtime::controller::Error as E;
                match e {
                    E::ReconcilerFailed(..) => {}
                    // A change to a child arrived for a resource that is
                    // gone (or not yet in the cache): nothing to do.
                    E::ObjectNotFound(obj) => debug!(%obj, "no such SettingsSync any more"),
                    e => error!(error = %ErrorChain(&e), "controller error"),
                }
            }
        })
        .await;
}

fn owns<K>(
    controller: Controller<SettingsSync>,
    client: &Client,
    namespace: Option<&str>,
    config: &watcher::Config,
) -> Controller<SettingsSync>
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
{
    controller.owns(owned::<K>(client, namespace), config.clone())
}

/// Default Lease timing: a new leader within ~15 s of a crash.
pub const LEASE_DURATION: Duration = Duration::from_secs(15);
pub const LEASE_RETRY: Duration = Duration::from_secs(2);
