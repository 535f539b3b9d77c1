//! The NetworkPolicy of an instance's pods: ingress only to the gRPC port,
//! only from the peers in the spec (by default, the pods of the resource's
//! namespace). Egress is not restricted: the server reaches its database
//! and collector, whose addresses the operator does not know.

use k8s_openapi::api::networking::v1::{
    NetworkPolicy, NetworkPolicyIngressRule, NetworkPolicyPeer, NetworkPolicyPort,
    NetworkPolicySpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::{GRPC_PORT, Instance};

pub fn network_policy(instance: &Instance) -> NetworkPolicy {
    NetworkPolicy {
        metadata: instance.child_meta(instance.name.clone(), "server"),
        spec: Some(NetworkPolicySpec {
            // Server and migration pods: nothing but the server listens.
            pod_selector: Some(LabelSelector {
                match_labels: Some(instance.instance_labels()),
                ..LabelSelector::default()
            }),
            policy_types: Some(vec!["Ingress".into()]),
            ingress: Some(vec![NetworkPolicyIngressRule {
                ports: Some(vec![NetworkPolicyPort {
                    port: Some(IntOrString::Int(GRPC_PORT)),
                    protocol: Some("TCP".into()),
                    end_port: None,
                }]),
                from: Some(peers(instance)),
            }]),
            ..NetworkPolicySpec::default()
        }),
    }
}

/// Never empty: an empty `from` would admit every source.
fn peers(instance: &Instance) -> Vec<NetworkPolicyPeer> {
    let asked = instance
        .spec
        .network_policy
        .as_ref()
        .map(|p| p.from.clone())
        .unwrap_or_default();
    if !asked.is_empty() {
        return asked;
    }
    // An empty pod selector without a namespace selector: every pod of
    // the policy's own namespace.
    vec![NetworkPolicyPeer {
        pod_selector: Some(LabelSelector::default()),
        ..NetworkPolicyPeer::default()
    }]
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::instance;
    use super::*;
    use crate::crd::NetworkPolicySpec as Asked;
    use std::collections::BTreeMap;

    fn rule(policy: &NetworkPolicy) -> NetworkPolicyIngressRule {
        policy.spec.as_ref().unwrap().ingress.as_ref().unwrap()[0].clone()
    }

    #[test]
    fn only_the_grpc_port_is_open_and_only_for_ingress() {
        let policy = network_policy(&instance(1));
        let spec = policy.spec.as_ref().unwrap();
        assert_eq!(spec.policy_types, Some(vec!["Ingress".to_string()]));
        assert_eq!(spec.ingress.as_ref().unwrap().len(), 1);
        let ports = rule(&policy).ports.unwrap();
        assert_eq!(ports.len(), 1);
        assert_eq!(ports[0].port, Some(IntOrString::Int(50051)));
    }

    #[test]
    fn by_default_only_pods_of_the_same_namespace_may_connect() {
        let from = rule(&network_policy(&instance(1))).from.unwrap();
        assert_eq!(from.len(), 1);
        assert_eq!(from[0].pod_selector, Some(LabelSelector::default()));
        assert!(from[0].namespace_selector.is_none() && from[0].ip_block.is_none());
    }

    #[test]
    fn the_peers_in_the_spec_replace_the_default() {
        let mut instance = instance(1);
        let gateway = NetworkPolicyPeer {
            namespace_selector: Some(LabelSelector {
                match_labels: Some(BTreeMap::from([(
                    "kubernetes.io/metadata.name".to_string(),
                    "gateway".to_string(),
                )])),
                ..LabelSelector::default()
            }),
            ..NetworkPolicyPeer::default()
        };
        instance.spec.network_policy = Some(Asked {
            from: vec![gateway.clone()],
        });
        assert_eq!(rule(&network_policy(&instance)).from, Some(vec![gateway]));
    }

    #[test]
    fn an_empty_peer_list_in_the_spec_does_not_open_the_port_to_all() {
        let mut instance = instance(1);
        instance.spec.network_policy = Some(Asked { from: vec![] });
        let from = rule(&network_policy(&instance)).from.unwrap();
        assert_eq!(from.len(), 1);
        assert_eq!(from[0].pod_selector, Some(LabelSelector::default()));
    }

    #[test]
    fn the_policy_selects_the_instances_pods() {
        let instance = instance(1);
        let policy = network_policy(&instance);
        let selector = policy.spec.unwrap().pod_selector.unwrap();
        let selected = selector.match_labels.unwrap();
        for (k, v) in &selected {
            assert_eq!(instance.selector_labels().get(k), Some(v));
        }
        assert_eq!(selected["app.kubernetes.io/instance"], "prefs");
    }
}
