"""schemathesis hooks for scripts/schemathesis.sh.

Every check runs on every operation. One kind of failure is dropped: a
schema-valid request refused with 400 for a rule that depends on the
daemon's state rather than on the request's form, which no schema can
state. docs/api.md gives each rule:

- after: every job named must exist;
- cwd: the directory must exist;
- attempt: the job must have reached that attempt;
- stdin_upload: the upload must exist and be unclaimed;
- limits.KEY: a job may only lower its queue's and the daemon's limits,
  which the daemon's config sets;
- timezone: a schedule's time zone must be in the daemon's time zone
  database (the document gives its form only).

A schedule's job spec is refused under `job.` (`job.cwd`), as a batch's
under `jobs[N].`.

Long polls are bounded: a `wait` the document allows (up to 5 minutes) is
cut to 2 seconds, so that a job that will not end soon (delayed, say) does
not hold the run for minutes; likewise `follow=true` on a job's output
becomes a plain read (a job queued behind the run's thousands would hold
the request until the timeout). Following is tested in tests/cases/follow.rs
and cli_follow.rs. Values the document refuses are left alone. Schedules
are stored paused: a fuzzed schedule firing every second for the rest of
the run would fill the queue (firing is tested in tests/cases/schedules.rs).

Anything else refused, and any other check's failure, fails the run.
"""

import re

import schemathesis

# The field of a 400 that such a rule refused (`jobs[3].after` in a batch).
STATEFUL_FIELD = re.compile(
    r"^((jobs\[\d+\]|job)\.)?(after|cwd|attempt|stdin_upload|limits\.[a-z_]+)$|^timezone$"
)

# What the document allows for `wait` as a string (rules::wait).
WAIT = re.compile(r"^\s*([0-9]{1,2}(\.[0-9]{1,3})?\s*(s|sec|secs|ms)?|[0-4]\s*(m|min|mins))\s*$")


@schemathesis.hook
def map_query(context, query):
    op = context.operation
    if op is None or not query:
        return query
    if op.path == "/v1/jobs/{id}/output" and query.get("follow") in (True, "true", "1", 1):
        return dict(query, follow="false")
    if op.path != "/v1/jobs/{id}" or "wait" not in query:
        return query
    value = query["wait"]
    try:
        allowed = 0 <= float(value) <= 300
    except (TypeError, ValueError):
        allowed = isinstance(value, str) and bool(WAIT.match(value))
    if allowed:
        query = dict(query, wait="2")
    return query


@schemathesis.hook
def map_body(context, body):
    op = context.operation
    if op is None or op.method.upper() != "PUT" or not op.path.startswith("/v1/schedules/"):
        return body
    if isinstance(body, dict) and isinstance(body.get("paused", False), bool):
        return dict(body, paused=True)
    return body


@schemathesis.hook
def filter_failure(context, failure, case, response):
    if getattr(failure, "code", "") != "ST202" or response.status_code != 400:
        return True
    try:
        field = response.json()["error"].get("field") or ""
    except (ValueError, KeyError, AttributeError):
        return True
    return not STATEFUL_FIELD.match(field)
