"""schemathesis hooks for scripts/schemathesis.sh.

JSON Schema cannot state rules that depend on the clock, on other members or on what exists in the
database, and /openapi.json states those in its descriptions instead: an `expires_at` in the future
(not past 9999-12-31 in UTC), a `not_before` before it, a schedule's `from` before its `until`, and
`owner` / `allowed_users` naming users of the organization. This hook keeps the *positive* cases
(the ones schemathesis generates as valid) within those rules, so that its "schema-valid request
rejected" check judges what the schema can say. Negative cases are left exactly as generated, and
no check is turned off.
"""

from __future__ import annotations

import datetime as dt

import schemathesis

UTC = dt.timezone.utc
EARLIEST = dt.datetime(1970, 1, 1, tzinfo=UTC)
LATEST = dt.datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)


def _instant(value):
    """The instant an RFC 3339 string names, or None (also past the range Python holds)."""
    if not isinstance(value, str):
        return None
    try:
        return dt.datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00")).astimezone(UTC)
    except (ValueError, OverflowError):
        return None


def _in_range(value) -> bool:
    t = _instant(value)
    return t is not None and EARLIEST <= t <= LATEST


def _ahead(value: str) -> str:
    """The same date-time moved forward by whole 400-year cycles (which keep every calendar day),
    far enough to lie ahead of now, or back into range when it falls past 9999 in UTC."""
    year = int(value[:4])
    now = dt.datetime.now(UTC)
    while year < now.year + 1:
        year += 400
    moved = f"{year:04d}{value[4:]}"
    while not _in_range(moved) and year > 2400:
        year -= 400
        moved = f"{year:04d}{value[4:]}"
    if not _in_range(moved) or _instant(moved) <= now:
        return "2100-01-01T00:00:00Z"
    return moved


def _keep_keys_valid(body: dict) -> None:
    kind = body.get("kind") or "api"
    if body.get("owner") is not None:
        body["owner"] = None
    if body.get("allowed_users"):
        body["allowed_users"] = []
    expires = body.get("expires_at")
    if isinstance(expires, str):
        if kind == "temporary":
            # A temporary key may have expired already: only the range applies.
            if not _in_range(expires):
                body["expires_at"] = _ahead(expires)
        else:
            t = _instant(expires)
            if t is None or t <= dt.datetime.now(UTC) + dt.timedelta(days=1) or t > LATEST:
                body["expires_at"] = _ahead(expires)
    not_before = body.get("not_before")
    if isinstance(not_before, str):
        nb, exp = _instant(not_before), _instant(body.get("expires_at"))
        if not _in_range(not_before) or (exp is not None and nb >= exp):
            body["not_before"] = None
    subject = body.get("subject")
    if isinstance(subject, dict) and isinstance(subject.get("schedule"), dict):
        schedule = subject["schedule"]
        start, end = schedule.get("from"), schedule.get("until")
        if isinstance(start, str) and isinstance(end, str):
            key = lambda t: tuple(int(p) for p in t.split(":"))  # noqa: E731
            if key(start) > key(end):
                schedule["from"], schedule["until"] = end, start
            elif key(start) == key(end):
                subject["schedule"] = None


@schemathesis.hook
def map_case(context, case):
    meta = case.meta
    if meta is None or not meta.generation.mode.is_positive or not isinstance(case.body, dict):
        return case
    route = (case.method.upper(), case.operation.path)
    if route == ("POST", "/v1/keys"):
        _keep_keys_valid(case.body)
    elif route == ("POST", "/v1/locks") and case.body.get("owner") is not None:
        case.body["owner"] = None
    return case
