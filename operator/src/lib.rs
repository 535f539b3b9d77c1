//! The settings-sync operator: reconciles `SettingsSync` resources into a
//! running, migrated, observable settings-sync server.
//!
//! Pure rules (no I/O, unit-tested directly):
//! - `crd`        the custom resource types; the chart's CRD is generated from them
//! - `refusal`    what the operator will not deploy (no authentication asked for)
//! - `builders`   the child objects of a resource (Deployment, Job, Service, …)
//! - `preflight`  which Secrets a resource needs and what is wrong with them
//! - `status`     the status and its conditions from what the reconciler saw
//! - `events`     which status changes deserve a Kubernetes Event
//!
//! I/O:
//! - `apply`      server-side apply and the other writes, with one field manager
//! - `reconcile`  one reconciliation; `context` what reconciliations share
//! - `leader`     Lease-based leader election
//! - `http`       /healthz, /readyz, /metrics; `metrics` the Prometheus metrics
//! - `probe`      `settings-sync-operator probe URL`, the chart's `helm test`
//! - `telemetry`  logs and OTLP spans
//! - `runtime`    the composition root that wires them together

pub mod apply;
pub mod builders;
pub mod context;
pub mod crd;
pub mod events;
pub mod http;
pub mod leader;
pub mod metrics;
pub mod preflight;
pub mod probe;
pub mod reconcile;
pub mod refusal;
pub mod runtime;
pub mod status;
pub mod telemetry;
