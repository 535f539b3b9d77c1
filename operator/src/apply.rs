//! Server-side apply with the operator's one field manager, and the other
//! few writes the reconciler makes. Every call names what it was doing, so
//! an error in the log reads "cannot apply Deployment apps/prefs: …".

use std::fmt::Debug;

use kube::api::{DeleteParams, Patch, PatchParams};
use kube::{Api, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// The field manager of everything the operator writes. One manager means
/// a field the operator stops setting is removed by the next apply.
pub const MANAGER: &str = "settings-sync-operator";

#[derive(Debug, thiserror::Error)]
#[error("cannot {action} {kind} {name}")]
pub struct KubeError {
    pub action: &'static str,
    pub kind: String,
    pub name: String,
    #[source]
    pub source: kube::Error,
}

fn fail<K: Resource<DynamicType = ()>>(
    action: &'static str,
    name: &str,
) -> impl FnOnce(kube::Error) -> KubeError {
    let name = name.to_string();
    move |source| KubeError {
        action,
        kind: K::kind(&()).into_owned(),
        name,
        source,
    }
}

/// Applies `obj` (its name taken from its metadata) and returns the object
/// as the API server now has it, status included.
pub async fn apply<K>(api: &Api<K>, obj: &K) -> Result<K, KubeError>
where
    K: Resource<DynamicType = ()> + Clone + Serialize + DeserializeOwned + Debug,
{
    let name = obj.name_any();
    // `force`: the operator owns these objects; a person's `kubectl edit`
    // of a managed field is drift to undo, not a conflict to stop on.
    let params = PatchParams::apply(MANAGER).force();
    api.patch(&name, &params, &Patch::Apply(obj))
        .await
        .map_err(fail::<K>("apply", &name))
}

pub async fn get<K>(api: &Api<K>, name: &str) -> Result<Option<K>, KubeError>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug,
{
    api.get_opt(name).await.map_err(fail::<K>("read", name))
}

/// Deletes `name` if it exists; dependents (a Job's pods) go in the
/// background.
pub async fn delete<K>(api: &Api<K>, name: &str) -> Result<(), KubeError>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug,
{
    match api.delete(name, &DeleteParams::background()).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
        Err(source) => Err(fail::<K>("delete", name)(source)),
    }
}
