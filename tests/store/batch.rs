//! Group commit on SQLite, through the store's writer task: while another connection holds the
//! write lock, writes queue up and then commit together. A write that fails (a duplicate, a
//! missing organization) gets its error; the others in its batch are answered and stored, and
//! the use limit stays exact.

use super::*;
use sqlx::Connection;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failing_write_does_not_fail_its_batch() {
    let fx = Fx::sqlite().await;
    let s = fx.store.clone();
    let a = seed_org(&s, "acme").await;
    let limited = Credential {
        max_uses: Some(3),
        ..cred(a.id, Kind::Api, None)
    };
    insert(&s, &limited).await;

    // Hold the write lock from another connection, so the writer waits and the rest queue.
    let mut other = sqlx::SqliteConnection::connect(&fx.url).await.unwrap();
    sqlx::query("BEGIN IMMEDIATE").execute(&mut other).await.unwrap();
    let first = {
        let s = s.clone();
        tokio::spawn(async move { s.append_event(&ev(a.id, a.id, "Noted", json!({}))).await })
    };
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;

    let good = cred(a.id, Kind::Api, None);
    let dup = Credential {
        id: Uuid::now_v7(),
        ..good.clone()
    };
    let orphan = cred(Uuid::now_v7(), Kind::Api, None);
    let mut inserts = vec![];
    for c in [good.clone(), dup.clone(), orphan.clone()] {
        let s = s.clone();
        inserts.push(tokio::spawn(async move {
            s.insert_credential(&c, &ev(c.org_id, c.id, "KeyIssued", json!({})))
                .await
        }));
    }
    let mut uses = vec![];
    for _ in 0..8 {
        let s = s.clone();
        let e = ev(a.id, limited.id, "KeyUsed", json!({"used_count": null}));
        uses.push(tokio::spawn(async move {
            s.consume_use(a.id, limited.id, t0(), &e, &[]).await
        }));
    }
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    sqlx::query("COMMIT").execute(&mut other).await.unwrap();

    first.await.unwrap().unwrap();
    let mut results = vec![];
    for t in inserts {
        results.push(t.await.unwrap());
    }
    // The same digest twice: one of the two is stored (whichever ran first), the other is a
    // Conflict; the orphan is refused; nothing else is affected.
    let stored: Vec<bool> = results[..2].iter().map(|r| r.is_ok()).collect();
    assert_eq!(stored.iter().filter(|x| **x).count(), 1, "{results:?}");
    let loser = if stored[0] { &results[1] } else { &results[0] };
    assert!(matches!(loser, Err(Error::Conflict(_))), "{loser:?}");
    assert!(results[2].is_err(), "{:?}", results[2]);
    let (winner, lost) = if stored[0] { (&good, &dup) } else { (&dup, &good) };
    assert!(s.get_credential(a.id, winner.id).await.unwrap().is_some());
    assert!(s.get_credential(a.id, lost.id).await.unwrap().is_none());
    assert!(s.events_of(a.id, lost.id).await.unwrap().is_empty());
    assert_eq!(versions(&s.events_of(a.id, winner.id).await.unwrap()), vec![1]);
    assert!(s.find_credential(orphan.id).await.unwrap().is_none());

    let mut counts = vec![];
    for t in uses {
        match t.await.unwrap().unwrap() {
            ConsumeOutcome::Used(c, _) => counts.push(c.used_count),
            ConsumeOutcome::Refused(c) => assert_eq!(c.unwrap().used_count, 3),
        }
    }
    counts.sort();
    assert_eq!(counts, vec![1, 2, 3]);
    assert_eq!(s.get_credential(a.id, limited.id).await.unwrap().unwrap().used_count, 3);
    assert_eq!(
        versions(&s.events_of(a.id, limited.id).await.unwrap()),
        vec![1, 2, 3, 4]
    );
}
