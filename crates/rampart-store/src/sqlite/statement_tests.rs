//! How the store's connections prepare statements: cached statements stay prepared when
//! rebound, and queries by account on the queue use its partial index.

use rusqlite::StatementStatus;

fn connection() -> (tempfile::TempDir, rusqlite::Connection) {
    let dir = tempfile::tempdir().unwrap();
    let mut conn = super::open_connection(&dir.path().join("db"), None).unwrap();
    super::schema::migrate(&mut conn).unwrap();
    (dir, conn)
}

#[test]
fn cached_statements_are_not_prepared_again_when_rebound() {
    let (_dir, conn) = connection();
    // Shapes that SQLite would otherwise re-prepare on each new binding: a range with GROUP
    // BY/ORDER BY, a LEFT JOIN, an ORDER BY on an equality lookup.
    for sql in [
        "SELECT kind, sum(count) FROM account_signals WHERE account = ?1 AND at >= ?2 GROUP BY kind ORDER BY kind",
        "SELECT b.size, b.codec, coalesce(b.data, d.data) FROM blobs b LEFT JOIN blob_bodies d ON d.id = b.body WHERE b.id = ?1 AND ?2 >= 0",
        "SELECT key, value FROM quota_overrides WHERE target = ?1 AND ?2 >= 0 ORDER BY key",
    ] {
        for i in 0..3_i64 {
            let mut stmt = conn.prepare_cached(sql).unwrap();
            let mut rows = stmt.query(rusqlite::params![format!("a{i}"), i]).unwrap();
            while rows.next().unwrap().is_some() {}
            drop(rows);
            assert_eq!(stmt.get_status(StatementStatus::RePrepare), 0, "{sql}");
        }
    }
}

#[test]
fn queue_queries_by_account_use_the_partial_index() {
    let (_dir, conn) = connection();
    for sql in [
        "UPDATE queue SET held = 1 WHERE account = ?1 AND account != '' AND NOT held",
        "SELECT id FROM queue WHERE account = ?1 AND account != '' AND held ORDER BY created",
        "SELECT count(*) FROM queue WHERE account = ?1 AND account != '' AND held",
    ] {
        let plan: Vec<String> = conn
            .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
            .unwrap()
            .query_map(["x"], |r| r.get(3))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert!(plan[0].contains("USING INDEX queue_account"), "{sql}: {plan:?}");
    }
}

/// Deleting a parent row looks up its children through the foreign key: every child column
/// must lead an index (or be the rowid), or each delete scans the child table — as releasing
/// a delivered message's body once scanned the whole queue.
#[test]
fn every_foreign_key_leads_an_index() {
    let (_dir, conn) = connection();
    let unindexed: Vec<String> = conn
        .prepare(
            "SELECT m.name || '.' || f.\"from\" FROM sqlite_master m, pragma_foreign_key_list(m.name) f \
             WHERE m.type = 'table' \
               AND NOT EXISTS (SELECT 1 FROM pragma_index_list(m.name) il, pragma_index_info(il.name) ii \
                               WHERE ii.seqno = 0 AND ii.name = f.\"from\") \
               AND NOT EXISTS (SELECT 1 FROM pragma_table_info(m.name) c \
                               WHERE c.name = f.\"from\" AND c.pk = 1 AND c.type = 'INTEGER')",
        )
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert!(unindexed.is_empty(), "foreign keys without an index: {unindexed:?}");
}

#[test]
fn releasing_a_body_does_not_scan_the_queue() {
    let (_dir, conn) = connection();
    conn.execute_batch(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 200) \
         INSERT INTO blobs (id, size, refcount) SELECT 'b' || i, 1, 1 FROM n; \
         INSERT INTO queue (id, blob_id, prefix, sender, size, smtputf8, is_dsn, created) \
         SELECT 'q' || substr(id, 2), id, x'', '', 1, 0, 0, 0 FROM blobs WHERE id != 'b1';",
    )
    .unwrap();
    let mut stmt = conn.prepare("DELETE FROM blobs WHERE id = ?1").unwrap();
    stmt.execute(["b1"]).unwrap();
    assert_eq!(stmt.get_status(StatementStatus::FullscanStep), 0);
}

#[test]
fn a_domains_dkim_keys_are_read_through_the_index() {
    let (_dir, conn) = connection();
    let plan: Vec<String> = conn
        .prepare(&format!("EXPLAIN QUERY PLAN {}", super::senderauth::DKIM_KEYS_OF))
        .unwrap()
        .query_map(["example.test"], |r| r.get(3))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert!(plan.iter().any(|p| p.contains("USING INDEX")) && !plan.iter().any(|p| p.starts_with("SCAN dkim_keys")), "{plan:?}");
}
