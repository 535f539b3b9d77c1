//! The server Deployment.
//!
//! `image` is passed in rather than read from the spec: the reconciler
//! hands in the newest image whose migrations have completed, so a new
//! version's pods start only after its schema is in place.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{
    Deployment, DeploymentSpec, DeploymentStrategy, RollingUpdateDeployment,
};
use k8s_openapi::api::core::v1::{
    ContainerPort, GRPCAction, Lifecycle, LifecycleHandler, PodTemplateSpec, Probe,
    ResourceRequirements, SleepAction, TCPSocketAction, TopologySpreadConstraint,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::pod::{container, pod_spec, server_volumes};
use super::{CONFIG_HASH_ANNOTATION, GRPC_PORT, Instance, config_hash};

/// Seconds a terminating server keeps serving before its SIGTERM.
pub const PRE_STOP_SLEEP_SECONDS: i64 = 5;

pub fn deployment(instance: &Instance, image: &str) -> Deployment {
    let labels = instance.labels("server");
    let (volumes, mounts) = server_volumes(instance);
    let mut server = container(instance, image, &["serve"]);
    server.ports = Some(vec![ContainerPort {
        name: Some("grpc".into()),
        container_port: GRPC_PORT,
        protocol: Some("TCP".into()),
        ..ContainerPort::default()
    }]);
    server.volume_mounts = Some(mounts);
    server.resources = Some(
        instance
            .spec
            .resources
            .clone()
            .unwrap_or_else(default_resources),
    );
    let tls = instance.spec.tls.is_some();
    // Startup allows a slow first database connection (up to a minute)
    // without the liveness probe killing the pod meanwhile.
    server.startup_probe = Some(probe(tls, 2, 30));
    server.readiness_probe = Some(probe(tls, 5, 3));
    server.liveness_probe = Some(probe(tls, 10, 6));
    // A terminating pod leaves the Service's endpoints a moment after the
    // kubelet is told; until kube-proxy has caught up, new connections still
    // reach it. Serving on for that moment, before SIGTERM stops the
    // listener, keeps those connections from being refused.
    server.lifecycle = Some(Lifecycle {
        pre_stop: Some(LifecycleHandler {
            sleep: Some(SleepAction {
                seconds: PRE_STOP_SLEEP_SECONDS,
            }),
            ..LifecycleHandler::default()
        }),
        ..Lifecycle::default()
    });

    let mut pod = pod_spec(instance, server, volumes);
    pod.topology_spread_constraints = Some(spread(instance));
    // The pre-stop sleep, then the server drains in-flight requests for up
    // to 30 s after SIGTERM.
    pod.termination_grace_period_seconds = Some(40 + PRE_STOP_SLEEP_SECONDS);

    Deployment {
        metadata: instance.child_meta(instance.name.clone(), "server"),
        spec: Some(DeploymentSpec {
            replicas: Some(instance.spec.replicas),
            selector: LabelSelector {
                match_labels: Some(instance.selector_labels()),
                ..LabelSelector::default()
            },
            strategy: Some(DeploymentStrategy {
                type_: Some("RollingUpdate".into()),
                // Never below the requested replicas during a rollout.
                rolling_update: Some(RollingUpdateDeployment {
                    max_surge: Some(IntOrString::String("25%".into())),
                    max_unavailable: Some(IntOrString::Int(0)),
                }),
            }),
            revision_history_limit: Some(5),
            progress_deadline_seconds: Some(600),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels),
                    annotations: Some(BTreeMap::from([(
                        CONFIG_HASH_ANNOTATION.to_string(),
                        config_hash(instance),
                    )])),
                    ..ObjectMeta::default()
                }),
                spec: Some(pod),
            },
            ..DeploymentSpec::default()
        }),
        status: None,
    }
}

/// Kubernetes' native gRPC probe asks `grpc.health.v1` for the overall
/// service (""). It speaks plaintext only, so with TLS on the probe falls
/// back to a TCP connect on the same port.
fn probe(tls: bool, period: i32, failures: i32) -> Probe {
    let mut probe = Probe {
        period_seconds: Some(period),
        failure_threshold: Some(failures),
        timeout_seconds: Some(2),
        ..Probe::default()
    };
    if tls {
        probe.tcp_socket = Some(TCPSocketAction {
            port: IntOrString::Int(GRPC_PORT),
            host: None,
        });
    } else {
        probe.grpc = Some(GRPCAction {
            port: GRPC_PORT,
            service: Some(String::new()),
        });
    }
    probe
}

/// Spread replicas across nodes (and zones where the cluster has them),
/// preferring rather than requiring it so a small cluster still schedules.
fn spread(instance: &Instance) -> Vec<TopologySpreadConstraint> {
    if !instance.spec.topology_spread_constraints.is_empty() {
        return instance.spec.topology_spread_constraints.clone();
    }
    ["kubernetes.io/hostname", "topology.kubernetes.io/zone"]
        .into_iter()
        .map(|key| TopologySpreadConstraint {
            max_skew: 1,
            topology_key: key.into(),
            when_unsatisfiable: "ScheduleAnyway".into(),
            label_selector: Some(LabelSelector {
                match_labels: Some(instance.selector_labels()),
                ..LabelSelector::default()
            }),
            ..TopologySpreadConstraint::default()
        })
        .collect()
}

/// Requests so the scheduler places pods sensibly, and a memory limit so a
/// leak cannot take a node down; no CPU limit (throttling hurts latency).
fn default_resources() -> ResourceRequirements {
    let q = |s: &str| Quantity(s.into());
    ResourceRequirements {
        requests: Some(BTreeMap::from([
            ("cpu".into(), q("100m")),
            ("memory".into(), q("128Mi")),
        ])),
        limits: Some(BTreeMap::from([("memory".into(), q("512Mi"))])),
        ..ResourceRequirements::default()
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::instance;
    use super::*;
    use crate::crd::TlsSpec;

    fn pod(d: &Deployment) -> &k8s_openapi::api::core::v1::PodSpec {
        d.spec.as_ref().unwrap().template.spec.as_ref().unwrap()
    }

    #[test]
    fn the_deployment_runs_the_given_image_with_the_requested_replicas() {
        let d = deployment(&instance(3), "img:2");
        assert_eq!(d.spec.as_ref().unwrap().replicas, Some(3));
        let c = &pod(&d).containers[0];
        assert_eq!(c.image.as_deref(), Some("img:2"));
        assert_eq!(c.args.as_deref(), Some(&["serve".to_string()][..]));
    }

    #[test]
    fn pods_follow_the_restricted_security_standard() {
        let d = deployment(&instance(1), "img");
        let pod = pod(&d);
        let psc = pod.security_context.as_ref().unwrap();
        assert_eq!(psc.run_as_non_root, Some(true));
        assert_eq!(
            psc.seccomp_profile.as_ref().unwrap().type_,
            "RuntimeDefault"
        );
        let sc = pod.containers[0].security_context.as_ref().unwrap();
        assert_eq!(sc.allow_privilege_escalation, Some(false));
        assert_eq!(sc.read_only_root_filesystem, Some(true));
        let drop = sc.capabilities.as_ref().unwrap().drop.as_ref().unwrap();
        assert_eq!(drop, &vec!["ALL".to_string()]);
    }

    #[test]
    fn probes_use_native_grpc_health_on_the_serving_port() {
        let d = deployment(&instance(1), "img");
        let c = &pod(&d).containers[0];
        for probe in [&c.readiness_probe, &c.liveness_probe, &c.startup_probe] {
            let grpc = probe.as_ref().unwrap().grpc.as_ref().unwrap();
            assert_eq!(grpc.port, 50051);
        }
    }

    #[test]
    fn probes_fall_back_to_tcp_when_tls_is_on() {
        let mut instance = instance(1);
        instance.spec.tls = Some(TlsSpec {
            secret_name: "t".into(),
            client_ca_secret_ref: None,
        });
        let d = deployment(&instance, "img");
        let readiness = pod(&d).containers[0].readiness_probe.clone().unwrap();
        assert!(readiness.grpc.is_none() && readiness.tcp_socket.is_some());
    }

    #[test]
    fn a_terminating_pod_serves_on_until_the_service_forgets_it() {
        let d = deployment(&instance(1), "img");
        let pod = pod(&d);
        let pre_stop = pod.containers[0]
            .lifecycle
            .clone()
            .unwrap()
            .pre_stop
            .unwrap();
        assert_eq!(pre_stop.sleep.unwrap().seconds, PRE_STOP_SLEEP_SECONDS);
        // The sleep must not eat into the server's 30 s drain.
        assert!(pod.termination_grace_period_seconds.unwrap() >= PRE_STOP_SLEEP_SECONDS + 30);
    }

    #[test]
    fn rollouts_never_drop_below_the_requested_replicas() {
        let d = deployment(&instance(2), "img");
        let strategy = d.spec.unwrap().strategy.unwrap();
        let rolling = strategy.rolling_update.unwrap();
        assert_eq!(rolling.max_unavailable, Some(IntOrString::Int(0)));
    }

    #[test]
    fn replicas_spread_across_nodes_by_default() {
        let d = deployment(&instance(2), "img");
        let spread = pod(&d).topology_spread_constraints.clone().unwrap();
        assert_eq!(spread[0].topology_key, "kubernetes.io/hostname");
        assert_eq!(spread[0].when_unsatisfiable, "ScheduleAnyway");
    }

    #[test]
    fn the_selector_is_a_subset_of_the_pod_labels() {
        let d = deployment(&instance(1), "img");
        let spec = d.spec.unwrap();
        let labels = spec.template.metadata.unwrap().labels.unwrap();
        for (k, v) in spec.selector.match_labels.unwrap() {
            assert_eq!(labels.get(&k), Some(&v));
        }
    }
}
