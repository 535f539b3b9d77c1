//! The merge is atomic: concurrent writers never lose the largest stamp.
//! The same check run over a planted read-then-write store must fail,
//! which shows the check can catch a non-atomic merge.

use std::time::{Duration, SystemTime};

use settings_sync::server::Application;
use settings_sync::store::{
    DocumentStore, FieldOutcome, Override, PostgresStore, QueryPage, QuerySpec, StoreError,
    SyncOutcome,
};
use settings_sync_client::Client;
use settings_sync_protocol::fields::FieldWrite;
use settings_sync_protocol::{Decision, Document, DocumentKey, Id, MergePolicy, Versioned, merge};
use settings_sync_tests::fixtures::{key, write};
use settings_sync_tests::server::serve_args;
use settings_sync_tests::{Backend, TestServer, postgres};

const WRITERS: u64 = 8;

/// Rounds of `WRITERS` concurrent syncs with distinct stamps to one
/// document. After each round the stored stamp must be the largest one
/// sent: every write was acknowledged, so a smaller one winning is a loss.
async fn hammer(client: &Client, rounds: u64) -> Result<(), String> {
    let doc = key("contended");
    for round in 0..rounds {
        let base = round * WRITERS + 1;
        let writes: Vec<Versioned> = (0..WRITERS)
            .map(|i| {
                write(
                    base + (i * 7 + round) % WRITERS,
                    &format!("w{i}"),
                    serde_json::json!({"round": round, "i": i}),
                )
            })
            .collect();
        let replies = futures::future::join_all(writes.iter().map(|w| {
            let mut client = client.clone();
            let doc = doc.clone();
            async move { client.sync(&doc, w).await }
        }))
        .await;
        for (w, reply) in writes.iter().zip(replies) {
            let reply = reply.map_err(|e| format!("round {round}: {e}"))?;
            if reply.decision == Decision::Applied && reply.document.state != *w {
                return Err(format!(
                    "round {round}: APPLIED reply does not carry the write"
                ));
            }
        }
        let largest = writes
            .iter()
            .max_by(|a, b| a.stamp.cmp(&b.stamp))
            .expect("writes");
        let mut reader = client.clone();
        let stored = reader
            .get(&doc)
            .await
            .map_err(|e| e.to_string())?
            .ok_or("document missing")?;
        if stored.state != *largest {
            return Err(format!(
                "round {round}: stored {} but {} was acknowledged",
                stored.state.stamp, largest.stamp
            ));
        }
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writers_never_lose_the_largest_stamp_in_postgres() {
    let server = TestServer::start_with(Backend::Postgres, &["--db-pool-size", "16"]).await;
    hammer(&server.client().await, 150).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writers_never_lose_the_largest_stamp_in_sqlite() {
    let server = TestServer::start_with(Backend::Sqlite, &["--db-pool-size", "8"]).await;
    hammer(&server.client().await, 150).await.unwrap();
}

/// A planted bug: the merge as read, decide, then write unconditionally.
struct ReadThenWriteStore {
    inner: PostgresStore,
}

impl DocumentStore for ReadThenWriteStore {
    async fn sync(
        &self,
        key: &DocumentKey,
        write: &Versioned,
        policy: MergePolicy,
    ) -> Result<SyncOutcome, StoreError> {
        let stored = self.inner.get(key).await?;
        let decision = merge(stored.as_ref().map(|d| &d.state), write, policy)?;
        if decision != Decision::Applied {
            let document = stored.ok_or_else(|| StoreError::internal(format!("{key} vanished")))?;
            return Ok(SyncOutcome { document, decision });
        }
        // The window a concurrent writer slips through.
        tokio::time::sleep(Duration::from_millis(2)).await;
        sqlx::query(
            "WITH rev AS (
                INSERT INTO tenant_revisions AS t (tenant, revision) VALUES ($1, 1)
                ON CONFLICT (tenant) DO UPDATE SET revision = t.revision + 1 RETURNING revision
             )
             INSERT INTO documents (tenant, owner, name, value, clock, writer, revision, updated_at)
             SELECT $1, $2, $3, $4::jsonb, $5, $6, rev.revision, now() FROM rev
             ON CONFLICT (tenant, owner, name) DO UPDATE
             SET value = EXCLUDED.value, clock = EXCLUDED.clock, writer = EXCLUDED.writer,
                 revision = EXCLUDED.revision, updated_at = EXCLUDED.updated_at",
        )
        .bind(key.tenant.as_str())
        .bind(key.owner.as_str())
        .bind(key.name.as_str())
        .bind(write.value.canonical())
        .bind(i64::from(write.stamp.clock))
        .bind(write.stamp.writer.as_str())
        .execute(self.inner.pool())
        .await?;
        let document = self
            .inner
            .get(key)
            .await?
            .ok_or_else(|| StoreError::internal(format!("{key} vanished")))?;
        Ok(SyncOutcome { document, decision })
    }

    async fn sync_fields(
        &self,
        key: &DocumentKey,
        write: &FieldWrite,
        policy: MergePolicy,
    ) -> Result<FieldOutcome, StoreError> {
        self.inner.sync_fields(key, write, policy).await
    }

    async fn get(&self, key: &DocumentKey) -> Result<Option<Document>, StoreError> {
        self.inner.get(key).await
    }

    async fn batch_get(&self, keys: &[DocumentKey]) -> Result<Vec<Document>, StoreError> {
        self.inner.batch_get(keys).await
    }

    async fn query(&self, spec: &QuerySpec) -> Result<QueryPage, StoreError> {
        self.inner.query(spec).await
    }

    async fn changes_after(
        &self,
        tenant: &Id,
        after: i64,
        limit: usize,
    ) -> Result<Vec<Document>, StoreError> {
        self.inner.changes_after(tenant, after, limit).await
    }

    async fn latest_revision(&self, tenant: &Id) -> Result<i64, StoreError> {
        self.inner.latest_revision(tenant).await
    }

    async fn compact(&self, older_than: SystemTime) -> Result<u64, StoreError> {
        self.inner.compact(older_than).await
    }

    async fn list_overrides(
        &self,
        key: &DocumentKey,
        before: Option<i64>,
        limit: usize,
    ) -> Result<Vec<Override>, StoreError> {
        self.inner.list_overrides(key, before, limit).await
    }

    async fn prune_overrides(
        &self,
        older_than: SystemTime,
        max_per_document: usize,
    ) -> Result<u64, StoreError> {
        self.inner
            .prune_overrides(older_than, max_per_document)
            .await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.inner.ping().await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_check_catches_a_planted_non_atomic_merge() {
    let url = postgres::fresh_database().await;
    let inner = PostgresStore::connect_lazy(&url, 16).unwrap();
    inner.migrate().await.unwrap();
    let app = Application::with_store(ReadThenWriteStore { inner }, &serve_args(&url, &[]))
        .await
        .unwrap();
    let server = TestServer::serve(app, url, None);
    let outcome = hammer(&server.client().await, 150).await;
    let loss = outcome.expect_err("a read-then-write merge must lose an acknowledged write");
    println!("planted non-atomic merge caught: {loss}");
}
