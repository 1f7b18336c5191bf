//! In-process costs of the key engine's hot paths: generating a key, its keyed digest, the
//! constant-time comparison, the verify policy, schedules, and rebuilding a share key from its
//! events. Run with `cargo bench --bench core`; figures are in BENCHMARKS.md.

use chrono::{Duration, TimeZone, Utc};
use criterion::{BatchSize, Criterion, black_box, criterion_group, criterion_main};
use keygate::core::credential::{Credential, Kind, VerifyContext, verdict};
use keygate::core::event::Event;
use keygate::core::secret::{Purpose, SecretHasher, ct_eq, new_native_key, new_personal_key};
use keygate::core::share::{Schedule, fold};
use serde_json::json;
use uuid::Uuid;

fn credential(org: Uuid) -> Credential {
    let now = Utc::now();
    Credential {
        id: Uuid::new_v4(),
        org_id: org,
        kind: Kind::Api,
        owner_id: None,
        name: "bench".into(),
        prefix: "kg_bench".into(),
        hash: vec![7; 32],
        scopes: vec!["Organization.Read".into(), "Lock.Operate".into()],
        not_before: Some(now - Duration::hours(1)),
        expires_at: Some(now + Duration::hours(1)),
        max_uses: Some(10),
        used_count: 3,
        allowed_users: vec![Uuid::new_v4(), Uuid::new_v4()],
        subject: json!({}),
        metadata: json!({}),
        created_at: now,
        created_by: "bench".into(),
        updated_at: now,
        updated_by: "bench".into(),
        revoked_at: None,
        revoked_by: None,
    }
}

fn share_events(n: usize) -> Vec<Event> {
    let id = Uuid::new_v4();
    let at = Utc::now();
    let mut out = vec![Event {
        seq: 1,
        aggregate_type: "temp_key".into(),
        aggregate_id: id,
        version: 1,
        event_type: "TempKeyCreated".into(),
        data: json!({
            "tempKeyUuid": id, "lockId": 1, "lockUuid": Uuid::new_v4(), "accessMode": "public",
            "allowedUserIds": [], "validFrom": "2026-01-01T00:00:00.000Z", "validUntil": "2027-01-01T00:00:00.000Z",
            "maxUses": null, "description": "bench", "createdBy": "bench", "timestamp": "2026-01-01T00:00:00.000Z",
        }),
        actor: "bench".into(),
        at,
    }];
    for v in 2..=n as i64 {
        out.push(Event {
            seq: v,
            aggregate_type: "temp_key".into(),
            aggregate_id: id,
            version: v,
            event_type: "TempKeyUsed".into(),
            data: json!({"tempKeyUuid": id, "lockId": 1, "usedCount": v - 1, "timestamp": "2026-01-02T00:00:00.000Z"}),
            actor: "bench".into(),
            at,
        });
    }
    out
}

fn benches(c: &mut Criterion) {
    let hasher = SecretHasher::new(&[42u8; 32]).expect("hasher");
    c.bench_function("generate native key (256-bit, CSPRNG)", |b| {
        b.iter(|| new_native_key("kg"))
    });
    c.bench_function("generate personal key (prefix.secret)", |b| b.iter(new_personal_key));
    let key = new_native_key("kg");
    c.bench_function("HMAC-SHA256 digest of a key", |b| {
        b.iter(|| hasher.digest(Purpose::Credential, black_box(&key.full)))
    });
    let d1 = hasher.digest(Purpose::Credential, &key.full);
    let d2 = hasher.digest(Purpose::Credential, "another");
    c.bench_function("constant-time compare of two digests", |b| {
        b.iter(|| ct_eq(black_box(&d1), black_box(&d2)))
    });
    let org = Uuid::new_v4();
    let cred = credential(org);
    let ctx = VerifyContext {
        org_id: org,
        scope: Some("Lock.Operate".into()),
        user: cred.allowed_users.first().copied(),
    };
    let now = Utc::now();
    c.bench_function("verdict (tenancy, whitelist, scope, window, uses)", |b| {
        b.iter(|| verdict(Some(black_box(&cred)), black_box(&ctx), now))
    });
    let sch = Schedule::parse(
        &json!({"days": ["mon", "tue", "wed"], "from": "08:00", "until": "17:00", "timeZone": "Europe/Oslo"}),
    )
    .expect("schedule");
    let t = Utc.with_ymd_and_hms(2026, 11, 23, 10, 0, 0).single().expect("time");
    c.bench_function("schedule check in a time zone", |b| b.iter(|| sch.allows(black_box(t))));
    let events = share_events(100);
    c.bench_function("fold a share key from 100 events", |b| {
        b.iter_batched(|| events.clone(), |e| fold(&e), BatchSize::SmallInput)
    });
}

fn passwords(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let mut g = c.benchmark_group("argon2id");
    g.sample_size(10);
    g.bench_function("hash a password", |b| {
        b.iter(|| rt.block_on(keygate::service::password::hash("correct horse battery staple".into())))
    });
    let phc = rt
        .block_on(keygate::service::password::hash("correct horse battery staple".into()))
        .expect("hash");
    g.bench_function("verify a password", |b| {
        b.iter(|| {
            rt.block_on(keygate::service::password::verify(
                "correct horse battery staple".into(),
                Some(phc.clone()),
            ))
        })
    });
    g.finish();
}

criterion_group!(core, benches, passwords);
criterion_main!(core);
