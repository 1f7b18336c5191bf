//! SmartphoneKey share keys ("temp keys") are event-sourced: this fold rebuilds a key's state
//! from its events alone. The projection the service queries (a credentials row) must always
//! equal what this fold gives.

use super::credential::Credential;
use super::event::Event;
use chrono::{DateTime, Utc};
use serde_json::Value;
use uuid::Uuid;

pub const TEMP_KEY_CREATED: &str = "TempKeyCreated";
pub const TEMP_KEY_UPDATED: &str = "TempKeyUpdated";
pub const TEMP_KEY_DELETED: &str = "TempKeyDeleted";
pub const TEMP_KEY_USED: &str = "TempKeyUsed";
pub const LOCK_OPEN_REQUESTED: &str = "LockOpenRequested";
pub const AGGREGATE: &str = "temp_key";

pub const PUBLIC: &str = "public";
pub const USER_WHITELIST: &str = "user-whitelist";

/// The members of each event's `data` on the SmartphoneKey surface, as SmartphoneKey's
/// event-schemas.json closes them (`additionalProperties: false`). Stored events keep more
/// facts (a description, a schedule, a collective key's doors); [`project`] renders a stored
/// event onto these members.
pub const TEMP_KEY_CREATED_FIELDS: &[&str] = &[
    "tempKeyUuid",
    "lockId",
    "lockUuid",
    "accessMode",
    "allowedUserIds",
    "validFrom",
    "validUntil",
    "maxUses",
    "createdBy",
    "timestamp",
];
pub const TEMP_KEY_UPDATED_FIELDS: &[&str] =
    &["tempKeyUuid", "lockId", "lockUuid", "changes", "updatedBy", "timestamp"];
/// `TempKeyUpdated.changes` is closed too.
pub const TEMP_KEY_CHANGES_FIELDS: &[&str] = &["accessMode", "allowedUserIds", "maxUses", "validFrom", "validUntil"];
pub const TEMP_KEY_DELETED_FIELDS: &[&str] = &["tempKeyUuid", "lockId", "lockUuid", "deletedBy", "timestamp"];
pub const TEMP_KEY_USED_FIELDS: &[&str] = &["tempKeyUuid", "lockId", "lockUuid", "userId", "usedCount", "timestamp"];
pub const LOCK_OPEN_REQUESTED_FIELDS: &[&str] = &["lockId", "uuid", "timestamp", "reason", "requestId"];

/// Members that name who acted.
const ACTOR_FIELDS: [&str; 3] = ["createdBy", "updatedBy", "deletedBy"];

/// An actor as the SmartphoneKey surface shows it: `user:<uuid>` or `api_key:<uuid>`. Stored
/// share-key events name a user by the bare UUID (older ones, and every one so far); they are
/// not rewritten, the surface maps them here.
pub fn surface_actor(stored: &str) -> String {
    match Uuid::parse_str(stored) {
        Ok(u) => super::event::actor("user", u),
        Err(_) => stored.to_string(),
    }
}

/// A stored share-key or lock event as the SmartphoneKey surface shows it: only the members of
/// the event's closed shape (absent ones stay absent), actors as [`surface_actor`], and
/// LockOpenRequested's `uuid` from the stored `lockUuid`. Unknown types render as `{}`.
pub fn project(event_type: &str, data: &Value) -> Value {
    let fields = match event_type {
        TEMP_KEY_CREATED => TEMP_KEY_CREATED_FIELDS,
        TEMP_KEY_UPDATED => TEMP_KEY_UPDATED_FIELDS,
        TEMP_KEY_DELETED => TEMP_KEY_DELETED_FIELDS,
        TEMP_KEY_USED => TEMP_KEY_USED_FIELDS,
        LOCK_OPEN_REQUESTED => LOCK_OPEN_REQUESTED_FIELDS,
        _ => &[],
    };
    let mut out = serde_json::Map::new();
    for &f in fields {
        let stored = match (event_type, f) {
            (LOCK_OPEN_REQUESTED, "uuid") => data.get("uuid").or_else(|| data.get("lockUuid")),
            _ => data.get(f),
        };
        let Some(v) = stored else { continue };
        let v = match (f, v) {
            ("changes", Value::Object(m)) => Value::Object(
                m.iter()
                    .filter(|(k, _)| TEMP_KEY_CHANGES_FIELDS.contains(&k.as_str()))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
            ),
            ("changes", _) => Value::Object(serde_json::Map::new()),
            (f, Value::String(a)) if ACTOR_FIELDS.contains(&f) => Value::String(surface_actor(a)),
            // Optional members are absent rather than null, except maxUses (number or null).
            (f, Value::Null) if f != "maxUses" => continue,
            _ => v.clone(),
        };
        out.insert(f.to_string(), v);
    }
    Value::Object(out)
}

/// A share key's state: a per-lock temp key has a lock; a collective key has doors instead.
#[derive(Debug, Clone, PartialEq)]
pub struct ShareState {
    pub uuid: Uuid,
    pub lock_id: Option<i64>,
    pub lock_uuid: Option<Uuid>,
    /// A collective key's doors (`[{lockId, lockUuid, label, accessMethod}]`), or null.
    pub doors: Value,
    pub access_mode: String,
    pub allowed_user_ids: Vec<Uuid>,
    pub valid_from: DateTime<Utc>,
    pub valid_until: DateTime<Utc>,
    pub max_uses: Option<i64>,
    pub used_count: i64,
    pub description: Option<String>,
    /// The weekly schedule as JSON (see [`Schedule`]), or null.
    pub schedule: Value,
    pub deleted: bool,
}

fn time(v: &Value) -> Option<DateTime<Utc>> {
    v.as_str()
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .map(|d| d.with_timezone(&Utc))
}

fn uuid(v: Option<&Value>) -> Option<Uuid> {
    v.and_then(Value::as_str).and_then(|s| Uuid::parse_str(s).ok())
}

fn uuids(v: &Value) -> Option<Vec<Uuid>> {
    v.as_array()?
        .iter()
        .map(|u| u.as_str().and_then(|s| Uuid::parse_str(s).ok()))
        .collect()
}

/// Apply `changes` (the members of a create or an update) to a state.
fn apply(s: &mut ShareState, d: &Value) {
    if let Some(m) = d.get("accessMode").and_then(Value::as_str) {
        s.access_mode = m.to_string();
    }
    if let Some(u) = d.get("allowedUserIds").and_then(uuids) {
        s.allowed_user_ids = u;
    }
    if let Some(t) = d.get("validFrom").and_then(time) {
        s.valid_from = t;
    }
    if let Some(t) = d.get("validUntil").and_then(time) {
        s.valid_until = t;
    }
    if let Some(m) = d.get("maxUses") {
        s.max_uses = m.as_i64();
    }
    if let Some(desc) = d.get("description") {
        s.description = desc.as_str().map(str::to_string);
    }
    if let Some(sch) = d.get("schedule") {
        s.schedule = sch.clone();
    }
}

/// Rebuild a share key from its events (oldest first). `None` if they do not start with a creation.
pub fn fold(events: &[Event]) -> Option<ShareState> {
    let mut it = events.iter();
    let first = it.next()?;
    if first.event_type != TEMP_KEY_CREATED {
        return None;
    }
    let d = &first.data;
    let doors = d.get("doors").filter(|v| v.is_array()).cloned().unwrap_or(Value::Null);
    let lock_id = d.get("lockId").and_then(Value::as_i64);
    if lock_id.is_none() && doors.is_null() {
        return None;
    }
    let mut s = ShareState {
        uuid: uuid(d.get("tempKeyUuid"))?,
        lock_id,
        lock_uuid: uuid(d.get("lockUuid")),
        doors,
        access_mode: String::new(),
        allowed_user_ids: vec![],
        valid_from: time(d.get("validFrom")?)?,
        valid_until: time(d.get("validUntil")?)?,
        max_uses: None,
        used_count: 0,
        description: None,
        schedule: Value::Null,
        deleted: false,
    };
    apply(&mut s, d);
    for e in it {
        match e.event_type.as_str() {
            TEMP_KEY_UPDATED => {
                if let Some(c) = e.data.get("changes") {
                    apply(&mut s, c);
                }
            }
            TEMP_KEY_USED => {
                s.used_count = e
                    .data
                    .get("usedCount")
                    .and_then(Value::as_i64)
                    .unwrap_or(s.used_count + 1);
            }
            TEMP_KEY_DELETED => s.deleted = true,
            _ => {}
        }
    }
    Some(s)
}

/// Is this share key a collective key (one key over doors of several locks)?
pub fn is_collective(c: &Credential) -> bool {
    c.subject.get("collective").and_then(Value::as_bool) == Some(true)
}

impl ShareState {
    /// The state a projection row holds.
    pub fn from_credential(c: &Credential) -> Option<ShareState> {
        let sub = &c.subject;
        let doors = sub
            .get("doors")
            .filter(|v| v.is_array())
            .cloned()
            .unwrap_or(Value::Null);
        let lock_id = sub.get("lock_id").and_then(Value::as_i64);
        if lock_id.is_none() && doors.is_null() {
            return None;
        }
        Some(ShareState {
            uuid: c.id,
            lock_id,
            lock_uuid: uuid(sub.get("lock_uuid")),
            doors,
            access_mode: sub.get("access_mode").and_then(Value::as_str)?.to_string(),
            allowed_user_ids: sub.get("allowed_user_ids").and_then(uuids).unwrap_or_default(),
            valid_from: c.not_before?,
            valid_until: c.expires_at?,
            max_uses: c.max_uses,
            used_count: c.used_count,
            description: c
                .metadata
                .get("description")
                .and_then(Value::as_str)
                .map(str::to_string),
            schedule: sub.get("schedule").cloned().unwrap_or(Value::Null),
            deleted: c.revoked_at.is_some(),
        })
    }
}

/// A weekly schedule on a share key (an extension beyond SmartphoneKey, as Tedee and Nuki
/// offer): the weekdays it works on and a daily window, in a time zone.
#[derive(Debug, Clone, PartialEq)]
pub struct Schedule {
    /// Bit 0 = Monday ... bit 6 = Sunday.
    pub days: u8,
    pub from: chrono::NaiveTime,
    pub until: chrono::NaiveTime,
    pub tz: chrono_tz::Tz,
}

const DAY_NAMES: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
const FULL_DAY_NAMES: [&str; 7] = [
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
    "sunday",
];

impl Schedule {
    /// Parse `{"days": ["mon", ...], "from": "HH:MM", "until": "HH:MM", "timeZone": "Area/City"}`.
    /// Errors are (field, message).
    pub fn parse(v: &Value) -> Result<Schedule, (String, String)> {
        let bad = |f: &str, m: &str| (format!("schedule.{f}"), m.to_string());
        let obj = v
            .as_object()
            .ok_or_else(|| ("schedule".to_string(), "must be an object".to_string()))?;
        let days_v = obj
            .get("days")
            .and_then(Value::as_array)
            .ok_or_else(|| bad("days", "must be a list of weekdays"))?;
        let mut days = 0u8;
        for d in days_v {
            let i = d
                .as_str()
                .and_then(|s| {
                    (0..7).find(|&i| s.eq_ignore_ascii_case(DAY_NAMES[i]) || s.eq_ignore_ascii_case(FULL_DAY_NAMES[i]))
                })
                .ok_or_else(|| bad("days", "weekdays are mon, tue, wed, thu, fri, sat, sun"))?;
            days |= 1 << i;
        }
        if days == 0 {
            return Err(bad("days", "must name at least one weekday"));
        }
        let time = |f: &str| -> Result<chrono::NaiveTime, (String, String)> {
            obj.get(f)
                .and_then(Value::as_str)
                .and_then(|s| chrono::NaiveTime::parse_from_str(s, "%H:%M").ok())
                .ok_or_else(|| bad(f, "must be a time of day such as 08:30"))
        };
        let (from, until) = (time("from")?, time("until")?);
        if from >= until {
            return Err(bad("until", "must be after from"));
        }
        let tz = obj
            .get("timeZone")
            .and_then(Value::as_str)
            .and_then(|s| s.parse::<chrono_tz::Tz>().ok())
            .ok_or_else(|| bad("timeZone", "must be an IANA time zone such as Europe/Oslo"))?;
        Ok(Schedule { days, from, until, tz })
    }

    pub fn to_json(&self) -> Value {
        let days: Vec<&str> = (0..7)
            .filter(|i| self.days & (1 << i) != 0)
            .map(|i| DAY_NAMES[i])
            .collect();
        serde_json::json!({
            "days": days,
            "from": self.from.format("%H:%M").to_string(),
            "until": self.until.format("%H:%M").to_string(),
            "timeZone": self.tz.name(),
        })
    }

    /// Does the schedule admit `now`?
    pub fn allows(&self, now: DateTime<Utc>) -> bool {
        use chrono::{Datelike, Timelike};
        let local = now.with_timezone(&self.tz);
        let day = local.weekday().num_days_from_monday();
        let t = chrono::NaiveTime::from_hms_opt(local.hour(), local.minute(), local.second()).unwrap_or_default();
        self.days & (1 << day) != 0 && t >= self.from && t < self.until
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn schedules_admit_their_days_and_hours_in_their_zone() {
        let s = Schedule::parse(&serde_json::json!({"days": ["mon", "Friday"], "from": "08:00", "until": "17:30", "timeZone": "Europe/Oslo"})).unwrap();
        // Monday 2026-11-23 09:00 in Oslo is 08:00 UTC.
        assert!(s.allows(Utc.with_ymd_and_hms(2026, 11, 23, 8, 0, 0).unwrap()));
        // 07:59 Oslo time: too early.
        assert!(!s.allows(Utc.with_ymd_and_hms(2026, 11, 23, 6, 59, 0).unwrap()));
        // 17:30 Oslo time: the window has closed.
        assert!(!s.allows(Utc.with_ymd_and_hms(2026, 11, 23, 16, 30, 0).unwrap()));
        // Tuesday: not a scheduled day.
        assert!(!s.allows(Utc.with_ymd_and_hms(2026, 11, 24, 10, 0, 0).unwrap()));
        assert_eq!(Schedule::parse(&s.to_json()).unwrap(), s);
    }

    #[test]
    fn bad_schedules_name_their_field() {
        let f = |v: Value| Schedule::parse(&v).unwrap_err().0;
        assert_eq!(
            f(serde_json::json!({"days": [], "from": "08:00", "until": "09:00", "timeZone": "UTC"})),
            "schedule.days"
        );
        assert_eq!(
            f(serde_json::json!({"days": ["someday"], "from": "08:00", "until": "09:00", "timeZone": "UTC"})),
            "schedule.days"
        );
        assert_eq!(
            f(serde_json::json!({"days": ["mon"], "from": "8am", "until": "09:00", "timeZone": "UTC"})),
            "schedule.from"
        );
        assert_eq!(
            f(serde_json::json!({"days": ["mon"], "from": "10:00", "until": "09:00", "timeZone": "UTC"})),
            "schedule.until"
        );
        assert_eq!(
            f(serde_json::json!({"days": ["mon"], "from": "08:00", "until": "09:00", "timeZone": "Mars/Base"})),
            "schedule.timeZone"
        );
        assert_eq!(f(serde_json::json!("always")), "schedule");
        // Not a prefix match, and no panic on text that is not ASCII.
        assert_eq!(
            f(serde_json::json!({"days": ["monkey"], "from": "08:00", "until": "09:00", "timeZone": "UTC"})),
            "schedule.days"
        );
        assert_eq!(
            f(serde_json::json!({"days": ["aaé"], "from": "08:00", "until": "09:00", "timeZone": "UTC"})),
            "schedule.days"
        );
    }

    #[test]
    fn events_render_onto_their_closed_shapes() {
        let keys = |v: &Value| {
            let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
            k.sort();
            k
        };
        let user = Uuid::new_v4();
        let created = serde_json::json!({
            "tempKeyUuid": "t", "lockId": 1, "lockUuid": "l", "accessMode": "public", "allowedUserIds": [],
            "validFrom": "a", "validUntil": "b", "maxUses": null, "description": "d", "schedule": {},
            "collective": false, "doors": [], "createdBy": user.to_string(), "timestamp": "c",
        });
        let v = project(TEMP_KEY_CREATED, &created);
        let mut want: Vec<String> = TEMP_KEY_CREATED_FIELDS.iter().map(|s| s.to_string()).collect();
        want.sort();
        assert_eq!(keys(&v), want);
        assert_eq!(v["createdBy"], format!("user:{user}"));
        assert_eq!(v["maxUses"], Value::Null);

        let updated = serde_json::json!({
            "tempKeyUuid": "t", "lockId": 1, "lockUuid": "l", "updatedBy": "api_key:k", "timestamp": "c",
            "changes": {"maxUses": 3, "description": "d", "schedule": null},
        });
        let v = project(TEMP_KEY_UPDATED, &updated);
        assert_eq!(v["changes"], serde_json::json!({"maxUses": 3}));
        assert_eq!(v["updatedBy"], "api_key:k");

        // A repair's delete carries a reason and no lockUuid: both stay out.
        let deleted = serde_json::json!({"tempKeyUuid": "t", "lockId": 1, "deletedBy": "system", "reason": "r", "timestamp": "c"});
        assert_eq!(
            keys(&project(TEMP_KEY_DELETED, &deleted)),
            ["deletedBy", "lockId", "tempKeyUuid", "timestamp"]
        );

        let used = serde_json::json!({"tempKeyUuid": "t", "lockId": 1, "lockUuid": "l", "doorId": 2, "usedCount": 4, "timestamp": "c"});
        assert_eq!(
            keys(&project(TEMP_KEY_USED, &used)),
            ["lockId", "lockUuid", "tempKeyUuid", "timestamp", "usedCount"]
        );

        let open = serde_json::json!({"lockId": 1, "lockUuid": "l", "tempKeyUuid": "t", "userId": null, "doorId": null, "via": "pin", "timestamp": "c"});
        let v = project(LOCK_OPEN_REQUESTED, &open);
        assert_eq!(v, serde_json::json!({"lockId": 1, "uuid": "l", "timestamp": "c"}));
        assert_eq!(project("KeyCreated", &open), serde_json::json!({}));
    }

    #[test]
    fn actors_are_prefixed_once() {
        let u = Uuid::new_v4();
        assert_eq!(surface_actor(&u.to_string()), format!("user:{u}"));
        assert_eq!(surface_actor(&format!("user:{u}")), format!("user:{u}"));
        assert_eq!(surface_actor(&format!("api_key:{u}")), format!("api_key:{u}"));
        assert_eq!(surface_actor("system"), "system");
    }

    proptest::proptest! {
        #[test]
        fn parse_never_panics(day in ".{0,12}", from in ".{0,8}", until in ".{0,8}", tz in ".{0,20}") {
            let v = serde_json::json!({"days": [day], "from": from, "until": until, "timeZone": tz});
            if let Ok(s) = Schedule::parse(&v) {
                proptest::prop_assert_eq!(Schedule::parse(&s.to_json()), Ok(s));
            }
        }
    }
}
