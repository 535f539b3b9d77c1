//! The Service clients reach, the pods' ServiceAccount, and the
//! PodDisruptionBudget that keeps voluntary evictions (node drains) from
//! taking more than one replica at a time.

use k8s_openapi::api::core::v1::{Service, ServiceAccount, ServicePort, ServiceSpec};
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::{GRPC_PORT, Instance};

pub fn service(instance: &Instance) -> Service {
    Service {
        metadata: instance.child_meta(instance.name.clone(), "server"),
        spec: Some(ServiceSpec {
            type_: Some("ClusterIP".into()),
            selector: Some(instance.selector_labels()),
            ports: Some(vec![ServicePort {
                name: Some("grpc".into()),
                port: GRPC_PORT,
                target_port: Some(IntOrString::String("grpc".into())),
                protocol: Some("TCP".into()),
                // Lets meshes and gateways treat the port as HTTP/2 gRPC.
                app_protocol: Some("grpc".into()),
                ..ServicePort::default()
            }]),
            ..ServiceSpec::default()
        }),
        status: None,
    }
}

/// A ServiceAccount of its own, so no pod runs as `default` and RBAC or
/// workload identity can be granted to this instance alone.
pub fn service_account(instance: &Instance) -> ServiceAccount {
    ServiceAccount {
        metadata: instance.child_meta(instance.name.clone(), "server"),
        automount_service_account_token: Some(false),
        ..ServiceAccount::default()
    }
}

/// `None` for a single replica: a budget of "one may be unavailable" would
/// allow the only pod to go, and "none may be" blocks node drains forever.
pub fn pod_disruption_budget(instance: &Instance) -> Option<PodDisruptionBudget> {
    (instance.spec.replicas > 1).then(|| PodDisruptionBudget {
        metadata: instance.child_meta(instance.name.clone(), "server"),
        spec: Some(PodDisruptionBudgetSpec {
            max_unavailable: Some(IntOrString::Int(1)),
            selector: Some(LabelSelector {
                match_labels: Some(instance.selector_labels()),
                ..LabelSelector::default()
            }),
            ..PodDisruptionBudgetSpec::default()
        }),
        status: None,
    })
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::instance;
    use super::*;

    #[test]
    fn the_service_exposes_grpc_on_the_server_pods() {
        let instance = instance(1);
        let svc = service(&instance).spec.unwrap();
        assert_eq!(svc.selector, Some(instance.selector_labels()));
        let port = &svc.ports.unwrap()[0];
        assert_eq!(port.port, 50051);
        assert_eq!(port.app_protocol.as_deref(), Some("grpc"));
    }

    #[test]
    fn a_single_replica_has_no_disruption_budget() {
        assert!(pod_disruption_budget(&instance(1)).is_none());
    }

    #[test]
    fn several_replicas_allow_one_disruption_at_a_time() {
        let pdb = pod_disruption_budget(&instance(3)).unwrap().spec.unwrap();
        assert_eq!(pdb.max_unavailable, Some(IntOrString::Int(1)));
    }

    #[test]
    fn the_service_account_token_is_not_mounted() {
        let sa = service_account(&instance(1));
        assert_eq!(sa.automount_service_account_token, Some(false));
    }
}
