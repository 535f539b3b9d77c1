//! The sync API's behaviour, the same against PostgreSQL and SQLite.

use serde_json::json;
use settings_sync_client::LocalDocument;
use settings_sync_protocol::{Decision, DocumentKey, Value};
use settings_sync_tests::both_stores;
use settings_sync_tests::fixtures::{key, value, write};
use tonic::Code;

both_stores!(
    a_first_write_is_applied_and_read_back,
    |server: settings_sync_tests::TestServer| async move {
        let mut client = server.client().await;
        let first = write(1, "tab-a", json!({"airports": ["SEA"]}));
        let reply = client.sync(&key("alice"), &first).await.unwrap();
        assert_eq!(reply.decision, Decision::Applied);
        assert_eq!(reply.document.state, first);
        assert!(reply.document.revision > 0);
        let stored = client.get(&key("alice")).await.unwrap().unwrap();
        assert_eq!(stored, reply.document);
    }
);

both_stores!(
    a_write_with_a_smaller_stamp_is_stale_and_changes_nothing,
    |server: settings_sync_tests::TestServer| async move {
        let mut client = server.client().await;
        let newer = write(5, "tab-a", json!({"n": 2}));
        let stored = client.sync(&key("alice"), &newer).await.unwrap().document;
        for older in [
            write(4, "tab-z", json!({"n": 1})),
            write(5, "tab-0", json!({"n": 1})),
        ] {
            let reply = client.sync(&key("alice"), &older).await.unwrap();
            assert_eq!(reply.decision, Decision::Stale);
            assert_eq!(
                reply.document, stored,
                "a stale reply carries the stored document"
            );
        }
    }
);

both_stores!(
    equal_clocks_are_ordered_by_writer,
    |server: settings_sync_tests::TestServer| async move {
        let mut client = server.client().await;
        client
            .sync(&key("alice"), &write(3, "tab-b", json!({"n": 1})))
            .await
            .unwrap();
        let larger = write(3, "tab-c", json!({"n": 2}));
        let reply = client.sync(&key("alice"), &larger).await.unwrap();
        assert_eq!(reply.decision, Decision::Applied);
        assert_eq!(reply.document.state, larger);
    }
);

both_stores!(
    replaying_a_write_is_unchanged_and_keeps_the_revision,
    |server: settings_sync_tests::TestServer| async move {
        let mut client = server.client().await;
        let w = write(1, "tab-a", json!({"theme": "dark"}));
        let first = client.sync(&key("alice"), &w).await.unwrap().document;
        let replay = client.sync(&key("alice"), &w).await.unwrap();
        assert_eq!(replay.decision, Decision::Unchanged);
        assert_eq!(replay.document, first);
    }
);

both_stores!(
    the_same_stamp_with_other_content_is_rejected,
    |server: settings_sync_tests::TestServer| async move {
        let mut client = server.client().await;
        let stored = client
            .sync(&key("alice"), &write(2, "tab-a", json!({"n": 1})))
            .await
            .unwrap()
            .document;
        let error = client
            .sync(&key("alice"), &write(2, "tab-a", json!({"n": 9})))
            .await
            .unwrap_err();
        assert_eq!(error.code(), Some(Code::FailedPrecondition), "{error}");
        assert_eq!(client.get(&key("alice")).await.unwrap().unwrap(), stored);
    }
);

both_stores!(
    a_clock_jump_beyond_the_limit_is_rejected,
    |server: settings_sync_tests::TestServer| async move {
        let mut client = server.client().await;
        // Default limit: 1,000,000 past the stored clock (0 for a new document).
        let error = client
            .sync(&key("new"), &write(1_000_001, "tab-a", json!({})))
            .await
            .unwrap_err();
        assert_eq!(error.code(), Some(Code::FailedPrecondition), "{error}");
        assert_eq!(
            client.get(&key("new")).await.unwrap(),
            None,
            "nothing was created"
        );

        let stored = client
            .sync(&key("alice"), &write(10, "tab-a", json!({"n": 1})))
            .await
            .unwrap()
            .document;
        let error = client
            .sync(&key("alice"), &write(1_000_011, "tab-a", json!({"n": 2})))
            .await
            .unwrap_err();
        assert_eq!(error.code(), Some(Code::FailedPrecondition), "{error}");
        assert_eq!(client.get(&key("alice")).await.unwrap().unwrap(), stored);

        let reply = client
            .sync(&key("alice"), &write(1_000_010, "tab-a", json!({"n": 3})))
            .await
            .unwrap();
        assert_eq!(
            reply.decision,
            Decision::Applied,
            "a jump of exactly the limit is allowed"
        );
    }
);

both_stores!(
    a_tombstone_merges_like_any_write_and_hides_from_queries,
    |server: settings_sync_tests::TestServer| async move {
        let mut client = server.client().await;
        client
            .sync(
                &key("alice"),
                &write(1, "tab-a", json!({"airports": ["SEA"]})),
            )
            .await
            .unwrap();
        let deleted = client
            .sync(&key("alice"), &write(2, "tab-a", serde_json::Value::Null))
            .await
            .unwrap();
        assert_eq!(deleted.decision, Decision::Applied);
        assert!(deleted.document.state.value.is_tombstone());
        assert!(
            client
                .get(&key("alice"))
                .await
                .unwrap()
                .unwrap()
                .state
                .value
                .is_tombstone()
        );
        let page = client.query("acme", "alerts", "{}", 0, None).await.unwrap();
        assert!(
            page.documents.is_empty(),
            "a deleted document is not listed"
        );

        let stale = client
            .sync(
                &key("alice"),
                &write(1, "tab-b", json!({"airports": ["LAX"]})),
            )
            .await
            .unwrap();
        assert_eq!(
            stale.decision,
            Decision::Stale,
            "an older write does not resurrect the document"
        );
        let revived = client
            .sync(
                &key("alice"),
                &write(3, "tab-b", json!({"airports": ["LAX"]})),
            )
            .await
            .unwrap();
        assert_eq!(revived.decision, Decision::Applied);
    }
);

both_stores!(
    revisions_grow_with_every_applied_write,
    |server: settings_sync_tests::TestServer| async move {
        let mut client = server.client().await;
        let mut last = 0;
        for (i, owner) in ["a", "b", "a", "c", "b"].iter().enumerate() {
            let reply = client
                .sync(&key(owner), &write(i as u64 + 1, "tab", json!({"i": i})))
                .await
                .unwrap();
            assert!(
                reply.document.revision > last,
                "revision {} after {last}",
                reply.document.revision
            );
            last = reply.document.revision;
        }
    }
);

both_stores!(
    batch_get_answers_in_request_order_and_names_the_missing,
    |server: settings_sync_tests::TestServer| async move {
        let mut client = server.client().await;
        for owner in ["a", "b", "c"] {
            client
                .sync(&key(owner), &write(1, "tab", json!({"owner": owner})))
                .await
                .unwrap();
        }
        let keys = [key("c"), key("nobody"), key("a")];
        let found = client.batch_get(&keys).await.unwrap();
        let owners: Vec<_> = found.iter().map(|d| d.key.owner.as_str()).collect();
        assert_eq!(owners, ["c", "a"]);
        let raw = client
            .raw()
            .batch_get(settings_sync_proto::v1::BatchGetRequest {
                keys: keys.iter().map(Into::into).collect(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(raw.missing, vec![(&key("nobody")).into()]);
    }
);

both_stores!(
    query_finds_documents_containing_a_fragment_page_by_page,
    |server: settings_sync_tests::TestServer| async move {
        let mut client = server.client().await;
        for i in 0..7 {
            let airports = if i % 2 == 0 {
                json!(["SEA", "LAX"])
            } else {
                json!(["JFK"])
            };
            let w = write(
                1,
                "tab",
                json!({"alerts": {"airports": airports, "email": true}, "n": i}),
            );
            client
                .sync(&key(&format!("dispatcher-{i}")), &w)
                .await
                .unwrap();
        }
        let other_name = DocumentKey::parse("acme", "dispatcher-0", "ui").unwrap();
        client
            .sync(
                &other_name,
                &write(1, "tab", json!({"alerts": {"airports": ["SEA"]}})),
            )
            .await
            .unwrap();

        let filter = r#"{"alerts":{"airports":["SEA"]}}"#;
        let (mut owners, mut token, mut pages) = (Vec::new(), None, 0);
        loop {
            let page = client
                .query("acme", "alerts", filter, 2, token)
                .await
                .unwrap();
            owners.extend(page.documents.iter().map(|d| d.key.owner.to_string()));
            pages += 1;
            token = page.next_page_token;
            if token.is_none() {
                break;
            }
        }
        assert_eq!(
            owners,
            [
                "dispatcher-0",
                "dispatcher-2",
                "dispatcher-4",
                "dispatcher-6"
            ]
        );
        assert_eq!(pages, 2);
        let none = client
            .query(
                "acme",
                "alerts",
                r#"{"alerts":{"airports":["BOS"]}}"#,
                0,
                None,
            )
            .await
            .unwrap();
        assert!(none.documents.is_empty());
        let other_tenant = client
            .query("globex", "alerts", "{}", 0, None)
            .await
            .unwrap();
        assert!(other_tenant.documents.is_empty());
    }
);

both_stores!(
    a_local_document_converges_and_never_flickers,
    |server: settings_sync_tests::TestServer| async move {
        let mut client = server.client().await;
        let mut tab_a = LocalDocument::new(key("alice"));
        let mut tab_b = LocalDocument::new(key("alice"));
        let click_1 = tab_a.edit(value(json!({"n": 1})));
        let click_2 = tab_a.edit(value(json!({"n": 2})));
        // The second click reaches the backend first; the first one arrives late.
        assert_eq!(
            client.sync(&key("alice"), &click_2).await.unwrap().decision,
            Decision::Applied
        );
        let late = client.sync(&key("alice"), &click_1).await.unwrap();
        assert_eq!(late.decision, Decision::Stale);
        assert!(
            !tab_a.observe(&late.document),
            "the late reply does not undo the second click"
        );
        assert_eq!(tab_a.value(), Some(&value(json!({"n": 2}))));

        tab_b.sync(&mut client).await.unwrap();
        assert_eq!(tab_b.value(), tab_a.value());
        tab_b.edit(Value::TOMBSTONE);
        assert_eq!(
            tab_b.sync(&mut client).await.unwrap(),
            Some(Decision::Applied)
        );
        tab_a.sync(&mut client).await.unwrap();
        assert_eq!(tab_a.value(), Some(&Value::TOMBSTONE));
    }
);
