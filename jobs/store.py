"""Jobs in Redis: the keys, the job's state as data, and its transitions.

Every key a job has, all visible with redis-cli (``sandbox:`` prefix)::

    sandbox:job:<id>             hash: id, name, queue, status, spec (JSON), worker, owner,
                                 submitted_at, started_at, ended_at, error, result (JSON)
    sandbox:job:<id>:log         stream: the job's events (jobs.events), ends with `eof`
    sandbox:job:<id>:workspace   the packed workspace, deleted when a worker takes the job
    sandbox:job:<id>:secrets     hash: the values of `--secret`s, deleted when a worker takes
                                 the job (in the claim script), or when it ends unrun
    sandbox:job:<id>:artifacts   hash: path -> bytes (jobs.artifacts)
    sandbox:job:<id>:lease       the running worker's name; expires LEASE_TTL after its last renewal
    sandbox:job:<id>:cancel      set by `sandbox jobs cancel` while the job runs
    sandbox:job:<id>:inbox       list: lines for the running job's steps (``tell``), until
                                 its worker moves them into the workspace's inbox file
    sandbox:jobs                 sorted set: every job id by submit time
    sandbox:jobs:running         set: ids in status `running` (where `reap` looks)

The status moves only by compare-and-set in a Lua script (``_CLAIM``,
``_FINISH``), so a cancel and a worker taking the job, or a worker finishing
and a reaper, cannot both win; each script also does everything else that
goes with the move, in the same round trip.
A running job whose lease expired (its worker was SIGKILLed or lost its
host) is ended as `error` by `reap`, which every worker runs every few
seconds and every follower runs when the log goes quiet. It is not retried:
the job's code may be what killed the worker. A worker renews only while
the job is still its own (``_RENEW``), and stops the job itself when it
could not renew for LEASE_TTL: a worker cut off from Redis never runs on
beside the verdict a reaper gave.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping, Sequence
from typing import Any

from .errors import NoSuchJob
from .junit import totals as junit_totals
from .model import JobSpec
from .result import CANCELLED, ERROR, FINAL, QUEUED, RUNNING, JobResult

PREFIX = "sandbox:"
INDEX = PREFIX + "jobs"
RUNNING_SET = PREFIX + "jobs:running"
LEASE_TTL = 5
LOG_MAXLEN = 100_000
#: `sandbox jobs list` reads job hashes in pages of this many, looking at LIST_SCAN at most
LIST_PAGE, LIST_SCAN = 200, 100_000
#: how long a finished job, its log and artifacts stay (SANDBOX_JOB_TTL seconds, default 7 days)
JOB_TTL = int(os.environ.get("SANDBOX_JOB_TTL", 7 * 24 * 3600))

#: claim: KEYS job, lease, running set, workspace, secrets; ARGV worker, lease ttl, started_at, id
_CLAIM = """
if redis.call('HGET', KEYS[1], 'status') ~= 'queued' then return {0, false, false, {}} end
redis.call('SET', KEYS[2], ARGV[1], 'EX', ARGV[2])
redis.call('SADD', KEYS[3], ARGV[4])
redis.call('HSET', KEYS[1], 'status', 'running', 'worker', ARGV[1], 'started_at', ARGV[3])
local packed = redis.call('GET', KEYS[4])
if packed then redis.call('DEL', KEYS[4]) end
local secrets = redis.call('HGETALL', KEYS[5])
redis.call('DEL', KEYS[5])
return {1, redis.call('HGET', KEYS[1], 'spec'), packed, secrets}
"""

#: finish: KEYS job, log, artifacts, lease, cancel, workspace, running set, secrets;
#: ARGV allowed, status, ttl, log maxlen, id, n, n hash field/values, eof field/values
_FINISH = """
local cur = redis.call('HGET', KEYS[1], 'status')
if not cur then return {0, ''} end
local allowed = false
for s in string.gmatch(ARGV[1], '[^,]+') do
  if s == cur then allowed = true end
end
if not allowed then return {0, cur} end
local n = tonumber(ARGV[6])
redis.call('HSET', KEYS[1], 'status', ARGV[2], unpack(ARGV, 7, 6 + n))
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[4], '*', unpack(ARGV, 7 + n))
for i = 1, 3 do redis.call('EXPIRE', KEYS[i], ARGV[3]) end
redis.call('DEL', KEYS[4], KEYS[5], KEYS[6], KEYS[8])
redis.call('SREM', KEYS[7], ARGV[5])
return {1, cur}
"""


#: renew: KEYS job, lease, cancel; ARGV worker, lease ttl. -1: not this worker's any more
_RENEW = """
local job = redis.call('HMGET', KEYS[1], 'status', 'worker')
if job[1] ~= 'running' or job[2] ~= ARGV[1] then return -1 end
redis.call('SET', KEYS[2], ARGV[1], 'EX', ARGV[2])
return redis.call('EXISTS', KEYS[3])
"""


def key(job_id: str, part: str = "") -> str:
    return f"{PREFIX}job:{job_id}" + (f":{part}" if part else "")


def create(conn: Any, job_id: str, spec: JobSpec, queue: str, packed: bytes | None,
           owner: str | None = None, secrets: Mapping[str, str] | None = None) -> None:
    """Record a new queued job (before it is put on the RQ queue).

    ``owner``: who submitted it (the daemon's token name), kept in its record.
    ``secrets`` go to their own hash, never into the job's: the claim takes
    and deletes them, and they expire with the job if no worker ever does.
    """
    now = time.time()
    fields = {"id": job_id, "name": spec.name, "queue": queue, "status": QUEUED,
              "submitted_at": now, "spec": json.dumps(spec.to_dict())}
    if owner:
        fields["owner"] = owner
    with conn.pipeline() as pipe:
        if secrets:
            pipe.hset(key(job_id, "secrets"), mapping=dict(secrets))
            pipe.expire(key(job_id, "secrets"), JOB_TTL)
        pipe.hset(key(job_id), mapping=fields)
        if packed is not None:
            pipe.set(key(job_id, "workspace"), packed, ex=JOB_TTL)
        pipe.zadd(INDEX, {job_id: now})
        pipe.execute()


def read(conn: Any, job_id: str) -> dict[str, str]:
    """The job's hash as text (without the workspace); NoSuchJob if unknown."""
    raw = conn.hgetall(key(job_id))
    if not raw:
        raise NoSuchJob(job_id)
    return {k.decode(): v.decode("utf-8", "replace") for k, v in raw.items()}


def status_of(conn: Any, job_id: str) -> str:
    """The job's status (one HGET, not the whole hash); NoSuchJob if unknown."""
    raw = conn.hget(key(job_id), "status")
    if raw is None:
        raise NoSuchJob(job_id)
    return raw.decode()


def claim(conn: Any, job_id: str, worker: str,
          ) -> tuple[JobSpec, bytes | None, dict[str, str]] | None:
    """queued -> running for this worker; (spec, packed workspace, secrets), or None if
    cancelled meanwhile.

    One script: the lease, the running set, the status and taking the
    workspace and the secrets happen together or not at all, in one round trip.
    """
    keys = [key(job_id), key(job_id, "lease"), RUNNING_SET, key(job_id, "workspace"),
            key(job_id, "secrets")]
    done, spec, packed, flat = conn.eval(_CLAIM, len(keys), *keys, worker, LEASE_TTL, time.time(),
                                         job_id)
    if not done:
        return None
    secrets = {flat[i].decode(): flat[i + 1].decode() for i in range(0, len(flat), 2)}
    return JobSpec.from_dict(json.loads(spec)), packed, secrets


def renew(conn: Any, job_id: str, worker: str, *,
          inbox: bool = False) -> tuple[bool | None, list[bytes]]:
    """Renew the lease of a job this worker runs: whether cancellation was requested, and
    (with ``inbox``: the job can take them now) the lines told to it since, taken out.

    None instead of the bool when the job is no longer this worker's to run (a
    reaper ended it after the lease ran out, or it was claimed again after a
    Redis crash lost the claim): the worker must stop it and store nothing. A
    lease that ran out is renewed while nobody has ended the job yet.
    """
    keys = [key(job_id), key(job_id, "lease"), key(job_id, "cancel")]
    answer = conn.eval(_RENEW, len(keys), *keys, worker, LEASE_TTL)
    if answer < 0:
        return None, []
    lines: list[bytes] = []
    if inbox:
        with conn.pipeline() as pipe:
            pipe.lrange(key(job_id, "inbox"), 0, -1)
            pipe.delete(key(job_id, "inbox"))
            lines = pipe.execute()[0]
    return bool(answer), lines


#: A line told to a job: at most this long; a job's inbox holds at most this many.
MAX_TOLD = 4096
MAX_INBOX = 1000


def tell(conn: Any, job_id: str, line: str) -> None:
    """Add a line to the job's inbox: its worker writes it into the inbox file of the job's
    workspace within a lease renewal (while the job runs; a queued job gets it at start)."""
    if "\n" in line or len(line.encode()) > MAX_TOLD:
        raise ValueError(f"a line told to a job: one line of at most {MAX_TOLD} bytes")
    with conn.pipeline() as pipe:
        pipe.rpush(key(job_id, "inbox"), line)
        pipe.ltrim(key(job_id, "inbox"), -MAX_INBOX, -1)
        pipe.expire(key(job_id, "inbox"), JOB_TTL)
        pipe.execute()


def finish(conn: Any, result: JobResult, *, seq: int = 0, allowed: tuple[str, ...] = (RUNNING,),
           log_entries: Sequence[tuple[str, Mapping[str, bytes | str]]] = ()) -> bool:
    """Store the final result and write the `eof` event; False if someone else ended it first.

    One script: a job never has a final status without its eof, its TTLs
    and its removal from the running set. ``log_entries`` (entry id, fields),
    the log's last events still held by its writer, go in the same round trip
    just before it; one already written (a retry) is refused and skipped.
    """
    headline = result.junit.headline() if result.junit else ""
    fields = {"ended_at": result.ended_at, "error": result.error or "",
              "result": json.dumps(result.to_dict())}
    eof = {"kind": "eof", "seq": seq, "time": f"{time.time():.6f}", "status": result.status,
           "headline": headline, "error": result.error or ""}
    keys = [key(result.id), key(result.id, "log"), key(result.id, "artifacts"),
            key(result.id, "lease"), key(result.id, "cancel"), key(result.id, "workspace"),
            RUNNING_SET, key(result.id, "secrets")]
    args = [",".join(allowed), result.status, JOB_TTL, LOG_MAXLEN, result.id, 2 * len(fields),
            *_flat(fields), *_flat(eof)]
    with conn.pipeline(transaction=False) as pipe:
        for entry, entry_fields in log_entries:
            append_log(pipe, result.id, entry, entry_fields)
        pipe.eval(_FINISH, len(keys), *keys, *args)
        *written, finished = pipe.execute(raise_on_error=False)
    for reply in written:  # a refused entry: written before, or fenced off by an eof
        if isinstance(reply, Exception) and not refused_as_written(reply):
            raise reply
    if isinstance(finished, Exception):
        raise finished
    return bool(finished[0])


def log_entry(seq: int) -> str:
    """The id of the worker's log entry for event ``seq``: ``0-<seq>``. An eof written by
    someone else gets the server's clock as its id, above every one of them."""
    return f"0-{seq}"


def append_log(client: Any, job_id: str, entry: str, fields: Mapping[str, bytes | str]) -> Any:
    """XADD one entry to the job's log, capped at about LOG_MAXLEN (a pipeline queues it)."""
    return client.xadd(key(job_id, "log"), dict(fields), id=entry, maxlen=LOG_MAXLEN,
                       approximate=True)


def refused_as_written(reply: BaseException) -> bool:
    """True for XADD's refusal of an entry id not above the stream's last one."""
    return "equal or smaller" in str(reply)


def _flat(fields: dict[str, object]) -> list[object]:
    return [item for pair in fields.items() for item in pair]


def end_unrun(conn: Any, job_id: str, status: str, error: str,
              allowed: tuple[str, ...]) -> bool:
    """End a job no worker will finish (cancelled while queued, worker died)."""
    try:
        fields = read(conn, job_id)
    except NoSuchJob:
        conn.srem(RUNNING_SET, job_id)
        return False
    started = float(fields.get("started_at") or fields.get("submitted_at") or time.time())
    result = JobResult(id=job_id, name=fields.get("name", ""), status=status, started_at=started,
                       ended_at=time.time(), error=error, worker=fields.get("worker") or None)
    return finish(conn, result, allowed=allowed)


def request_cancel(conn: Any, job_id: str) -> str:
    """Cancel a job: at once if queued, through its worker if running; the status it had."""
    current = status_of(conn, job_id)
    if current == QUEUED and end_unrun(conn, job_id, CANCELLED, "cancelled before it ran", (QUEUED,)):
        _cancel_rq_job(conn, job_id)
        return QUEUED
    if current in FINAL:
        return current
    conn.set(key(job_id, "cancel"), "1", ex=JOB_TTL)
    return status_of(conn, job_id)


def _cancel_rq_job(conn: Any, job_id: str) -> None:
    from rq.exceptions import InvalidJobOperation, NoSuchJobError
    from rq.job import Job
    from rq.serializers import JSONSerializer

    try:
        Job.fetch(job_id, connection=conn, serializer=JSONSerializer).cancel()
    except (NoSuchJobError, InvalidJobOperation):
        pass


def reap(conn: Any) -> list[str]:
    """End as `error` every running job whose worker stopped renewing its lease; their ids."""
    reaped = []
    for raw in conn.smembers(RUNNING_SET):
        job_id = raw.decode()
        if conn.exists(key(job_id, "lease")):
            continue
        worker = (conn.hget(key(job_id), "worker") or b"?").decode()
        why = (f"worker {worker} stopped mid-job (no heartbeat for {LEASE_TTL}s: killed or lost); "
               "not retried")
        if end_unrun(conn, job_id, ERROR, why, (RUNNING,)):
            reaped.append(job_id)
            continue
        status = conn.hget(key(job_id), "status")
        if status is None or status.decode() in FINAL:  # not one still being claimed
            conn.srem(RUNNING_SET, job_id)
    return reaped


def result_of(conn: Any, job_id: str) -> JobResult | None:
    """The stored JobResult of a finished job, None while it is queued or running."""
    status, result = conn.hmget(key(job_id), "status", "result")
    if status is None:
        raise NoSuchJob(job_id)
    if status.decode() not in FINAL or not result:
        return None
    return JobResult.from_dict(json.loads(result))


def require(conn: Any, job_id: str) -> None:
    """NoSuchJob unless the job is known (one EXISTS, not the whole hash)."""
    if not conn.exists(key(job_id)):
        raise NoSuchJob(job_id)


def list_jobs(conn: Any, limit: int = 50, *, status: str | None = None, name: str | None = None,
              since: float | None = None, scan: int = LIST_SCAN) -> list[dict[str, str]]:
    """The newest jobs first, at most ``limit``, without their spec, and with their JUnit
    totals (``junit``, jobs.junit.totals) instead of the whole result.

    Only those in ``status``, whose name holds ``name``, submitted at or after
    ``since`` (epoch seconds); of the newest ``scan`` jobs at most. Ids whose
    hash expired are dropped from the index.
    """
    rows: list[dict[str, str]] = []
    for offset in range(0, scan, LIST_PAGE):
        ids = [raw.decode() for raw in conn.zrevrangebyscore(
            INDEX, "+inf", "-inf" if since is None else since, start=offset, num=LIST_PAGE)]
        with conn.pipeline(transaction=False) as pipe:
            for job_id in ids:
                pipe.hgetall(key(job_id))
            hashes = pipe.execute()
        for job_id, raw in zip(ids, hashes):
            if not raw:
                conn.zrem(INDEX, job_id)
                continue
            fields = {k.decode(): v.decode("utf-8", "replace") for k, v in raw.items()
                      if k not in (b"spec", b"result")}
            result = raw.get(b"result")
            fields["junit"] = junit_totals(json.loads(result).get("junit")) if result else ""
            if (status is None or fields.get("status") == status) and (
                    name is None or name in fields.get("name", "")):
                rows.append(fields)
                if len(rows) == limit:
                    return rows
        if len(ids) < LIST_PAGE:
            break
    return rows


def artifacts(conn: Any, job_id: str) -> dict[str, bytes]:
    """Every stored artifact of a job: path -> bytes (NoSuchJob if the job is unknown)."""
    require(conn, job_id)
    return {k.decode(): v for k, v in conn.hgetall(key(job_id, "artifacts")).items()}


def artifact(conn: Any, job_id: str, path: str) -> bytes | None:
    """One stored artifact's bytes; None when the job did not store that path."""
    return conn.hget(key(job_id, "artifacts"), path)


def save_artifacts(conn: Any, job_id: str, items: list) -> None:
    """Store artifacts that fit the caps in the job's artifacts hash (see jobs.artifacts)."""
    stored = {art.path: data for art, data in items if data is not None}
    if stored:
        conn.hset(key(job_id, "artifacts"), mapping=stored)
