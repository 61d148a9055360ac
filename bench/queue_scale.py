#!/usr/bin/env python3
"""The queue-scale benchmark's logic (bench/queue is its entry point): seed a
lethe database with a realistic mix of erasure requests, directly in SQL;
start lethe on it; check that the seeded rows read back through the support
API as lethe's own; drive the support queue, the overview and the dashboard's
queue page with wrk; write a markdown report. Standard library only (plus
psql for PostgreSQL).

Every loop here is bounded in count and time; every load run is bounded in
time and killed if it overruns.

(Named queue_scale.py, not queue.py: scripts in this folder run with it on
sys.path, and a queue.py would shadow the standard library's queue module.)
"""

import argparse
import base64
import datetime as dt
import hashlib
import http.client
import json
import math
import os
import random
import re
import sqlite3
import subprocess
import sys
import time
import urllib.parse

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from helper import emit, fmt, free_port, healthz, machine_cpu, postgres_cpu, proc_cpu  # noqa: E402

# ---------------------------------------------------------------- the mix
#
# Requests are received uniformly over the last DAYS days, spread over
# TENANTS tenants (skewed: the first tenants are the biggest). A request is
# still open with a probability that falls with its age (most are decided
# within days; a few stay stuck and go overdue); open ones are mostly
# awaiting approval, closed ones mostly erased. Deadlines are lethe's: the
# end of the day one calendar month after receipt (three for the few
# extended ones). Erased requests are scrubbed at once (retention 0 days),
# rejected and cancelled ones 30 days after closing (lethe's defaults), so
# most closed requests have no subject id left, only its keyed hash.
#
# The same mix is written twice, in Python for SQLite (executemany) and in
# SQL for PostgreSQL (generate_series); the report prints the resulting
# counts per backend so the two can be compared.

DAYS = 365
TENANTS = 200
OPEN_STATES = ("pending", "awaiting_approval", "erasing", "failed")
CLOSED_STATES = ("erased", "rejected", "cancelled")
SUPPORT_EMAIL = "bench@support.example"
SUPPORT_PASSWORD = "bench queue passphrase"

COLUMNS = (
    "id, tenant_id, subject_hash, subject_id, subject_email, initiator, reason, callback_url, "
    "state, batch_id, idempotency_key, fingerprint, received_at, due_at, updated_at, closed_at, "
    "audit_seq, audit_head, decision_code, decision_explanation, escalated_at, "
    "delivery_failed_at, approved_at, erased_at, scrubbed_at, extended_at, extension_reason, "
    "extended_by, cancel_reason"
)
AUDIT_SEQ = {
    "pending": 1, "awaiting_approval": 2, "erasing": 4, "failed": 5,
    "erased": 7, "rejected": 4, "cancelled": 3,
}
EXTENDED_BY = "support:01900000-0000-7000-8000-00000000c001"


def hmac_pads(key):
    """HMAC-SHA256's inner and outer padded keys (the key is 32 bytes)."""
    k = key.ljust(64, b"\0")
    return bytes(b ^ 0x36 for b in k), bytes(b ^ 0x5C for b in k)


def add_months(d, months):
    """lethe's calendar months (EU Regulation 1182/71): clamp to the month's end."""
    total = d.year * 12 + d.month - 1 + months
    y, m = divmod(total, 12)
    nxt = dt.date(y + (m + 1) // 12, (m + 1) % 12 + 1, 1)
    return dt.date(y, m + 1, min(d.day, (nxt - dt.timedelta(days=1)).day))


def end_of_day(d):
    return dt.datetime(d.year, d.month, d.day, 23, 59, 59, 999_999)


def ts(t):
    """A timestamp as diesel writes it to SQLite (chrono's "%F %T%.f")."""
    if t is None:
        return None
    base = f"{t.year:04d}-{t.month:02d}-{t.day:02d} {t.hour:02d}:{t.minute:02d}:{t.second:02d}"
    us = t.microsecond
    if us == 0:
        return base
    if us % 1000 == 0:
        return f"{base}.{us // 1000:03d}"
    return f"{base}.{us:06d}"


def uuid7(t, rng):
    ms = int(t.replace(tzinfo=dt.timezone.utc).timestamp() * 1000)
    v = (ms << 80) | (0x7 << 76) | (rng.getrandbits(12) << 64) | (0b10 << 62) | rng.getrandbits(62)
    h = f"{v:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def tenant_rows(now, rng):
    rows = []
    for i in range(TENANTS):
        created = now - dt.timedelta(days=DAYS + 30 - i * 0.01)
        policy = "none" if i % 10 == 9 else "privacy_contact"
        rows.append((
            uuid7(created, rng), f"Bench tenant {i:03d}", policy,
            None if policy == "none" else f"Privacy {i:03d}",
            None if policy == "none" else f"dpo@tenant{i:03d}.example",
            ("en", "de", "fr")[i % 3], ts(created), ts(created),
        ))
    return rows


TENANT_INSERT = (
    "INSERT INTO tenants (id, name, approval_policy, contact_name, contact_email, locale, "
    "created_at, updated_at) VALUES ({})"
)


def request_row(n, rng, now, tenants, pads):
    """Request number n of the mix, as a tuple in COLUMNS order (SQLite)."""
    r = rng.random
    tix = int(TENANTS * r() ** 2)
    age = r() * DAYS
    r_open, r_kind, r_close, r_init, r_email, r_ext = r(), r(), r(), r(), r(), r()
    tenant = tenants[tix]
    subj = f"user-{n}"
    recv = now - dt.timedelta(days=age)
    is_open = r_open < 0.7 * math.exp(-age / 20) + 0.005
    if is_open:
        state = ("pending" if r_kind < 0.01 else "awaiting_approval" if r_kind < 0.71
                 else "erasing" if r_kind < 0.85 else "failed")
    else:
        state = "erased" if r_kind < 0.82 else "rejected" if r_kind < 0.90 else "cancelled"
    extended = is_open and 20 <= age <= 80 and r_ext < 0.05
    due = end_of_day(add_months(recv.date(), 3 if extended else 1))
    closed = None if is_open else recv + dt.timedelta(days=r_close * min(age, 25))
    updated = closed or recv + dt.timedelta(days=r_close * min(age, 3))
    scrubbed = None
    if state == "erased":
        scrubbed = closed
    elif state in ("rejected", "cancelled") and closed < now - dt.timedelta(days=30):
        scrubbed = closed + dt.timedelta(days=30)
    kept = scrubbed is None
    initiator = "subject" if r_init < 0.9 else "support" if r_init < 0.97 else "retention_policy"
    inner = hashlib.sha256(pads[0] + bytes.fromhex(tenant.replace("-", "")) + subj.encode()).digest()
    subject_hash = hashlib.sha256(pads[1] + inner).hexdigest()
    approved = (recv + (updated - recv) / 2) if state in ("erasing", "erased", "failed") else None
    escalated = None
    if state == "awaiting_approval" and now > due - dt.timedelta(days=7):
        escalated = dt.datetime.combine(due.date(), dt.time(7)) - dt.timedelta(days=7)
    return (
        uuid7(recv, rng), tenant, subject_hash, subj if kept else None,
        f"{subj}@example.org" if kept and r_email < 0.5 else None, initiator,
        "closing my account" if kept and r_email < 0.3 else None, None, state, None, None,
        hashlib.sha256(f"{subj}:{r_ext}".encode()).hexdigest(),
        ts(recv), ts(due), ts(updated), ts(closed), AUDIT_SEQ[state] + (escalated is not None),
        f"{rng.getrandbits(256):064x}",
        "identity_not_verified" if state == "rejected" else None,
        "We could not verify the account holder." if state == "rejected" and kept else None,
        ts(escalated),
        ts(recv + dt.timedelta(hours=1)) if state == "awaiting_approval" and r_ext > 0.99 else None,
        ts(approved), ts(closed) if state == "erased" else None, ts(scrubbed),
        ts(recv + dt.timedelta(days=20)) if extended else None,
        "Complex request across several systems" if extended else None,
        EXTENDED_BY if extended else None,
        "Submitted twice" if state == "cancelled" and kept else None,
    )


# The same mix in SQL (PostgreSQL). {now}, {lo}, {hi}, {ipad}, {opad},
# {seed} are filled in by seed_postgres.
PG_SEED = """
SELECT setseed({seed});
WITH t AS (
  SELECT id, (row_number() OVER (ORDER BY name) - 1)::int AS ix
  FROM tenants WHERE name LIKE 'Bench tenant %'
), b AS MATERIALIZED (
  SELECT n, 'user-' || n AS subj, floor({tenants} * power(random(), 2))::int AS tix,
         random() * {days} AS age, random() AS r_open, random() AS r_kind, random() AS r_close,
         random() AS r_init, random() AS r_email, random() AS r_ext,
         md5(random()::text) AS h1, md5(random()::text) AS h2, md5(random()::text) AS h3
  FROM generate_series({lo}, {hi} - 1) AS n
), a AS (
  SELECT b.*, TIMESTAMP '{now}' - age * interval '1 day' AS recv,
         r_open < 0.7 * exp(-age / 20) + 0.005 AS is_open
  FROM b
), s AS (
  SELECT a.*,
    CASE WHEN is_open THEN
      CASE WHEN r_kind < 0.01 THEN 'pending' WHEN r_kind < 0.71 THEN 'awaiting_approval'
           WHEN r_kind < 0.85 THEN 'erasing' ELSE 'failed' END
    ELSE
      CASE WHEN r_kind < 0.82 THEN 'erased' WHEN r_kind < 0.90 THEN 'rejected' ELSE 'cancelled' END
    END AS state,
    is_open AND age BETWEEN 20 AND 80 AND r_ext < 0.05 AS extended,
    CASE WHEN NOT is_open THEN recv + r_close * least(age, 25) * interval '1 day' END AS closed
  FROM a
), d AS (
  SELECT s.*,
    (date_trunc('day', recv) + CASE WHEN extended THEN interval '3 months' ELSE interval '1 month' END)::date
      + interval '1 day' - interval '1 microsecond' AS due,
    coalesce(closed, recv + r_close * least(age, 3) * interval '1 day') AS updated,
    CASE WHEN state = 'erased' THEN closed
         WHEN state IN ('rejected', 'cancelled') AND closed < TIMESTAMP '{now}' - interval '30 days'
           THEN closed + interval '30 days' END AS scrubbed
  FROM s
), e AS (
  SELECT d.*, t.id AS tenant_id,
    lpad(to_hex(floor(extract(epoch FROM recv) * 1000)::bigint), 12, '0') || '7' || substr(h3, 1, 3)
      || substr('89ab', 1 + get_byte(decode(substr(h3, 4, 2), 'hex'), 0) % 4, 1) || substr(h3, 6, 15) AS h,
    CASE WHEN state = 'awaiting_approval' AND TIMESTAMP '{now}' > due - interval '7 days'
      THEN date_trunc('day', due) - interval '7 days' + interval '7 hours' END AS escalated
  FROM d JOIN t ON t.ix = d.tix
)
INSERT INTO erasure_requests ({columns})
SELECT
  substr(h, 1, 8) || '-' || substr(h, 9, 4) || '-' || substr(h, 13, 4) || '-' || substr(h, 17, 4)
    || '-' || substr(h, 21, 12),
  tenant_id,
  encode(sha256('\\x{opad}'::bytea || sha256('\\x{ipad}'::bytea
    || decode(replace(tenant_id, '-', ''), 'hex') || convert_to(subj, 'UTF8'))), 'hex'),
  CASE WHEN scrubbed IS NULL THEN subj END,
  CASE WHEN scrubbed IS NULL AND r_email < 0.5 THEN subj || '@example.org' END,
  CASE WHEN r_init < 0.9 THEN 'subject' WHEN r_init < 0.97 THEN 'support' ELSE 'retention_policy' END,
  CASE WHEN scrubbed IS NULL AND r_email < 0.3 THEN 'closing my account' END,
  NULL, state, NULL, NULL,
  encode(sha256(convert_to(subj || ':' || h1, 'UTF8')), 'hex'),
  recv, due, updated, closed,
  CASE state WHEN 'pending' THEN 1 WHEN 'awaiting_approval' THEN 2 WHEN 'erasing' THEN 4
    WHEN 'failed' THEN 5 WHEN 'erased' THEN 7 WHEN 'rejected' THEN 4 ELSE 3 END
    + CASE WHEN escalated IS NULL THEN 0 ELSE 1 END,
  h1 || h2,
  CASE WHEN state = 'rejected' THEN 'identity_not_verified' END,
  CASE WHEN state = 'rejected' AND scrubbed IS NULL THEN 'We could not verify the account holder.' END,
  escalated,
  CASE WHEN state = 'awaiting_approval' AND r_ext > 0.99 THEN recv + interval '1 hour' END,
  CASE WHEN state IN ('erasing', 'erased', 'failed') THEN recv + (updated - recv) / 2 END,
  CASE WHEN state = 'erased' THEN closed END,
  scrubbed,
  CASE WHEN extended THEN recv + interval '20 days' END,
  CASE WHEN extended THEN 'Complex request across several systems' END,
  CASE WHEN extended THEN '{extended_by}' END,
  CASE WHEN state = 'cancelled' AND scrubbed IS NULL THEN 'Submitted twice' END
FROM e;
"""


def psql(url, sql, *extra):
    p = subprocess.run(
        ["psql", url, "-qtAX", "-v", "ON_ERROR_STOP=1", *extra],
        input=sql, capture_output=True, text=True, timeout=3600,
    )
    if p.returncode != 0:
        raise SystemExit(f"psql failed: {p.stderr.strip()}")
    return p.stdout


def parse_now(s):
    return dt.datetime.strptime(s, "%Y-%m-%d %H:%M:%S.%f")


def seed(args):
    """Add requests number --lo .. --hi - 1 of the mix (and the tenants when
    --lo is 0); then ANALYZE (PostgreSQL: VACUUM ANALYZE, the state
    autovacuum would reach). Prints one JSON line with the seconds taken."""
    now = parse_now(args.now)
    key = bytes.fromhex(args.key)
    pads = hmac_pads(key)
    rng = random.Random(f"{args.seed}:{args.lo}")
    t0 = time.perf_counter()
    if args.backend == "sqlite":
        db = sqlite3.connect(args.db, isolation_level=None)
        db.executescript(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = OFF; PRAGMA cache_size = -512000;"
            "PRAGMA foreign_keys = ON;"
        )
        db.execute("BEGIN")
        if args.lo == 0:
            db.executemany(TENANT_INSERT.format(", ".join("?" * 8)), tenant_rows(now, rng))
        tenants = [r[0] for r in db.execute(
            "SELECT id FROM tenants WHERE name LIKE 'Bench tenant %' ORDER BY name")]
        insert = f"INSERT INTO erasure_requests ({COLUMNS}) VALUES ({', '.join('?' * 29)})"
        batch = []
        for n in range(args.lo, args.hi):
            batch.append(request_row(n, rng, now, tenants, pads))
            if len(batch) == 20_000:
                db.executemany(insert, batch)
                batch.clear()
        db.executemany(insert, batch)
        db.execute("COMMIT")
        t1 = time.perf_counter()
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        db.close()
        analyze_s = time.perf_counter() - t1
    else:
        if args.lo == 0:
            values = ",\n".join(
                "(" + ", ".join("NULL" if v is None else "'" + v.replace("'", "''") + "'" for v in row) + ")"
                for row in tenant_rows(now, rng))
            psql(args.db, TENANT_INSERT.format("").replace("VALUES ()", "VALUES ") + values + ";")
        ipad, opad = pads
        psql(args.db, PG_SEED.format(
            seed=(args.seed % 1000) / 1000 + args.lo / 1e9, tenants=TENANTS, days=DAYS, lo=args.lo,
            hi=args.hi, now=args.now, ipad=ipad.hex(), opad=opad.hex(), columns=COLUMNS,
            extended_by=EXTENDED_BY))
        t1 = time.perf_counter()
        psql(args.db, "VACUUM ANALYZE;")
        analyze_s = time.perf_counter() - t1
    print(json.dumps({"seed_s": t1 - t0, "analyze_s": analyze_s}))


# ---------------------------------------------------------------- the database


class Db:
    """Read-only questions to the benchmark's database, either backend."""

    def __init__(self, backend, target):
        self.backend, self.target = backend, target

    def rows(self, sql):
        if self.backend == "sqlite":
            db = sqlite3.connect(f"file:{self.target}?mode=ro", uri=True)
            try:
                return [tuple(str(v) if v is not None else None for v in r) for r in db.execute(sql)]
            finally:
                db.close()
        out = psql(self.target, sql, "-F", "\t")
        return [tuple(line.split("\t")) for line in out.splitlines() if line]

    def now_literal(self, now):
        if self.backend == "sqlite":
            return f"'{ts(now)}'"
        return f"TIMESTAMP '{now.strftime('%Y-%m-%d %H:%M:%S.%f')}'"

    def size_bytes(self):
        if self.backend == "sqlite":
            return sum(os.path.getsize(p) for p in (self.target, self.target + "-wal")
                       if os.path.exists(p))
        return int(self.rows("SELECT pg_database_size(current_database())")[0][0])

    def counts(self, now):
        open_list = ", ".join(f"'{s}'" for s in OPEN_STATES)
        n = self.now_literal(now)
        r = self.rows(
            "SELECT count(*), "
            f"sum(CASE WHEN state IN ({open_list}) THEN 1 ELSE 0 END), "
            f"sum(CASE WHEN state IN ({open_list}) AND due_at < {n} THEN 1 ELSE 0 END), "
            "sum(CASE WHEN state = 'awaiting_approval' THEN 1 ELSE 0 END), "
            "sum(CASE WHEN scrubbed_at IS NOT NULL THEN 1 ELSE 0 END), "
            "count(DISTINCT tenant_id) FROM erasure_requests")[0]
        keys = ("requests", "open", "overdue", "awaiting_approval", "scrubbed", "tenants")
        return dict(zip(keys, (int(x or 0) for x in r)))

    def middle(self, where, count):
        """(due_at, id) of the row halfway through `where` in the queue's
        default order (due date, then id): where a deep page starts."""
        sql = (f"SELECT due_at, id FROM erasure_requests WHERE {where} "
               f"ORDER BY due_at, id LIMIT 1 OFFSET {max(count // 2, 0)}")
        rows = self.rows(sql)
        return rows[0] if rows else None


def cursor_for(due_at, rid):
    """The queue's cursor continuing after (due_at, id) (see
    src/http/support/queue.rs: encode_cursor)."""
    t = due_at.replace("T", " ")
    fmt = "%Y-%m-%d %H:%M:%S.%f" if "." in t else "%Y-%m-%d %H:%M:%S"
    d = dt.datetime.strptime(t, fmt).replace(tzinfo=dt.timezone.utc)
    micros = (d - dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)) // dt.timedelta(microseconds=1)
    raw = f"s1:due:{micros}:{rid}"
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


# ---------------------------------------------------------------- HTTP


def get(port, path, headers=None, timeout=30):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        c.request("GET", path, headers=headers or {})
        r = c.getresponse()
        return r.status, dict(r.getheaders()), r.read()
    finally:
        c.close()


def login(port):
    """Log the support user in through the login form; the session cookie."""
    status, headers, body = get(port, "/support/login")
    if status != 200:
        raise SystemExit(f"GET /support/login: {status}")
    m = re.search(rb'name="csrf" value="([^"]+)"', body)
    cookie = re.search(r"lethe_support_login=([^;]+)", headers.get("set-cookie", "") or
                       headers.get("Set-Cookie", ""))
    if not m or not cookie:
        raise SystemExit("the login page has no CSRF token or cookie")
    form = urllib.parse.urlencode({"csrf": m.group(1).decode(), "next": "/support",
                                   "email": SUPPORT_EMAIL, "password": SUPPORT_PASSWORD})
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        c.request("POST", "/support/login", body=form, headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "Cookie": f"lethe_support_login={cookie.group(1)}"})
        r = c.getresponse()
        r.read()
        cookies = [v for k, v in r.getheaders() if k.lower() == "set-cookie"]
    finally:
        c.close()
    if r.status != 303:
        raise SystemExit(f"support login: {r.status}")
    for v in cookies:
        m = re.match(r"lethe_support=([^;]+)", v)
        if m:
            return m.group(1)
    raise SystemExit("support login set no session cookie")


def spawn_lethe(args, port, log):
    env = dict(os.environ, LETHE_DATABASE_URL=args.url, LETHE_BIND=f"127.0.0.1:{port}")
    p = subprocess.Popen([args.lethe, "serve"], stdout=log, stderr=log,
                         stdin=subprocess.DEVNULL, env=env, cwd=args.work)
    with open(args.pidfile, "w") as f:
        f.write(str(p.pid))
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if p.poll() is not None:
            raise SystemExit(f"lethe exited with status {p.returncode}")
        if healthz(port) == 200:
            return p
        time.sleep(0.02)
    raise SystemExit("lethe did not answer /healthz within 120 s")


def stop_lethe(p, pidfile):
    p.terminate()
    try:
        p.wait(timeout=10)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()
    if os.path.exists(pidfile):
        os.unlink(pidfile)


# ---------------------------------------------------------------- checks


def verify(port, token, db, counts, now):
    """The seeded rows read back through the support API as lethe's own:
    pages parse, a subject-id search finds its request through the keyed
    hash (so the hashes are lethe's), the detail answers, and the overview's
    open and overdue counts equal the database's."""
    auth = {"Authorization": f"Bearer {token}"}

    def api(path):
        status, _, body = get(port, path, auth)
        if status != 200:
            raise SystemExit(f"GET {path}: {status} {body[:300]!r}")
        return json.loads(body)

    page = api("/v1/support/requests?limit=5")
    if not page["data"]:
        raise SystemExit("the queue is empty")
    for row in page["data"]:
        for k in ("id", "tenant_name", "state", "due_at", "days_left", "urgency"):
            if k not in row:
                raise SystemExit(f"queue row without {k}: {row}")
    kept = db.rows("SELECT id, subject_id, tenant_id FROM erasure_requests "
                   "WHERE subject_id IS NOT NULL AND state = 'awaiting_approval' "
                   "ORDER BY id DESC LIMIT 1")
    if kept:
        rid, subj, tenant = kept[0]
        found = api(f"/v1/support/requests?q={subj}&tenant={tenant}")["data"]
        if [r["id"] for r in found] != [rid]:
            raise SystemExit(f"searching {subj} found {[r['id'] for r in found]}, not {rid}")
        detail = api(f"/v1/support/requests/{rid}")
        if detail["request"]["id"] != rid or "deadline" not in detail:
            raise SystemExit(f"detail of {rid}: {detail}")
    scrubbed = db.rows("SELECT id FROM erasure_requests WHERE scrubbed_at IS NOT NULL LIMIT 1")
    if scrubbed:
        d = api(f"/v1/support/requests/{scrubbed[0][0]}")
        if not d["request"]["scrubbed"] or d["request"]["subject_id"] is not None:
            raise SystemExit(f"scrubbed request reads back unscrubbed: {d['request']}")
    o = api("/v1/support/overview")
    if o["open"] != counts["open"] or abs(o["overdue"] - counts["overdue"]) > 0:
        raise SystemExit(f"overview says open {o['open']}, overdue {o['overdue']}; "
                         f"the database {counts['open']}, {counts['overdue']}")
    return {"overview_tenants": len(o["by_tenant"]), "searched": bool(kept)}


# ---------------------------------------------------------------- load runs


def parse_wrk(out):
    for line in out.splitlines():
        if line.startswith("BENCH_WRK "):
            w = json.loads(line[len("BENCH_WRK "):])
            secs = w["duration_us"] / 1e6
            errors = sum(w[k] for k in w if k.startswith("err_")) - w["err_status"]
            return {
                "tx": w["requests"],
                "rate": w["requests"] / secs if secs else 0.0,
                "p50_ms": w["p50_us"] / 1000,
                "p99_ms": w["p99_us"] / 1000,
                "max_ms": w["max_us"] / 1000,
                "bytes_per": w["bytes"] / max(w["requests"], 1),
                "non200": w["nother"] + errors,
            }
    raise SystemExit("wrk printed no BENCH_WRK line:\n" + out)


def wrk(args, pid, port, path, header, value, secs, pgdb):
    """One bounded wrk run; the result with the CPU each party used and the
    share of the cores other processes took."""
    before_m, before_l = machine_cpu(), proc_cpu(pid)[0]
    pg0 = postgres_cpu(pgdb) if pgdb else {}
    t0 = time.perf_counter()
    own0 = time.process_time()
    cmd = ["timeout", "-k", "5", str(secs + 60), "wrk", f"-t{min(args.connections, 2)}",
           f"-c{args.connections}", f"-d{secs}s", "--timeout", "10s", "--latency",
           "-s", args.lua, f"http://127.0.0.1:{port}{path}", "--", header, value]
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    out = p.stdout.read().decode(errors="replace")
    _, status, usage = os.wait4(p.pid, 0)
    wall = time.perf_counter() - t0
    after_m, after_l = machine_cpu(), proc_cpu(pid)[0]
    pg1 = postgres_cpu(pgdb) if pgdb else {}
    if os.waitstatus_to_exitcode(status) != 0:
        sys.stderr.write(out)
        raise SystemExit(f"wrk failed on {path}")
    r = parse_wrk(out)
    tx = max(r["tx"], 1)
    lethe_cpu = after_l - before_l
    pg_cpu = sum(v - pg0.get(k, 0.0) for k, v in pg1.items())
    client_cpu = usage.ru_utime + usage.ru_stime
    own = time.process_time() - own0
    clk = os.sysconf("SC_CLK_TCK")
    ncpu = os.cpu_count() or 1
    (b0, _, t_0, i0), (b1, _, t_1, i1) = before_m, after_m
    busy_s, irq_s = (b1 - b0) / clk, (i1 - i0) / clk
    ours = lethe_cpu + pg_cpu + client_cpu + own
    r.update(
        lethe_cpu_us=lethe_cpu / tx * 1e6,
        db_cpu_us=pg_cpu / tx * 1e6 if pgdb else None,
        busy_pct=100 * (b1 - b0) / max(t_1 - t_0, 1),
        other_pct=max(0.0, 100 * (busy_s - irq_s - ours) / (wall * ncpu)),
    )
    return r


def endpoints(db, counts, now):
    """What is measured: (name, path, auth kind). The deep pages start
    halfway through their filter's rows, with the cursor the queue itself
    would have issued there."""
    open_list = ", ".join(f"'{s}'" for s in OPEN_STATES)
    n = db.now_literal(now)
    out = [
        ("queue: state=awaiting_approval, first page", "/v1/support/requests?state=awaiting_approval", "token"),
    ]
    mid = db.middle("state = 'awaiting_approval'", counts["awaiting_approval"])
    if mid:
        out.append(("queue: state=awaiting_approval, middle page",
                    f"/v1/support/requests?state=awaiting_approval&cursor={cursor_for(*mid)}", "token"))
    out.append(("queue: overdue=true, first page", "/v1/support/requests?overdue=true", "token"))
    mid = db.middle(f"state IN ({open_list}) AND due_at < {n}", counts["overdue"])
    if mid:
        out.append(("queue: overdue=true, middle page",
                    f"/v1/support/requests?overdue=true&cursor={cursor_for(*mid)}", "token"))
    out.append(("queue: no filter, first page", "/v1/support/requests", "token"))
    mid = db.middle("1 = 1", counts["requests"])
    if mid:
        out.append(("queue: no filter, middle page",
                    f"/v1/support/requests?cursor={cursor_for(*mid)}", "token"))
    out += [
        ("queue: state=failed, newest first", "/v1/support/requests?state=failed&sort=newest", "token"),
        ("overview (JSON)", "/v1/support/overview", "token"),
        ("queue page (HTML): state=awaiting_approval", "/support/requests?state=awaiting_approval", "session"),
        ("metrics (not support: counts every state)", "/metrics", "none"),
    ]
    return out


def run_size(args):
    """At one size: start lethe, log in, check the rows read back right,
    then one bounded wrk run per endpoint. Appends JSON lines to --out."""
    db = Db(args.backend, args.db)
    now = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
    counts = db.counts(now)
    size = db.size_bytes()
    seeded = json.loads(args.seeded)
    port = free_port()
    with open(args.log, "ab") as log:
        p = spawn_lethe(args, port, log)
        try:
            checked = verify(port, args.token, db, counts, now)
            session = login(port)
            auth = {"token": ("Authorization", f"Bearer {args.token}"),
                    "session": ("Cookie", f"lethe_support={session}"),
                    "none": ("X-Bench", "queue")}
            common = {"backend": args.backend, "size": args.size}
            with open(args.out, "a") as f:
                f.write(json.dumps(dict(common, what="size", counts=counts, db_bytes=size,
                                        **seeded, **checked)) + "\n")
            pgdb = args.pgdb or None
            for name, path, kind in endpoints(db, counts, now):
                h, v = auth[kind]
                status, _, body = get(port, path, {h: v})
                if status != 200:
                    raise SystemExit(f"GET {path}: {status} {body[:300]!r}")
                rows = len(json.loads(body)["data"]) if path.startswith("/v1/support/requests") else None
                # Warm up: caches and prepared statements, as in steady use.
                if args.warmup:
                    wrk(args, p.pid, port, path, h, v, args.warmup, None)
                else:
                    for _ in range(5):
                        get(port, path, {h: v})
                r = wrk(args, p.pid, port, path, h, v, args.seconds, pgdb)
                r.update(common, what="load", endpoint=name, path=path, rows=rows)
                with open(args.out, "a") as f:
                    f.write(json.dumps(r) + "\n")
                print(f"  {args.backend} {args.size:>9,} {name}: {r['rate']:.0f}/s "
                      f"p50 {r['p50_ms']:.2f} ms p99 {r['p99_ms']:.2f} ms non-200 {r['non200']} "
                      f"(others {r['other_pct']:.0f}% of the cores)", flush=True)
        finally:
            stop_lethe(p, args.pidfile)


# ---------------------------------------------------------------- report


def report(args):
    rows = [json.loads(line) for line in open(args.results) if line.strip()]
    meta = json.load(open(args.meta))
    order = {"sqlite": 0, "postgres": 1}
    sizes = [r for r in rows if r["what"] == "size"]
    loads = [r for r in rows if r["what"] == "load"]
    out = []
    w = out.append
    w(f"## lethe queue-scale benchmark ({meta['mode']}, {meta['seconds']} s per run, "
      f"{meta['connections']} connections)")
    w("")
    w(f"{meta['machine']}. lethe {meta['commit']}, release build; wrk, lethe and the "
      "database share the cores.")
    w("")
    w("### The databases")
    w("")
    w("| backend | requests | seed s (this step) | ANALYZE s | database MiB | open | overdue "
      "| awaiting approval | scrubbed | tenants |")
    w("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for s in sorted(sizes, key=lambda r: (order[r["backend"]], r["size"])):
        c = s["counts"]
        w(f"| {s['backend']} | {fmt(c['requests'])} | {fmt(s['seed_s'], 1)} | {fmt(s['analyze_s'], 1)} "
          f"| {fmt(s['db_bytes'] / 1048576, 1)} | {fmt(c['open'])} | {fmt(c['overdue'])} "
          f"| {fmt(c['awaiting_approval'])} | {fmt(c['scrubbed'])} | {fmt(c['tenants'])} |")
    w("")
    w("### Latency by size")
    w("")
    w("| backend | requests | endpoint | rows | req/s | p50 ms | p99 ms | max ms | non-200 "
      "| KiB/response | lethe CPU µs/req | database CPU µs/req | other processes % |")
    w("|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    names = []
    for r in loads:
        if r["endpoint"] not in names:
            names.append(r["endpoint"])
    for r in sorted(loads, key=lambda r: (order[r["backend"]], names.index(r["endpoint"]), r["size"])):
        db_cpu = fmt(r["db_cpu_us"]) if r["backend"] == "postgres" else "(inside lethe)"
        w(f"| {r['backend']} | {fmt(r['size'])} | {r['endpoint']} | {fmt(r['rows'])} "
          f"| {fmt(r['rate'])} | {fmt(r['p50_ms'], 2)} | {fmt(r['p99_ms'], 2)} "
          f"| {fmt(r['max_ms'], 1)} | {r['non200']} | {fmt(r['bytes_per'] / 1024, 1)} "
          f"| {fmt(r['lethe_cpu_us'])} | {db_cpu} | {fmt(r['other_pct'])} |")
    w("")
    all_sizes = sorted({r["size"] for r in loads})
    if len(all_sizes) >= 2:
        lo, hi = all_sizes[0], all_sizes[-1]
        w(f"### Growth from {fmt(lo)} to {fmt(hi)} requests (p99 ratio; the logarithm of the "
          f"size grows {math.log(hi) / math.log(lo):.2f}x, the size {hi // lo:,}x)")
        w("")
        w("| endpoint | SQLite p99 ms | SQLite ratio | PostgreSQL p99 ms | PostgreSQL ratio |")
        w("|---|---:|---:|---:|---:|")
        for name in names:
            cells = []
            for b in ("sqlite", "postgres"):
                a = next((r for r in loads if r["backend"] == b and r["endpoint"] == name and r["size"] == lo), None)
                z = next((r for r in loads if r["backend"] == b and r["endpoint"] == name and r["size"] == hi), None)
                if a and z:
                    cells += [f"{fmt(a['p99_ms'], 2)} → {fmt(z['p99_ms'], 2)}",
                              f"{z['p99_ms'] / max(a['p99_ms'], 0.001):.2f}"]
                else:
                    cells += ["–", "–"]
            w(f"| {name} | " + " | ".join(cells) + " |")
        w("")
    w("Requests: received uniformly over the last 365 days across 200 tenants (skewed); "
      "open with a probability falling with age (0.7·e^(−age/20 days) + 0.5 %), so a few "
      "old ones are stuck and overdue; open ones 70 % awaiting approval, 14 % erasing, 15 % "
      "failed, 1 % pending; closed ones 82 % erased, 8 % rejected, 10 % cancelled; due at "
      "the end of the day one calendar month after receipt (three for 5 % of the open ones "
      "20-80 days old, extended); erased ones scrubbed at once, rejected and cancelled ones "
      "30 days after closing. \"Middle page\": the page starting halfway through the "
      "filter's rows, with the cursor the queue would have issued there. Each run follows "
      f"a warm-up ({meta['warmup']}). \"Other processes\": the share of all cores busy with work that "
      "is none of this run's parties (lethe, PostgreSQL's backends of this database and its "
      "shared writers, wrk). wrk is closed-loop: under overload p99 is a lower bound.")
    w("")
    w(f"Cores busy with other work before the run: {meta['background_busy_pct']} %. "
      f"Command: `{meta['command']}`")
    emit(out, args.out)


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd_name", required=True)

    p = sub.add_parser("seed")
    p.add_argument("--backend", choices=["sqlite", "postgres"], required=True)
    p.add_argument("--db", required=True, help="SQLite file or PostgreSQL URL")
    p.add_argument("--lo", type=int, required=True)
    p.add_argument("--hi", type=int, required=True)
    p.add_argument("--now", required=True, help="YYYY-MM-DD HH:MM:SS.ffffff (UTC)")
    p.add_argument("--key", required=True, help="lethe's server secret, hex")
    p.add_argument("--seed", type=int, default=1)
    p.set_defaults(fn=seed)

    p = sub.add_parser("run-size")
    p.add_argument("--backend", choices=["sqlite", "postgres"], required=True)
    p.add_argument("--db", required=True, help="SQLite file or PostgreSQL URL")
    p.add_argument("--url", required=True, help="LETHE_DATABASE_URL")
    p.add_argument("--pgdb", default="", help="PostgreSQL database name (CPU accounting)")
    p.add_argument("--size", type=int, required=True)
    p.add_argument("--seeded", required=True, help="the seed step's JSON")
    p.add_argument("--lethe", required=True)
    p.add_argument("--token", required=True)
    p.add_argument("--work", required=True)
    p.add_argument("--pidfile", required=True)
    p.add_argument("--log", required=True)
    p.add_argument("--lua", required=True)
    p.add_argument("--seconds", type=int, required=True)
    p.add_argument("--connections", type=int, required=True)
    p.add_argument("--warmup", type=int, default=1, help="seconds of wrk before each run (0: 5 requests)")
    p.add_argument("--out", required=True)
    p.set_defaults(fn=run_size)

    p = sub.add_parser("report")
    p.add_argument("--results", required=True)
    p.add_argument("--meta", required=True)
    p.add_argument("--out")
    p.set_defaults(fn=report)

    args = ap.parse_args()
    args.fn(args)


if __name__ == "__main__":
    main()
