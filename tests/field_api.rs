//! The opt-in per-field merge over the wire, on both stores: patches and
//! their per-field decisions, the registers on every read (Get, BatchGet,
//! Query, Watch), the merged value those reads and Query's containment
//! see, and the opt-in rule: a whole-document (v1) client may not write a
//! document that holds a patch, until a per-field client writes it whole.

use std::collections::HashMap;
use std::time::Duration;

use serde_json::json;
use settings_sync_client::LocalFieldDocument;
use settings_sync_proto::v1::field_edit::Op;
use settings_sync_proto::v1::watch_response::Event;
use settings_sync_proto::v1::{self, Decision};
use settings_sync_protocol::Document;
use settings_sync_protocol::fields::{FieldOp, Patch};
use settings_sync_tests::TestServer;
use settings_sync_tests::both_stores;
use settings_sync_tests::fixtures::{assert_refused, key, write};
use tonic::Code;

fn stamp(clock: u64, writer: &str) -> Option<v1::Stamp> {
    Some(v1::Stamp {
        clock,
        writer: writer.into(),
    })
}

/// A patch of `acme/{owner}/alerts`; `None` deletes the field.
fn patch(owner: &str, clock: u64, writer: &str, edits: &[(&str, Option<&str>)]) -> v1::SyncRequest {
    let edits = (edits.iter())
        .map(|(field, json)| v1::FieldEdit {
            field: (*field).into(),
            op: Some(match json {
                Some(json) => Op::SetJson((*json).into()),
                None => Op::Delete(true),
            }),
        })
        .collect();
    v1::SyncRequest {
        key: Some((&key(owner)).into()),
        stamp: stamp(clock, writer),
        patch: Some(v1::FieldPatch { edits }),
        ..Default::default()
    }
}

fn whole(owner: &str, clock: u64, writer: &str, json: &str, per_field: bool) -> v1::SyncRequest {
    v1::SyncRequest {
        key: Some((&key(owner)).into()),
        value_json: json.into(),
        stamp: stamp(clock, writer),
        per_field,
        ..Default::default()
    }
}

fn decisions(response: &v1::SyncResponse) -> HashMap<&str, Decision> {
    (response.field_decisions.iter())
        .map(|(name, d)| (name.as_str(), Decision::try_from(*d).unwrap()))
        .collect()
}

fn value(document: &v1::Document) -> serde_json::Value {
    serde_json::from_str(&document.value_json).unwrap()
}

both_stores!(
    concurrent_patches_of_different_fields_both_survive_and_every_read_shows_the_merge,
    |server: TestServer| async move {
        let mut client = server.client().await;
        let raw = client.raw();
        let mut watch = raw
            .watch(v1::WatchRequest {
                tenant: "acme".into(),
                owner: "dispatch".into(),
                name: String::new(),
                after_revision: Some(0),
            })
            .await
            .unwrap()
            .into_inner();

        // Two tabs, neither having seen the other's edit.
        let email = raw
            .sync(patch("dispatch", 1, "tab-1", &[("email", Some("true"))]))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(email.decision(), Decision::Applied);
        let airports = raw
            .sync(patch(
                "dispatch",
                1,
                "tab-2",
                &[("airports", Some(r#"["SEA"]"#))],
            ))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(airports.decision(), Decision::Applied);
        assert_eq!(
            decisions(&airports),
            HashMap::from([("airports", Decision::Applied)])
        );
        let merged = json!({"email": true, "airports": ["SEA"]});
        let document = airports.document.unwrap();
        assert_eq!(value(&document), merged);
        let registers = document
            .fields
            .clone()
            .expect("a document holding patches lists them");
        assert_eq!(registers.floor, None);
        assert_eq!(registers.stamps["email"], stamp(1, "tab-1").unwrap());
        assert_eq!(registers.stamps["airports"], stamp(1, "tab-2").unwrap());
        assert_eq!(document.stamp, stamp(1, "tab-2"), "the largest field stamp");

        let got = raw
            .get(v1::GetRequest {
                key: Some((&key("dispatch")).into()),
            })
            .await
            .unwrap()
            .into_inner()
            .document
            .unwrap();
        assert_eq!(got, document, "Get returns what Sync answered");
        let batch = raw
            .batch_get(v1::BatchGetRequest {
                keys: vec![(&key("dispatch")).into()],
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(batch.documents, vec![document.clone()]);
        let query = |contains: &str| v1::QueryRequest {
            tenant: "acme".into(),
            name: "alerts".into(),
            contains_json: contains.into(),
            ..Default::default()
        };
        let found = raw
            .query(query(r#"{"email":true,"airports":["SEA"]}"#))
            .await
            .unwrap();
        assert_eq!(
            found.into_inner().documents,
            vec![document.clone()],
            "containment on the merge"
        );

        let mut changes = Vec::new();
        while changes.len() < 2 {
            let message = tokio::time::timeout(Duration::from_secs(10), watch.message());
            match message
                .await
                .expect("a change in time")
                .unwrap()
                .unwrap()
                .event
            {
                Some(Event::Change(change)) => changes.push(change),
                _ => continue,
            }
        }
        assert_eq!(changes[1], document, "Watch delivers the registers too");
        let parsed = Document::try_from(changes[1].clone()).unwrap();
        assert!(parsed.fields.is_some_and(|f| f.holds_patch()));

        // A late patch of email from a tab that saw nothing: stale for
        // email only; the new field it sets is applied.
        let late = raw
            .sync(patch(
                "dispatch",
                1,
                "tab-0",
                &[("email", Some("false")), ("sms", Some("true"))],
            ))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(
            late.decision(),
            Decision::Stale,
            "adopt the document returned"
        );
        assert_eq!(
            decisions(&late),
            HashMap::from([("email", Decision::Stale), ("sms", Decision::Applied)])
        );
        assert_eq!(
            value(late.document.as_ref().unwrap()),
            json!({"email": true, "airports": ["SEA"], "sms": true})
        );

        // A delete leaves a field tombstone in the registers.
        let deleted = raw
            .sync(patch("dispatch", 2, "tab-1", &[("sms", None)]))
            .await
            .unwrap()
            .into_inner();
        let document = deleted.document.unwrap();
        assert_eq!(value(&document), merged);
        assert_eq!(
            document.fields.unwrap().stamps["sms"],
            stamp(2, "tab-1").unwrap()
        );
    }
);

both_stores!(
    a_whole_document_client_may_not_write_a_document_holding_a_patch_until_a_per_field_client_writes_it_whole,
    |server: TestServer| async move {
        let mut client = server.client().await;
        client
            .sync(&key("opt"), &write(1, "v1-tab", json!({"theme": "dark"})))
            .await
            .unwrap();
        let raw = client.raw();
        let patched = raw
            .sync(patch("opt", 2, "tab-1", &[("font", Some("14"))]))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(patched.decision(), Decision::Applied);
        let before = patched.document.unwrap();
        assert_eq!(value(&before), json!({"theme": "dark", "font": 14}));

        // The v1 client echoing what it read, and editing: both refused.
        let echo = whole("opt", 2, "tab-1", &before.value_json, false);
        let status = raw.sync(echo).await.unwrap_err();
        assert_refused(&status, Code::FailedPrecondition, "per-field");
        let edit = whole("opt", 9, "v1-tab", r#"{"theme":"light"}"#, false);
        let status = raw.sync(edit).await.unwrap_err();
        assert_refused(&status, Code::FailedPrecondition, "per-field");
        let after = raw
            .get(v1::GetRequest {
                key: Some((&key("opt")).into()),
            })
            .await
            .unwrap()
            .into_inner()
            .document
            .unwrap();
        assert_eq!(after, before, "a refusal changes nothing");

        // A per-field client's whole write, newer than every field: the
        // document is exactly that write, and holds no patch any more.
        let reset = raw
            .sync(whole("opt", 3, "tab-1", r#"{"theme":"light"}"#, true))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(reset.decision(), Decision::Applied);
        assert_eq!(
            decisions(&reset),
            HashMap::from([("theme", Decision::Applied), ("font", Decision::Applied)])
        );
        let document = reset.document.unwrap();
        assert_eq!(document.fields, None);
        assert_eq!(value(&document), json!({"theme": "light"}));

        let v1_again = raw
            .sync(whole("opt", 4, "v1-tab", r#"{"theme":"dark"}"#, false))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(v1_again.decision(), Decision::Applied);
        assert!(v1_again.field_decisions.is_empty(), "a v1 answer is as it was");
    }
);

both_stores!(
    an_empty_patch_reads_and_of_a_missing_document_is_not_found,
    |server: TestServer| async move {
        let mut client = server.client().await;
        let raw = client.raw();
        let status = raw.sync(patch("nobody", 1, "tab", &[])).await.unwrap_err();
        assert_eq!(status.code(), Code::NotFound);
        raw.sync(patch("somebody", 1, "tab", &[("a", Some("1"))]))
            .await
            .unwrap();
        let read = raw
            .sync(patch("somebody", 7, "tab", &[]))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(read.decision(), Decision::Unchanged);
        assert_eq!(value(read.document.as_ref().unwrap()), json!({"a": 1}));
    }
);

both_stores!(
    two_local_field_documents_editing_different_fields_both_end_on_both_edits,
    |server: TestServer| async move {
        let mut client = server.client().await;
        let mut tab1 = LocalFieldDocument::new(key("pair"));
        let mut tab2 = LocalFieldDocument::new(key("pair"));
        // Concurrent: neither has seen anything, both stamps have clock 1.
        tab1.patch(Patch::from([(
            "email".to_owned(),
            FieldOp::Set(json!(true)),
        )]));
        tab2.patch(Patch::from([(
            "airports".to_owned(),
            FieldOp::Set(json!(["SEA"])),
        )]));
        let applied = vec![settings_sync_protocol::Decision::Applied];
        assert_eq!(tab1.sync(&mut client).await.unwrap(), applied);
        assert_eq!(tab2.sync(&mut client).await.unwrap(), applied);
        assert!(tab1.sync(&mut client).await.unwrap().is_empty(), "a read");
        let merged = json!({"email": true, "airports": ["SEA"]});
        assert_eq!(tab1.document().value().to_json(), merged);
        assert_eq!(tab2.document().value().to_json(), merged);
        assert!(tab1.unconfirmed().is_empty() && tab2.unconfirmed().is_empty());
        let stored = client.get(&key("pair")).await.unwrap().unwrap();
        assert_eq!(stored.field_document(), *tab1.document());
    }
);
