#!/usr/bin/env python3
"""The whole-pipeline benchmark's parts (bench/pipeline runs them): the driver
that submits, approves through the approval page's POST and waits for
`erased`, the approval-decision pass, and the report; and smtp-rate, which
measures how many messages an SMTP server takes. The SMTP sink and the
erasure targets are bench/peers. Standard library only.

Everything listens on and connects to 127.0.0.1 only; every loop is bounded in
count and in time.
"""

import argparse
import asyncio
import json
import os
import sqlite3
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from helper import (  # noqa: E402  (bench/run's helpers: /proc readers, percentiles, report)
    CLK_TCK,
    emit,
    fmt,
    machine_cpu,
    percentile,
    postgres_cpu,
    proc_cpu,
)

LOOPBACK = "127.0.0.1"


def self_cpu():
    """This process's CPU and that of its children it has waited for (the
    pipeline's driver, the psql sessions it asks through)."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def write_json(path, obj):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(obj, f)
    os.replace(tmp, path)


# ---------------------------------------------------------------- SMTP rate


def smtp_rate(args):
    """How many approval-sized messages an SMTP server accepts per second
    (--connections keep-alive sessions, --n messages in all, bounded by
    --seconds): to choose the mail catcher the benchmark can rely on."""
    import smtplib
    import threading
    from email.message import EmailMessage

    msg = EmailMessage()
    msg["From"] = "lethe <lethe@localhost>"
    msg["To"] = "dpo@example.org"
    msg["Subject"] = "[Erasure request] Pipeline EU: an erasure request awaits your decision"
    link = "http://127.0.0.1:8080/approvals/ap_" + "A" * 43
    text = ("Hello,\n\nAn erasure request awaits your decision.\n\n" + link + "\n\n") * 4
    msg.set_content(text)
    msg.add_alternative("<html><body>" + text.replace("\n", "<br>") * 8 + "</body></html>", subtype="html")
    raw = msg.as_bytes()
    deadline = time.monotonic() + args.seconds
    sent = [0]
    lock = threading.Lock()

    def worker():
        s = smtplib.SMTP(LOOPBACK, args.port, timeout=30)
        s.ehlo()
        while time.monotonic() < deadline:
            with lock:
                if sent[0] >= args.n:
                    break
                sent[0] += 1
            s.sendmail("lethe@localhost", ["dpo@example.org"], raw)
        s.quit()

    t0 = time.perf_counter()
    threads = [threading.Thread(target=worker) for _ in range(args.connections)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    secs = time.perf_counter() - t0
    print(json.dumps({"messages": sent[0], "bytes": len(raw), "secs": secs, "rate": sent[0] / secs}))


# ---------------------------------------------------------------- HTTP client


class Conn:
    """One keep-alive HTTP/1.1 connection to lethe."""

    def __init__(self, port):
        self.port = port
        self.reader = self.writer = None

    async def request(self, method, path, headers, body=b""):
        for attempt in (0, 1):
            if self.writer is None:
                self.reader, self.writer = await asyncio.open_connection(LOOPBACK, self.port)
            head = f"{method} {path} HTTP/1.1\r\nHost: {LOOPBACK}:{self.port}\r\n"
            head += "".join(f"{k}: {v}\r\n" for k, v in headers.items())
            head += f"Content-Length: {len(body)}\r\n\r\n"
            try:
                self.writer.write(head.encode() + body)
                await self.writer.drain()
                return await self._response()
            except (ConnectionError, asyncio.IncompleteReadError):
                # The server closed an idle keep-alive connection: once more
                # on a new one (only if nothing was read; our requests are
                # idempotent by key or one-use token anyway).
                self.close()
                if attempt:
                    raise

    async def _response(self):
        head = await self.reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        headers = {}
        for line in lines[1:]:
            if ":" in line:
                k, v = line.split(":", 1)
                headers[k.strip().lower()] = v.strip()
        if headers.get("transfer-encoding", "").lower() == "chunked":
            body = b""
            while True:
                size = int((await self.reader.readline()).strip().split(b";")[0], 16)
                chunk = await self.reader.readexactly(size + 2)
                if size == 0:
                    break
                body += chunk[:-2]
        else:
            body = await self.reader.readexactly(int(headers.get("content-length", "0")))
        if headers.get("connection", "").lower() == "close":
            self.close()
        return status, body

    def close(self):
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


# ---------------------------------------------------------------- database


def db_query(db, sql):
    """Rows (lists of strings) of one query, on SQLite (a file path) or
    PostgreSQL (a URL, through psql)."""
    if db.startswith("postgres"):
        out = subprocess.run(
            ["psql", db, "-qtAX", "-F", "\t", "-c", sql],
            check=True, capture_output=True, text=True, timeout=60,
        ).stdout
        return [line.split("\t") for line in out.splitlines() if line]
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
    try:
        return [[("" if v is None else str(v)) for v in row] for row in conn.execute(sql)]
    finally:
        conn.close()


class Counter:
    """One query asked again and again (the watcher's count of erased
    requests): on PostgreSQL through one psql session for the whole run, not
    a psql process, connection and server backend every half second, whose
    start-up (a TLS handshake, the backend's catalog caches) took a few
    percent of the cores the parties share."""

    END = "__lethe_counter_end__"

    def __init__(self, db, sql):
        self.db, self.sql, self.psql = db, sql, None
        if db.startswith("postgres"):
            self.psql = subprocess.Popen(
                ["psql", db, "-qtAX", "-F", "\t"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL, text=True)

    def value(self):
        if self.psql is None:
            return int(db_query(self.db, self.sql)[0][0])
        self.psql.stdin.write(f"{self.sql};\n\\echo {self.END}\n")
        self.psql.stdin.flush()
        lines = []
        while True:
            line = self.psql.stdout.readline()
            if not line:
                raise RuntimeError("the counting psql session ended")
            line = line.rstrip("\n")
            if line == self.END:
                break
            if line:
                lines.append(line)
        return int(lines[0])

    def close(self):
        if self.psql is not None:
            self.psql.stdin.close()
            self.psql.wait(timeout=10)


PG_STATS = ("xact_commit", "xact_rollback", "tup_returned", "tup_fetched", "tup_inserted",
            "tup_updated", "blks_hit", "blks_read")


def pg_stats(db, dbname):
    """The database's counters (pg_stat_database), or None on SQLite."""
    if not dbname:
        return None
    row = db_query(db, f"SELECT {', '.join(PG_STATS)} FROM pg_stat_database WHERE datname = '{dbname}'")[0]
    return dict(zip(PG_STATS, map(int, row)))


TABLE_STATS = ("seq_scan", "seq_tup_read", "idx_scan", "idx_tup_fetch", "n_tup_upd", "n_tup_hot_upd")


def pg_table_stats(db, dbname):
    """Per-table scan and update counters (pg_stat_user_tables), or None on SQLite."""
    if not dbname:
        return None
    rows = db_query(db, f"SELECT relname, {', '.join(TABLE_STATS)} FROM pg_stat_user_tables")
    return {r[0]: dict(zip(TABLE_STATS, (int(v or 0) for v in r[1:]))) for r in rows}


def table_delta(before, after):
    if before is None or after is None:
        return None
    return {t: {k: v - before.get(t, {}).get(k, 0) for k, v in c.items()} for t, c in after.items()}


def pg_setting(db, name):
    return db_query(db, f"SHOW {name}")[0][0]


def epoch_expr(db, col):
    if db.startswith("postgres"):
        return f"extract(epoch from {col})"
    return f"(julianday({col}) - 2440587.5) * 86400.0"


# ---------------------------------------------------------------- CPU accounting


class Cpu:
    """CPU seconds of each party between start() and stop(), and how busy the
    machine was (with the share other processes took)."""

    def __init__(self, lethe_pid, pgdb, pids):
        self.lethe_pid, self.pgdb, self.pids = lethe_pid, pgdb, pids  # pids: name -> pid

    def sample(self):
        s = {"machine": machine_cpu(), "t": time.perf_counter(), "lethe": proc_cpu(self.lethe_pid)[0],
             "driver": self_cpu()}
        for name, pid in self.pids.items():
            s[name] = proc_cpu(pid)[0]
        s["pg"] = postgres_cpu(self.pgdb) if self.pgdb else {}
        return s

    def start(self):
        self.before = self.sample()
        self.pg_last = dict(self.before["pg"])

    def poll(self):
        # PostgreSQL backends may exit before the end: keep their last value.
        if self.pgdb:
            self.pg_last.update(postgres_cpu(self.pgdb))

    def stop(self):
        self.poll()
        a, b = self.before, self.sample()
        self.pg_last.update(b["pg"])
        wall = b["t"] - a["t"]
        ncpu = os.cpu_count() or 1
        out = {"wall_s": wall, "lethe_s": b["lethe"] - a["lethe"], "driver_s": b["driver"] - a["driver"]}
        for name in self.pids:
            out[f"{name}_s"] = b[name] - a[name]
        out["pg_s"] = sum(v - a["pg"].get(p, 0.0) for p, v in self.pg_last.items()) if self.pgdb else None
        (b0, w0, t0, i0), (b1, w1, t1, i1) = a["machine"], b["machine"]
        ours = sum(v for k, v in out.items() if k.endswith("_s") and k != "wall_s" and v)
        busy = (b1 - b0) / CLK_TCK
        irq = (i1 - i0) / CLK_TCK
        out["busy_pct"] = 100 * (b1 - b0) / max(t1 - t0, 1)
        out["irq_pct"] = 100 * irq / (wall * ncpu)
        out["other_pct"] = max(0.0, 100 * (busy - irq - ours) / (wall * ncpu))
        out["iowait_pct"] = 100 * (w1 - w0) / max(t1 - t0, 1)
        return out


# ---------------------------------------------------------------- the pipeline


async def drive(args):
    """Have the driver (bench-peers drive) submit N requests and approve each
    through the approval page's POST as its link arrives at the SMTP sink,
    and wait until all are `erased`. The driver is a child of this process:
    its CPU, and this process's, count as the driver's."""
    n = args.n
    deadline = time.monotonic() + args.timeout
    pids = json.loads(args.pids)
    cpu = Cpu(args.lethe_pid, args.pgdb, pids)
    done = asyncio.Event()
    progress = []
    driver_stats = args.out + ".driver.json"

    def driver_counts():
        try:
            with open(driver_stats) as f:
                return json.load(f)
        except (OSError, ValueError):
            return {}

    q_erased = f"SELECT count(*) FROM erasure_requests WHERE tenant_id = '{args.tenant}' AND state = 'erased'"

    # A server with autovacuum off (it is server-wide) never vacuums or
    # analyzes the fresh database: the job queue's index fills with dead
    # entries and the planner keeps the empty tables' estimates, and every
    # claim then scans the whole queue. Stand in for autovacuum, as a normally
    # configured server would run it, and say so in the report.
    vacuum_every = args.vacuum_every if args.pgdb and pg_setting(args.db, "autovacuum") == "off" else 0
    vacuums = []

    async def vacuumer():
        while vacuum_every and not done.is_set() and time.monotonic() < deadline:
            try:
                await asyncio.wait_for(done.wait(), vacuum_every)
                break
            except asyncio.TimeoutError:
                pass
            t0 = time.perf_counter()
            await asyncio.to_thread(db_query, args.db, "VACUUM (ANALYZE) jobs, erasure_requests, target_calls, "
                                    "approval_links, audit_events")
            vacuums.append(time.perf_counter() - t0)

    counter = Counter(args.db, q_erased)

    async def watcher():
        erased = 0
        last = machine_cpu()
        while time.monotonic() < deadline:
            await asyncio.sleep(0.5)
            rc = driver.poll()
            if rc not in (None, 0):
                # Fail now, not at the timeout: no request will move without it.
                raise SystemExit(f"the driver (bench-peers drive) exited with status {rc}")
            cpu.poll()
            erased = await asyncio.to_thread(counter.value)
            now, dc = machine_cpu(), driver_counts()
            busy = 100 * (now[0] - last[0]) / max(now[2] - last[2], 1)
            last = now
            # (seconds since the start, submitted, approved, erased, cores busy % in the last half second)
            progress.append((round(time.time() - t_start, 2), dc.get("submitted", 0), dc.get("approved", 0),
                             erased, round(busy)))
            if erased >= n:
                break
        done.set()
        return erased

    pg_before = pg_stats(args.db, args.pgdb)
    tables_before = pg_table_stats(args.db, args.pgdb)
    cpu.start()
    t_start = time.time()
    driver = subprocess.Popen([
        args.peers, "drive", "--port", str(args.port), "--key", args.key, "--run", args.run,
        "--n", str(n), "--submit-concurrency", str(args.submit_concurrency),
        "--approve-concurrency", str(args.approve_concurrency), "--links", args.links,
        "--links-offset", str(args.links_offset), "--stats", driver_stats,
        "--max-seconds", str(args.timeout)])
    vacuum_task = asyncio.create_task(vacuumer())
    try:
        erased = await watcher()
    finally:
        counter.close()
        if driver.poll() is None:
            driver.terminate()
        driver.wait(timeout=30)
    t_end = time.time()
    vacuum_task.cancel()
    await asyncio.gather(vacuum_task, return_exceptions=True)
    usage = cpu.stop()
    counts = driver_counts()
    await asyncio.sleep(1.5)  # PostgreSQL publishes backends' counters within a second
    pg_after = pg_stats(args.db, args.pgdb)
    tables = table_delta(tables_before, pg_table_stats(args.db, args.pgdb))

    # Every request's times, from the database.
    rows = db_query(
        args.db,
        f"SELECT {epoch_expr(args.db, 'received_at')}, {epoch_expr(args.db, 'approved_at')}, "
        f"{epoch_expr(args.db, 'erased_at')} FROM erasure_requests WHERE tenant_id = '{args.tenant}' "
        "AND state = 'erased'",
    )
    rec = [float(r[0]) for r in rows]
    appr = [float(r[1]) for r in rows if r[1]]
    era = [float(r[2]) for r in rows]
    to_erased = sorted(e - r for r, e in zip(rec, era))
    to_approved = sorted(a - r for r, a in zip(rec, appr))
    approved_to_erased = sorted(e - a for a, e in zip(appr, era))
    states, jobs = states_and_jobs(args.db, args.tenant)
    span = (max(era) - min(rec)) if era else None
    result = {
        "n": n,
        "erased": erased,
        "erased_rows": len(era),
        "span_s": span,
        "rate": len(era) / span if span else 0.0,
        "first_submit_to_last_submit_s": None,
        "submit_statuses": counts.get("submit_statuses", {}),
        "approve_statuses": counts.get("approve_statuses", {}),
        "driver_errors": counts.get("errors"),
        "to_erased_p50_s": percentile(to_erased, 50),
        "to_erased_p99_s": percentile(to_erased, 99),
        "to_erased_max_s": to_erased[-1] if to_erased else None,
        "to_approved_p50_s": percentile(to_approved, 50),
        "to_approved_p99_s": percentile(to_approved, 99),
        "approved_to_erased_p50_s": percentile(approved_to_erased, 50),
        "approved_to_erased_p99_s": percentile(approved_to_erased, 99),
        "approve_post_p50_ms": counts.get("approve_post_p50_ms", 0.0),
        "approve_post_p99_ms": counts.get("approve_post_p99_ms", 0.0),
        "states": states,
        "jobs": jobs,
        "submit_span_s": None,
        "wall_s": t_end - t_start,
        "pg_stats": {k: pg_after[k] - pg_before[k] for k in pg_after} if pg_after else None,
        "pg_tables": tables,
        "vacuum_every_s": vacuum_every,
        "vacuums": len(vacuums),
        "vacuum_s": sum(vacuums),
        "cpu": usage,
        "progress": progress,
    }
    if rec:
        result["submit_span_s"] = max(rec) - min(rec)
    write_json(args.out, result)
    print(f"  {result['erased_rows']}/{n} erased in {span or 0:.1f} s: {result['rate']:.0f} erasures/s, "
          f"submission to erased p50 {result['to_erased_p50_s']:.2f} s p99 {result['to_erased_p99_s']:.2f} s; "
          f"cores busy {usage['busy_pct']:.0f}% (others {usage['other_pct']:.0f}%)"
          + (f"; the driver's requests that got no answer: {result['driver_errors']}"
             if result["driver_errors"] else ""))
    if len(era) < n:
        raise SystemExit(f"only {len(era)} of {n} requests reached erased within {args.timeout} s; states: "
                         f"{result['states']}")


def states_and_jobs(db, tenant):
    states = db_query(db, f"SELECT state, count(*) FROM erasure_requests WHERE tenant_id = '{tenant}' "
                      "GROUP BY state ORDER BY state")
    jobs = db_query(
        db,
        "SELECT kind, count(*), sum(CASE WHEN finished_at IS NOT NULL AND NOT dead THEN 1 ELSE 0 END), "
        "sum(CASE WHEN dead THEN 1 ELSE 0 END), sum(CASE WHEN attempts > 1 THEN 1 ELSE 0 END) "
        f"FROM jobs WHERE tenant_id = '{tenant}' GROUP BY kind ORDER BY kind",
    )
    return ({s: int(c) for s, c in states},
            {k: {"rows": int(a), "done": int(b), "dead": int(c), "retried": int(d)} for k, a, b, c, d in jobs})


def finalize(args):
    """After lethe stopped: the tenant's jobs and states as they ended (the
    receipts and scrubs of the last erasures run after the pipeline's end)."""
    r = json.load(open(args.out))
    r["states"], r["jobs"] = states_and_jobs(args.db, args.tenant)
    write_json(args.out, r)


async def submit_only(args):
    """Submit N requests (for the approval pass) and wait until N approval
    links have arrived after --links-offset."""
    deadline = time.monotonic() + args.timeout
    statuses = {}
    next_i = [0]

    async def submitter():
        conn = Conn(args.port)
        hdr = {"Authorization": f"Bearer {args.key}", "Content-Type": "application/json"}
        while next_i[0] < args.n and time.monotonic() < deadline:
            i = next_i[0]
            next_i[0] += 1
            body = json.dumps({"subject_id": f"pass-{args.run}-{i}"}).encode()
            status, _ = await conn.request("POST", "/v1/erasure-requests",
                                           dict(hdr, **{"Idempotency-Key": f"pass-{args.run}-{i}"}), body)
            statuses[status] = statuses.get(status, 0) + 1
        conn.close()

    await asyncio.gather(*(submitter() for _ in range(16)))
    if statuses.get(201, 0) != args.n:
        raise SystemExit(f"approval pass: submissions answered {statuses}")
    while time.monotonic() < deadline:
        with open(args.links, "rb") as f:
            f.seek(args.links_offset)
            lines = [l for l in f.read().split(b"\n") if l]
        if len(lines) >= args.n:
            with open(args.tokens, "wb") as f:
                f.write(b"\n".join(lines[: args.n]) + b"\n")
            return
        await asyncio.sleep(0.2)
    raise SystemExit(f"approval pass: only {len(lines)} of {args.n} approval emails arrived in time")


async def approve_pass(args):
    """POST the approval form (`action=approve_all`, as the page's form sends
    it) for every token of --tokens exactly once, over --connections
    keep-alive connections: the decisions' rate, with the CPU of lethe, the
    database and this client (the load generator)."""
    paths = [l for l in open(args.tokens).read().split("\n") if l]
    cpu = Cpu(args.lethe_pid, args.pgdb, {})
    deadline = time.monotonic() + args.seconds
    lat, statuses = [], {}
    it = iter(paths)

    async def client():
        conn = Conn(args.port)
        hdr = {"Content-Type": "application/x-www-form-urlencoded"}
        for path in it:
            if time.monotonic() >= deadline:
                break
            t0 = time.perf_counter()
            status, body = await conn.request("POST", path, hdr, b"action=approve_all")
            lat.append(time.perf_counter() - t0)
            ok = status == 200 and b'id="message"' in body
            statuses["decided" if ok else status] = statuses.get("decided" if ok else status, 0) + 1
        conn.close()

    cpu.start()
    t0 = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(args.connections)))
    secs = time.perf_counter() - t0
    res = cpu.stop()
    lat.sort()
    decided = statuses.pop("decided", 0)
    result = {
        "connections": args.connections,
        "tokens": len(paths),
        "decided": decided,
        "other": statuses,
        "rate": decided / secs if secs else 0.0,
        "p50_ms": percentile(lat, 50) * 1000,
        "p99_ms": percentile(lat, 99) * 1000,
        "secs": secs,
        "cpu": dict(res, client_s=res["driver_s"]),
    }
    write_json(args.out, result)
    print(f"  approval POSTs at {args.connections} connections: {result['rate']:.0f}/s, p50 "
          f"{result['p50_ms']:.2f} ms p99 {result['p99_ms']:.2f} ms, {decided} decided, other {statuses}; "
          f"client CPU {res['driver_s'] / max(decided, 1) * 1e6:.0f} µs each; cores busy {res['busy_pct']:.0f}% "
          f"(others {res['other_pct']:.0f}%)")
    if decided != len(paths) or statuses:
        raise SystemExit("approval pass: not every token was decided exactly once in time")


# ---------------------------------------------------------------- the report


def progress_windows(progress, width):
    """The watcher's half-second samples (seconds, submitted, approved,
    erased, busy %) in windows of `width` seconds: each window's last counts
    and its mean busy share."""
    out, window = [], []
    for sample in progress:
        window.append(sample)
        if sample[0] >= (len(out) + 1) * width:
            out.append((*sample[:4], sum(x[4] for x in window) / len(window)))
            window = []
    if window:
        out.append((*window[-1][:4], sum(x[4] for x in window) / len(window)))
    return out


def us_per(seconds, n):
    return fmt(seconds / n * 1e6) if seconds is not None and n else "–"


def report(args):
    meta = json.load(open(args.meta))
    out = []
    w = out.append
    w(f"## lethe whole-pipeline benchmark ({meta['mode']}, N = {meta['n']:,})")
    w("")
    w(f"{meta['machine']}. lethe {meta['commit']}, release build; lethe, the database, the SMTP sink, "
      f"the two targets and the driver share the cores. Server settings: {meta['settings']}.")
    w("")
    runs = {b: json.load(open(p)) for b, p in meta["pipeline"].items()}
    passes = {b: json.load(open(p)) for b, p in meta["approve"].items()}
    sinks = {b: json.load(open(p)) for b, p in meta["sink"].items()}
    targets = {b: [json.load(open(p)) for p in ps] for b, ps in meta["targets"].items()}
    order = [b for b in ("sqlite", "postgres") if b in runs]
    w("### End to end: submitted, approval email over SMTP, approved on the page, two targets called, erased")
    w("")
    w("| backend | requests erased | seconds (first submission to last erasure) | erasures/s "
      "| submission → erased p50 s | p99 s | submission → approved p50 s | approved → erased p50 s "
      "| approval POST p50 / p99 ms (in the pipeline) | target calls | emails | failed, dead jobs, job retries "
      "| cores busy % | of which other processes % |")
    w("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for b in order:
        r, s, ts = runs[b], sinks[b], targets[b]
        calls = sum(t["calls"] for t in ts)
        dead = sum(j["dead"] for j in r["jobs"].values())
        retried = sum(j["retried"] for j in r["jobs"].values())
        failed = r["states"].get("failed", 0)
        w(f"| {b} | {r['erased_rows']:,} / {r['n']:,} | {fmt(r['span_s'], 1)} | **{fmt(r['rate'])}** "
          f"| {fmt(r['to_erased_p50_s'], 2)} | {fmt(r['to_erased_p99_s'], 2)} "
          f"| {fmt(r['to_approved_p50_s'], 2)} | {fmt(r['approved_to_erased_p50_s'], 2)} "
          f"| {fmt(r['approve_post_p50_ms'], 1)} / {fmt(r['approve_post_p99_ms'], 1)} "
          f"| {calls:,} | {s['messages']:,} ({s['approval_links']:,} approval) | {failed}, {dead}, {retried} "
          f"| {fmt(r['cpu']['busy_pct'])} | {fmt(r['cpu']['other_pct'])} |")
    w("")
    w("### Where the CPU went during the pipeline (per erased request)")
    w("")
    w("| backend | lethe µs | database µs | SMTP sink µs | targets µs | driver µs | all µs | interrupts % | iowait % |")
    w("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for b in order:
        c, n = runs[b]["cpu"], max(runs[b]["erased_rows"], 1)
        db = c["pg_s"] if b == "postgres" else None
        tg = (c.get("target1_s") or 0) + (c.get("target2_s") or 0)
        total = c["lethe_s"] + (db or 0) + (c.get("sink_s") or 0) + tg + c["driver_s"]
        w(f"| {b} | {us_per(c['lethe_s'], n)} | {us_per(db, n) if db is not None else '(inside lethe)'} "
          f"| {us_per(c.get('sink_s'), n)} | {us_per(tg, n)} | {us_per(c['driver_s'], n)} "
          f"| {us_per(total, n)} | {fmt(c['irq_pct'])} | {fmt(c['iowait_pct'])} |")
    w("")
    w("How the run went (every 2 s: requests submitted, approved and erased by then; the cores' busy "
      "share in those 2 s): the start, with no approval before the first email, and the end, the "
      "last requests' target calls and receipts, leave the cores part idle.")
    w("")
    w("| backend | s | submitted | approved | erased | cores busy % |")
    w("|---|---:|---:|---:|---:|---:|")
    for b in order:
        for row in progress_windows(runs[b].get("progress") or [], 2.0):
            w(f"| {b} | {row[0]:.0f} | {row[1]:,} | {row[2]:,} | {row[3]:,} | {row[4]:.0f} |")
    w("")
    for b in order:
        r = runs[b]
        if r.get("vacuum_every_s"):
            w(f"{b}: the server runs with `autovacuum = off`, so the driver ran `VACUUM (ANALYZE)` on lethe's "
              f"busy tables every {r['vacuum_every_s']:.0f} s in its place ({r['vacuums']} times, "
              f"{r['vacuum_s']:.1f} s in all; its CPU counts as the database's).")
            w("")
    pgs = [(b, runs[b]) for b in order if runs[b].get("pg_stats")]
    if pgs:
        w("PostgreSQL's own counters (pg_stat_database) per erased request, over the pipeline run:")
        w("")
        w("| backend | transactions committed | rolled back | rows returned by scans | rows fetched "
          "| rows inserted | rows updated | buffer hits |")
        w("|---|---:|---:|---:|---:|---:|---:|---:|")
        for b, r in pgs:
            st, n = r["pg_stats"], max(r["erased_rows"], 1)
            w(f"| {b} | {st['xact_commit'] / n:.1f} | {st['xact_rollback'] / n:.2f} "
              f"| {st['tup_returned'] / n:,.0f} | {st['tup_fetched'] / n:,.0f} | {st['tup_inserted'] / n:.1f} "
              f"| {st['tup_updated'] / n:.1f} | {st['blks_hit'] / n:,.0f} |")
        w("")
        w("Per table (pg_stat_user_tables), per erased request: where the rows read by scans came from:")
        w("")
        w("| backend | table | sequential scans | rows read by them | index scans | rows fetched by them "
          "| rows updated | of them HOT |")
        w("|---|---|---:|---:|---:|---:|---:|---:|")
        for b, r in pgs:
            n = max(r["erased_rows"], 1)
            busy = sorted((r.get("pg_tables") or {}).items(),
                          key=lambda kv: -(kv[1]["seq_tup_read"] + kv[1]["idx_tup_fetch"]))
            for t, c in busy[:8]:
                if c["seq_scan"] + c["idx_scan"] + c["n_tup_upd"] == 0:
                    continue
                w(f"| {b} | {t} | {c['seq_scan'] / n:.2f} | {c['seq_tup_read'] / n:,.1f} "
                  f"| {c['idx_scan'] / n:.1f} | {c['idx_tup_fetch'] / n:,.1f} "
                  f"| {c['n_tup_upd'] / n:.1f} | {c['n_tup_hot_upd'] / n:.1f} |")
        w("")
    w("### Approval decisions on their own (the page's POST, `action=approve_all`, each token once)")
    w("")
    w("| backend | connections | decisions | decisions/s | p50 ms | p99 ms | lethe µs | database µs "
      "| client (load generator) µs | cores busy % | of which other processes % |")
    w("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for b in order:
        p = passes.get(b)
        if not p:
            continue
        c, n = p["cpu"], max(p["decided"], 1)
        w(f"| {b} | {p['connections']} | {p['decided']:,} | **{fmt(p['rate'])}** | {fmt(p['p50_ms'], 2)} "
          f"| {fmt(p['p99_ms'], 2)} | {us_per(c['lethe_s'], n)} "
          f"| {us_per(c['pg_s'], n) if c['pg_s'] is not None else '(inside lethe)'} | {us_per(c['client_s'], n)} "
          f"| {fmt(c['busy_pct'])} | {fmt(c['other_pct'])} |")
    w("")
    w("### Jobs of the pipeline's tenant, after the run")
    w("")
    w("| backend | job kind | rows | done | dead | run more than once |")
    w("|---|---|---:|---:|---:|---:|")
    for b in order:
        for k, j in runs[b]["jobs"].items():
            w(f"| {b} | {k} | {j['rows']:,} | {j['done']:,} | {j['dead']:,} | {j['retried']:,} |")
    w("")
    w("Pipeline: the driver (bench/peers, one thread) submits N requests over HTTP (16 keep-alive "
      "connections, a unique subject each) to a `privacy_contact` tenant with two webhook targets; lethe's workers mail each approval "
      "link over SMTP to a sink on loopback (bench/peers, one thread), which hands it to the driver; "
      "the driver POSTs the approval form (16 connections) as each link arrives; lethe's workers call "
      "both targets (HTTP servers on loopback, bench/peers, one thread each, that check the HMAC "
      "signature and answer 200); the run ends when every "
      "request is `erased`. Rates and latencies are from the database's `received_at`, "
      "`approved_at` and `erased_at`. The approval pass: a second tenant without targets (so no "
      "erasure work runs behind it), N requests submitted and their links caught first, then a "
      "Python asyncio client POSTs each token once. Rate limits are off for the run (`LETHE_RATE_LIMIT_PER_MINUTE=0`: every "
      "approval comes from 127.0.0.1). CPU µs are user + system time per erased request (or per "
      "decision); \"other processes\" is busy time no party of the run used.")
    w("")
    w(f"Command: `{meta['command']}`")
    emit(out, args.out)


# ---------------------------------------------------------------- main


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd_name", required=True)

    p = sub.add_parser("smtp-rate")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--n", type=int, default=2000)
    p.add_argument("--connections", type=int, default=4)
    p.add_argument("--seconds", type=float, default=60)
    p.set_defaults(fn=smtp_rate)

    p = sub.add_parser("drive")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--key", required=True)
    p.add_argument("--tenant", required=True)
    p.add_argument("--db", required=True, help="SQLite file or PostgreSQL URL")
    p.add_argument("--pgdb", help="PostgreSQL database whose backends' CPU to count")
    p.add_argument("--lethe-pid", type=int, required=True)
    p.add_argument("--pids", default="{}", help='JSON {"name": pid} of other parties')
    p.add_argument("--links", required=True)
    p.add_argument("--links-offset", type=int, default=0)
    p.add_argument("--n", type=int, required=True)
    p.add_argument("--run", required=True)
    p.add_argument("--submit-concurrency", type=int, default=16)
    p.add_argument("--approve-concurrency", type=int, default=16)
    p.add_argument("--timeout", type=float, required=True)
    p.add_argument("--peers", required=True, help="the bench-peers binary (its drive subcommand)")
    p.add_argument("--vacuum-every", type=float, default=10,
                   help="seconds between VACUUM (ANALYZE) runs when the server's autovacuum is off")
    p.add_argument("--out", required=True)
    p.set_defaults(fn=lambda a: asyncio.run(drive(a)))

    p = sub.add_parser("finalize")
    p.add_argument("--db", required=True)
    p.add_argument("--tenant", required=True)
    p.add_argument("--out", required=True)
    p.set_defaults(fn=finalize)

    p = sub.add_parser("submit-and-collect")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--key", required=True)
    p.add_argument("--links", required=True)
    p.add_argument("--links-offset", type=int, required=True)
    p.add_argument("--tokens", required=True)
    p.add_argument("--n", type=int, required=True)
    p.add_argument("--run", required=True)
    p.add_argument("--timeout", type=float, required=True)
    p.set_defaults(fn=lambda a: asyncio.run(submit_only(a)))

    p = sub.add_parser("approve-pass")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--tokens", required=True)
    p.add_argument("--connections", type=int, default=16)
    p.add_argument("--seconds", type=float, required=True, help="bound on the whole pass")
    p.add_argument("--lethe-pid", type=int, required=True)
    p.add_argument("--pgdb")
    p.add_argument("--out", required=True)
    p.set_defaults(fn=lambda a: asyncio.run(approve_pass(a)))

    p = sub.add_parser("report")
    p.add_argument("--meta", required=True)
    p.add_argument("--out")
    p.set_defaults(fn=report)

    args = ap.parse_args()
    args.fn(args)


if __name__ == "__main__":
    main()
