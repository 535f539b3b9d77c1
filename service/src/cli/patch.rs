//! `settings-sync patch`: a per-field client's write of named top-level
//! fields (docs/protocol.md, "Per-field merge"). The edits are checked here
//! exactly as the server parses a patch (names, duplicates, JSON), without
//! the server's size and depth limits, which the server enforces.

use clap::Args;
use settings_sync_client::LocalFieldDocument;
use settings_sync_proto::convert::parse_patch;
use settings_sync_proto::v1;
use settings_sync_protocol::fields::{Change, FieldWrite, Patch};
use settings_sync_protocol::{Clock, DocumentKey, Stamp, ValueLimits, WriterId};

use super::{CliError, ServerArg, StampArgs, document_json, parse_key};

#[derive(Debug, Clone, Args)]
pub struct PatchArgs {
    #[command(flatten)]
    pub server: ServerArg,
    pub tenant: String,
    pub owner: String,
    pub name: String,
    /// Set a top-level field to a JSON value (`null` included); repeatable.
    #[arg(long = "set", value_name = "FIELD=JSON")]
    pub set: Vec<String>,
    /// Delete a top-level field (a field tombstone); repeatable.
    #[arg(long = "delete", value_name = "FIELD")]
    pub delete: Vec<String>,
    #[command(flatten)]
    pub stamp: StampArgs,
}

pub async fn patch(args: PatchArgs) -> Result<(), CliError> {
    let key = parse_key(&args.tenant, &args.owner, &args.name)?;
    let patch = parse_edits(&args.set, &args.delete)?;
    let mut client = args.server.connect().await?;
    let write = match given_stamp(args.stamp)? {
        Some(stamp) => FieldWrite {
            stamp,
            change: Change::Patch(patch),
        },
        None => fresh_client_write(&mut client, &key, patch).await?,
    };
    let reply = client.sync_fields(&key, &write).await?;
    let mut out = document_json(&reply.document);
    out["decision"] = reply.report.decision.as_str().into();
    out["field_decisions"] = (reply.report.fields.iter())
        .map(|(name, decision)| (name.clone(), decision.as_str().into()))
        .collect::<serde_json::Map<String, serde_json::Value>>()
        .into();
    println!("{out}");
    Ok(())
}

/// A fresh per-field client: reads the stored document (adopting it by the
/// per-field adopt rule), then stamps the patch past every clock it saw.
async fn fresh_client_write(
    client: &mut settings_sync_client::Client,
    key: &DocumentKey,
    patch: Patch,
) -> Result<FieldWrite, CliError> {
    let mut local = LocalFieldDocument::new(key.clone());
    local.sync(client).await?;
    Ok(local.patch(patch))
}

fn given_stamp(stamp: StampArgs) -> Result<Option<Stamp>, CliError> {
    match (stamp.clock, stamp.writer) {
        (Some(clock), Some(writer)) => Ok(Some(Stamp::new(
            Clock::new(clock).map_err(CliError::usage)?,
            WriterId::parse(writer).map_err(CliError::usage)?,
        ))),
        _ => Ok(None),
    }
}

/// `--set FIELD=JSON` and `--delete FIELD` as a patch, by the server's own
/// parser: the first `=` ends the name (a name can not hold one here).
fn parse_edits(sets: &[String], deletes: &[String]) -> Result<Patch, CliError> {
    let mut edits = Vec::with_capacity(sets.len() + deletes.len());
    for set in sets {
        let (field, json) = set
            .split_once('=')
            .ok_or_else(|| CliError::usage(format!("--set {set:?}: expected FIELD=JSON")))?;
        edits.push(v1::FieldEdit {
            field: field.to_owned(),
            op: Some(v1::field_edit::Op::SetJson(json.to_owned())),
        });
    }
    edits.extend(deletes.iter().map(|field| v1::FieldEdit {
        field: field.clone(),
        op: Some(v1::field_edit::Op::Delete(true)),
    }));
    if edits.is_empty() {
        return Err(CliError::usage("nothing to patch: give --set or --delete"));
    }
    let unlimited = ValueLimits {
        max_bytes: usize::MAX,
        max_depth: usize::MAX,
    };
    parse_patch(v1::FieldPatch { edits }, unlimited).map_err(CliError::usage)
}

#[cfg(test)]
mod tests {
    use super::*;
    use settings_sync_protocol::fields::FieldOp;

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn sets_and_deletes_become_one_patch_split_at_the_first_equals_sign() {
        let patch = parse_edits(
            &strings(&["email=true", "note=\"a=b\""]),
            &strings(&["theme"]),
        );
        let patch = patch.unwrap();
        assert_eq!(patch["email"], FieldOp::Set(serde_json::json!(true)));
        assert_eq!(patch["note"], FieldOp::Set(serde_json::json!("a=b")));
        assert_eq!(patch["theme"], FieldOp::Delete);
    }

    #[test]
    fn bad_edits_are_usage_errors() {
        let cases: [(&[&str], &[&str], &str); 5] = [
            (&["email"], &[], "expected FIELD=JSON"),
            (&["=1"], &[], "field names must be"),
            (&["email={"], &[], "patch: field \"email\""),
            (&["email=1"], &["email"], "edited twice"),
            (&[], &[], "nothing to patch"),
        ];
        for (sets, deletes, message) in cases {
            let error = parse_edits(&strings(sets), &strings(deletes)).unwrap_err();
            assert_eq!(
                error.exit(),
                super::super::Exit::Usage,
                "{sets:?} {deletes:?}"
            );
            assert!(error.to_string().contains(message), "{error}");
        }
    }
}
