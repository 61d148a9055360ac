#!/usr/bin/env python3
"""Helpers of bench/run: start lethe and time it, wrap a load run with CPU and
memory sampling, the raw SQLite insert loop, the disk's fsync rate, and the
report. Standard library only.

Every loop here is bounded in time (and the load loops also in count).
"""

import argparse
import http.client
import json
import math
import os
import random
import socket
import sqlite3
import statistics
import subprocess
import sys
import threading
import time

CLK_TCK = os.sysconf("SC_CLK_TCK")


# ---------------------------------------------------------------- processes


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def healthz(port, timeout=0.5):
    try:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
        c.request("GET", "/healthz")
        status = c.getresponse().status
        c.close()
        return status
    except OSError:
        return None


def spawn(args):
    """Start a command (lethe serve), write its pid, wait until /healthz
    answers 200, print the milliseconds from exec to that answer."""
    log = open(args.log, "ab")
    t0 = time.perf_counter()
    p = subprocess.Popen(args.cmd, stdout=log, stderr=log, stdin=subprocess.DEVNULL)
    with open(args.pidfile, "w") as f:
        f.write(str(p.pid))
    deadline = t0 + args.timeout
    while time.perf_counter() < deadline:
        if p.poll() is not None:
            sys.exit(f"the server exited with status {p.returncode}; see {args.log}")
        if healthz(args.port) == 200:
            print(f"{(time.perf_counter() - t0) * 1000:.1f}")
            return
        time.sleep(0.001)
    sys.exit(f"the server did not answer /healthz within {args.timeout} s; see {args.log}")


def proc_status(pid, field):
    """A kB field of /proc/PID/status (VmRSS, VmHWM), or None."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def proc_cpu(pid):
    """(utime+stime, cutime+cstime) of a process, in seconds."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0, 0.0
    # fields[0] is field 3 (state): utime is field 14, cutime field 16.
    u, s, cu, cs = (int(x) for x in fields[11:15])
    return (u + s) / CLK_TCK, (cu + cs) / CLK_TCK


def ctx_switches(pid):
    total = 0
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return 0
    for t in tasks:
        try:
            with open(f"/proc/{pid}/task/{t}/status") as f:
                for line in f:
                    if "ctxt_switches" in line:
                        total += int(line.split()[1])
        except OSError:
            pass
    return total


def postgres_cpu(dbname):
    """CPU seconds, by pid, of the PostgreSQL processes that work for
    database `dbname` (its backends and autovacuum workers, named in their
    process titles) and of the shared WAL writer, checkpointer and background
    writer. Backends of other databases (other users of the same server) are
    left out."""
    found = {}
    shared = (": walwriter", ": checkpointer", ": background writer")
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/comm") as f:
                if f.read().strip() != "postgres":
                    continue
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                title = f.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if dbname in title.split() or any(t in title for t in shared):
            found[pid] = proc_cpu(pid)[0]
    return found


def machine_cpu():
    """(busy, iowait, total, interrupts) jiffies of all cores since boot.
    Interrupt time (irq, softirq: on loopback that is mostly the network
    stack) is busy time that no process is charged with."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    user, nice, system, idle, iowait, irq, softirq, steal = (v + [0] * 8)[:8]
    busy = user + nice + system + irq + softirq + steal
    return busy, iowait, busy + idle + iowait, irq + softirq


def snapshot(pid):
    return {
        "machine": machine_cpu(),
        "lethe": proc_cpu(pid)[0] if pid else 0.0,
        "lethe_cs": ctx_switches(pid) if pid else 0,
        "t": time.perf_counter(),
    }


def busy_fraction(seconds):
    """Share of all cores busy over the next `seconds` (0..1)."""
    b0, _, t0, _ = machine_cpu()
    time.sleep(seconds)
    b1, _, t1, _ = machine_cpu()
    return (b1 - b0) / max(t1 - t0, 1)


def wait_quiet(args):
    """Wait (at most --timeout seconds) until other processes leave the
    machine mostly idle; print the share of the cores that was busy."""
    end = time.monotonic() + args.timeout
    while True:
        busy = busy_fraction(2)
        if busy * 100 <= args.max_busy or time.monotonic() >= end:
            print(f"{busy * 100:.0f}")
            return


# ---------------------------------------------------------------- load runs


def parse_wrk(out):
    for line in out.splitlines():
        if line.startswith("BENCH_WRK "):
            w = json.loads(line[len("BENCH_WRK "):])
            secs = w["duration_us"] / 1e6
            errors = sum(w[k] for k in w if k.startswith("err_"))
            return {
                "tx": w["requests"],
                "rate": w["requests"] / secs if secs else 0.0,
                "p50_ms": w["p50_us"] / 1000,
                "p99_ms": w["p99_us"] / 1000,
                "max_ms": w["max_us"] / 1000,
                "n201": w["n201"],
                "n200": w["n200"],
                "non2xx": w["nother"],
                "socket_errors": errors - w["err_status"],
            }
    raise SystemExit("wrk printed no BENCH_WRK line:\n" + out)


def percentile(sorted_values, q):
    if not sorted_values:
        return 0.0
    i = min(len(sorted_values) - 1, max(0, round(q / 100 * len(sorted_values)) - 1))
    return sorted_values[i]


HIST_STEP = math.log(1.01)  # latency histogram buckets 1 % wide


def histogram(lat_ms):
    """Log-spaced latency histogram {bucket: count}, mergeable across runs."""
    h = {}
    for v in lat_ms:
        b = int(math.log(max(v, 0.001)) / HIST_STEP)
        h[b] = h.get(b, 0) + 1
    return h


def hist_percentile(h, q):
    """Percentile (ms) of a histogram, at the bucket's upper edge (<= 1 % high)."""
    total = sum(h.values())
    need = q / 100 * total
    seen = 0
    for b in sorted(h, key=int):
        seen += h[b]
        if seen >= need:
            return math.exp((int(b) + 1) * HIST_STEP)
    return 0.0


def parse_pgbench(out, logdir):
    rate = None
    failed = 0
    for line in out.splitlines():
        if line.startswith("tps = "):
            rate = float(line.split()[2])
        if line.startswith("number of failed transactions"):
            failed = int(line.split(":")[1].split()[0])
    if rate is None and "number of transactions actually processed: 0" in out:
        # Not one transaction finished in the run's time (a stalled disk, a
        # very busy machine): that is the measurement, not a broken run.
        print("  note: pgbench finished no transaction in this run", file=sys.stderr)
        rate = 0.0
    if rate is None:
        raise SystemExit("pgbench printed no tps:\n" + out)
    lat = []
    for name in os.listdir(logdir):
        with open(os.path.join(logdir, name)) as f:
            for line in f:
                parts = line.split()
                if len(parts) >= 3 and parts[2].isdigit():
                    lat.append(int(parts[2]))
    lat.sort()
    return {
        "tx": len(lat),
        "rate": rate,
        "p50_ms": percentile(lat, 50) / 1000,
        "p99_ms": percentile(lat, 99) / 1000,
        "max_ms": (lat[-1] / 1000) if lat else 0.0,
        "non2xx": failed,
        "hist": histogram(v / 1000 for v in lat),
    }


def measure(args):
    """Run one load command; record its result with the CPU each party used
    and the lethe process's resident memory, as one JSON line."""
    pid = args.pid or None
    label = json.loads(args.label)
    peak = [proc_status(pid, "VmRSS") or 0] if pid else [0]
    stop = threading.Event()
    # PostgreSQL CPU by pid: the first and the last value seen. A backend that
    # exits (pgbench disconnects at the end) keeps its last sample, at most
    # 100 ms old.
    pg_first = postgres_cpu(args.pgdb) if args.pgdb else {}
    pg_last = dict(pg_first)

    def sample():
        while not stop.wait(0.1):
            if pid:
                rss = proc_status(pid, "VmRSS")
                if rss:
                    peak[0] = max(peak[0], rss)
            if args.pgdb:
                pg_last.update(postgres_cpu(args.pgdb))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    before = snapshot(pid)
    own0 = time.process_time()
    p = subprocess.Popen(args.cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    out = p.stdout.read().decode(errors="replace")
    _, status, usage = os.wait4(p.pid, 0)
    after = snapshot(pid)
    stop.set()
    sampler.join()
    if args.pgdb:
        pg_last.update(postgres_cpu(args.pgdb))
    pg_cpu = sum(v - pg_first.get(p, 0.0) for p, v in pg_last.items())
    client_cpu = usage.ru_utime + usage.ru_stime
    lethe_cpu = after["lethe"] - before["lethe"]
    harness_cpu = time.process_time() - own0  # this sampler's own share
    if os.waitstatus_to_exitcode(status) != 0:
        sys.stderr.write(out)
        raise SystemExit(f"load command failed: {' '.join(args.cmd)}")
    if args.kind == "wrk":
        r = parse_wrk(out)
    elif args.kind == "pgbench":
        r = parse_pgbench(out, args.pglog)
    else:
        r = json.loads(out.strip().splitlines()[-1])
    tx = max(r["tx"], 1)
    (b0, w0, t0, i0), (b1, w1, t1, i1) = before["machine"], after["machine"]
    span = max(t1 - t0, 1)
    # The machine's busy time, less what this run's parties used: the share
    # of the cores other processes (other users of the machine) took.
    wall = after["t"] - before["t"]
    ncpu = os.cpu_count() or 1
    ours = lethe_cpu + pg_cpu + client_cpu + harness_cpu
    busy_s = (b1 - b0) / CLK_TCK
    irq_s = (i1 - i0) / CLK_TCK
    r.update(label)
    r.update(
        {
            "wall_s": wall,
            "client_cpu_us": client_cpu / tx * 1e6,
            "lethe_cpu_us": lethe_cpu / tx * 1e6 if pid else None,
            "lethe_cs": (after["lethe_cs"] - before["lethe_cs"]) / tx if pid else None,
            "pg_cpu_us": pg_cpu / tx * 1e6 if args.pgdb else None,
            "busy_pct": 100 * (b1 - b0) / span,
            "ours_pct": 100 * ours / (wall * ncpu),
            "irq_pct": 100 * irq_s / (wall * ncpu),
            "other_pct": max(0.0, 100 * (busy_s - irq_s - ours) / (wall * ncpu)),
            "iowait_pct": 100 * (w1 - w0) / span,
            "peak_rss_kb": peak[0] if pid else None,
        }
    )
    with open(args.out, "a") as f:
        f.write(json.dumps(r) + "\n")
    print(
        f"  {label.get('what')}{' (part %d)' % label['part'] if 'part' in label else ''} "
        f"c={label.get('c')}: {r['rate']:.0f}/s "
        f"p50 {r['p50_ms']:.2f} ms p99 {r['p99_ms']:.2f} ms "
        f"non-2xx {r.get('non2xx', 0)} dup {r.get('n200', 0)} "
        f"cores busy {r['busy_pct']:.0f}% (others {r['other_pct']:.0f}%)"
    )


# ---------------------------------------------------------------- raw SQLite


def uuid7_like():
    ms = time.time_ns() // 1_000_000
    r = random.getrandbits(80)
    h = f"{ms:012x}7{r:019x}"[:32]
    return f"{h[0:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:32]}"


def hex64():
    return f"{random.getrandbits(256):064x}"


def sqlite_raw(args):
    """The writes of one lethe submission, in one BEGIN IMMEDIATE
    transaction, in a tight loop on one connection with lethe's pragmas.
    Prints one JSON line."""
    db = sqlite3.connect(args.db, isolation_level=None, check_same_thread=False)
    db.executescript(
        "PRAGMA busy_timeout = 5000; PRAGMA journal_mode = WAL; "
        f"PRAGMA synchronous = {args.sync}; PRAGMA foreign_keys = ON; "
        "PRAGMA cache_size = -16000; PRAGMA temp_store = MEMORY;"
    )
    tenant = args.tenant
    ins_req = (
        "INSERT INTO erasure_requests (id, tenant_id, subject_hash, subject_id, subject_email, "
        "initiator, reason, callback_url, state, batch_id, idempotency_key, fingerprint, "
        "received_at, due_at, updated_at, closed_at, audit_seq, audit_head) "
        "VALUES (?, ?, ?, ?, NULL, 'subject', NULL, NULL, 'awaiting_approval', NULL, NULL, ?, "
        "?, ?, ?, NULL, 2, ?) ON CONFLICT DO NOTHING"
    )
    ins_audit = (
        "INSERT INTO audit_events (id, tenant_id, request_id, seq, from_state, to_state, event, "
        "actor_kind, actor_id, detail, at, prev_hash, hash) VALUES "
        "(?, ?, ?, 1, NULL, 'pending', 'submit', 'api_key', ?, NULL, ?, ?, ?), "
        "(?, ?, ?, 2, 'pending', 'awaiting_approval', 'request_approval', 'system', 'policy', "
        "'{\"approval_policy\":\"privacy_contact\"}', ?, ?, ?)"
    )
    # The two jobs a privacy_contact submission queues: the approval email
    # and the follow-up that reminds, then escalates (one multi-row insert,
    # as lethe writes them).
    job_row = "(?, ?, ?, ?, ?, ?, 0, 12, NULL, NULL, ?, NULL, 0)"
    ins_job = (
        "INSERT INTO jobs (id, tenant_id, request_id, kind, payload, run_at, attempts, "
        "max_attempts, lease_until, last_error, created_at, finished_at, dead) VALUES "
        + ", ".join([job_row] * 2)
    )
    job_kinds = [
        ("send_approval_email", "{}", 0),
        ("approval_follow_up", None, 3),
    ]
    key_id = uuid7_like()
    lat = []
    n = 0
    t_start = time.perf_counter()
    t_end = t_start + args.seconds
    while n < args.max_tx:
        t0 = time.perf_counter()
        if t0 >= t_end:
            break
        now = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime()) + ".000000"
        rid, h1, h2 = uuid7_like(), hex64(), hex64()
        db.execute("BEGIN IMMEDIATE")
        db.execute(ins_req, (rid, tenant, hex64(), f"bench-{n}", hex64(), now, now, now, h2))
        db.execute(
            ins_audit,
            (uuid7_like(), tenant, rid, key_id, now, "0" * 64, h1,
             uuid7_like(), tenant, rid, now, h1, h2),
        )
        params = []
        since = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()) + ".000000Z"
        for kind, payload, days in job_kinds:
            if payload is None:
                payload = '{"since":"%s","reminders_sent":0}' % since
            run_at = time.strftime(
                "%Y-%m-%d %H:%M:%S", time.gmtime(time.time() + days * 86400)) + ".000000"
            params += [uuid7_like(), tenant, rid, kind, payload, run_at, now]
        db.execute(ins_job, params)
        db.execute("COMMIT")
        lat.append(time.perf_counter() - t0)
        n += 1
    secs = time.perf_counter() - t_start
    db.close()
    lat.sort()
    print(
        json.dumps(
            {
                "tx": n,
                "rate": n / secs,
                "p50_ms": percentile(lat, 50) * 1000,
                "p99_ms": percentile(lat, 99) * 1000,
                "max_ms": (lat[-1] * 1000) if lat else 0.0,
                "non2xx": 0,
                "hist": histogram(v * 1000 for v in lat),
            }
        )
    )


def sqlite_setup(args):
    """The tenant row the raw loop's requests belong to."""
    db = sqlite3.connect(args.db)
    db.execute(
        "INSERT INTO tenants (id, name, approval_policy, contact_email, locale, created_at, "
        "updated_at) VALUES (?, 'bench raw', 'privacy_contact', 'dpo@example.org', 'en', "
        "datetime('now'), datetime('now'))",
        (args.tenant,),
    )
    db.commit()
    db.close()


# Requests; their "submit" events; all audit events; all jobs. The job
# workers run during the benchmark (approval emails go to the outbox), adding
# events and jobs of their own, so only the first two must match exactly.
COUNT_QUERIES = (
    "SELECT count(*) FROM erasure_requests",
    "SELECT count(*) FROM audit_events WHERE event = 'submit'",
    "SELECT count(*) FROM audit_events",
    "SELECT count(*) FROM jobs",
)


def count_rows(args):
    """Rows per table of a SQLite database (consistency check)."""
    db = sqlite3.connect(args.db)
    out = [db.execute(q).fetchone()[0] for q in COUNT_QUERIES]
    db.close()
    print(" ".join(str(x) for x in out))


def fsync_rate(args):
    """How many 4 KiB write + fdatasync pairs the disk does per second, one
    after another (what bounds a commit that waits for its own flush)."""
    path = os.path.join(args.dir, "fsync-probe")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    block = os.urandom(4096)
    n = 0
    lat = []
    t0 = time.perf_counter()
    end = t0 + args.seconds
    try:
        while n < 1_000_000 and time.perf_counter() < end:
            t = time.perf_counter()
            os.pwrite(fd, block, (n % 256) * 4096)
            os.fdatasync(fd)
            lat.append(time.perf_counter() - t)
            n += 1
    finally:
        os.close(fd)
        os.unlink(path)
    lat.sort()
    print(f"{n / (time.perf_counter() - t0):.0f} {percentile(lat, 50) * 1000:.2f}")


def cpu_gauge(args):
    """The machine's speed at the moment, two ways, each best of three:
    milliseconds of zlib (level 6) over 8 MiB of varied digits on one core
    (arithmetic), and microseconds per round trip of one byte between two
    processes over a pipe (system calls, a wake-up and a switch each way,
    what the service's traffic between its threads, the database and the
    clients is made of). This machine's speed swings between hours, and not
    both ways alike (round 16: the zlib figure moved by 4-10 % while lethe's
    CPU per submission moved by two thirds), so reports carry both: two
    runs' rates compare only when their gauges are close."""
    import zlib
    rnd = random.Random(1)
    data = " ".join(str(rnd.randrange(10**6)) for _ in range(1_200_000)).encode()[: 8 << 20]
    best_zlib = None
    for _ in range(3):
        t = time.perf_counter()
        zlib.compress(data, 6)
        ms = (time.perf_counter() - t) * 1000
        best_zlib = ms if best_zlib is None else min(best_zlib, ms)
    best_trip = None
    trips = 20_000
    for _ in range(3):
        there_r, there_w = os.pipe()
        back_r, back_w = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(there_w)
            os.close(back_r)
            for _ in range(trips):
                os.write(back_w, os.read(there_r, 1))
            os._exit(0)
        os.close(there_r)
        os.close(back_w)
        t = time.perf_counter()
        for _ in range(trips):
            os.write(there_w, b"x")
            os.read(back_r, 1)
        us = (time.perf_counter() - t) / trips * 1e6
        os.waitpid(pid, 0)
        os.close(there_w)
        os.close(back_r)
        best_trip = us if best_trip is None else min(best_trip, us)
    print(f"{best_zlib:.0f} {best_trip:.1f}")


# ---------------------------------------------------------------- report


def fmt(x, digits=0):
    if x is None:
        return "–"
    if isinstance(x, float):
        return f"{x:,.{digits}f}"
    return f"{x:,}"


def merge_parts(rows):
    """A raw run is measured in two halves, before and after lethe's runs at
    the same client count (so drift on the machine hits both alike): merge
    each pair into one row, in the place of its first half."""
    out, index = [], {}
    for r in rows:
        if "part" not in r:
            out.append(r)
            continue
        key = (r["what"], r["c"], r.get("sync"))
        if key not in index:
            index[key] = len(out)
            out.append(dict(r, parts=[r]))
        else:
            out[index[key]]["parts"].append(r)
    for i, r in enumerate(out):
        parts = r.get("parts")
        if not parts:
            continue
        tx = sum(p["tx"] for p in parts)
        secs = sum(p["tx"] / p["rate"] for p in parts if p["rate"])
        wall = sum(p["wall_s"] for p in parts)
        hist = {}
        for p in parts:
            for b, n in p["hist"].items():
                hist[b] = hist.get(b, 0) + n
        m = dict(parts[0])
        m.pop("part")
        m.update(
            tx=tx,
            rate=tx / secs if secs else 0.0,
            rates=[p["rate"] for p in parts],
            p50_ms=hist_percentile(hist, 50),
            p99_ms=hist_percentile(hist, 99),
            max_ms=max(p["max_ms"] for p in parts),
            non2xx=sum(p["non2xx"] for p in parts),
        )
        for k in ("client_cpu_us", "pg_cpu_us"):
            if parts[0].get(k) is not None:
                m[k] = sum(p[k] * p["tx"] for p in parts) / max(tx, 1)
        for k in ("busy_pct", "ours_pct", "irq_pct", "other_pct", "iowait_pct"):
            m[k] = sum(p[k] * p["wall_s"] for p in parts) / wall
        out[i] = m
    return out


def cpu_total(r):
    """CPU time per submission of every party of a run (µs)."""
    return sum(r.get(k) or 0.0 for k in ("lethe_cpu_us", "pg_cpu_us", "client_cpu_us"))


def emit(lines, path=None):
    """Print a report's lines; with `path`, also write them there."""
    text = "\n".join(lines) + "\n"
    sys.stdout.write(text)
    if path:
        with open(path, "w") as f:
            f.write(text)


def report(args):
    rows = merge_parts([json.loads(l) for l in open(args.results) if l.strip()])
    meta = json.load(open(args.meta))
    out = []
    w = out.append
    w(f"## lethe submission benchmark ({meta['mode']}, {meta['seconds']} s per run)")
    w("")
    w(f"{meta['machine']}. lethe {meta['commit']}, {meta.get('build', 'release build')}; "
      f"wrk, lethe and the database share the cores.")
    w("")

    def raw_for(backend, c, what=None):
        for r in rows:
            if r["what"] == (what or f"raw-{backend}") and r["c"] == c and r.get("sync", "FULL") == "FULL":
                return r
        return None

    order = {"sqlite": 0, "postgres": 1, "privacy_contact": 0, "none": 1}
    def process(r):
        return "API only" if r.get("workers", "default") == 0 else "all-in-one"

    lethe_rows = sorted(
        (r for r in rows if r["what"] == "lethe"),
        key=lambda r: (order[r["backend"]], process(r) != "API only", order[r["policy"]], r["c"]),
    )

    w("### Submissions: lethe against the raw database, same writes, same run")
    w("")
    w("| backend | lethe process | tenant policy | clients | lethe req/s | p50 ms | p99 ms | non-2xx | dup (200) "
      "| raw tx/s | raw p50 ms | raw p99 ms | lethe / raw | lethe / raw by CPU "
      "| raw one-statement tx/s | lethe / raw one-statement |")
    w("|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in lethe_rows:
        raw = raw_for(r["backend"], r["c"])
        one = raw_for(r["backend"], r["c"], "raw-postgres-one") if r["backend"] == "postgres" else None
        one_rate = "–"
        one_ratio = "–"
        if one:
            halves = " + ".join(fmt(x) for x in one.get("rates", []))
            one_rate = f"{fmt(one['rate'])} ({halves})" if halves else fmt(one["rate"])
            one_ratio = f"{r['rate'] / one['rate']:.2f}" if one["rate"] else "–"
        ratio = f"{r['rate'] / raw['rate']:.2f}" if raw and raw["rate"] else "–"
        cpu_ratio = f"{cpu_total(raw) / cpu_total(r):.2f}" if raw and cpu_total(r) else "–"
        raw_rate = "–"
        if raw:
            halves = " + ".join(fmt(x) for x in raw.get("rates", []))
            raw_rate = f"{fmt(raw['rate'])} ({halves})" if halves else fmt(raw["rate"])
        w(f"| {r['backend']} | {process(r)} | {r['policy']} | {r['c']} | {fmt(r['rate'])} | {fmt(r['p50_ms'], 2)} "
          f"| {fmt(r['p99_ms'], 2)} | {r['non2xx'] + r.get('socket_errors', 0)} | {r['n200']} "
          f"| {raw_rate} | {fmt(raw['p50_ms'], 2) if raw else '–'} "
          f"| {fmt(raw['p99_ms'], 2) if raw else '–'} | {ratio} | {cpu_ratio} "
          f"| {one_rate} | {one_ratio} |")
    w("")
    w("Raw PostgreSQL: pgbench with as many clients as lethe had, the same inserts "
      "(bench/pg_submit.sql: three INSERTs in one transaction; one-statement: "
      "bench/pg_submit_one.sql, the same rows as the one statement lethe sends). Raw SQLite: one connection in a tight loop (lethe "
      "also writes through one connection, so that is the limit at any client count), "
      "run again next to each client count. Each raw run is measured in two halves, "
      "right before and right after lethe's runs at the same client count (their two "
      "rates in brackets), so that a change on the machine during the runs hits both "
      "sides alike. \"By CPU\": the raw transaction's CPU time (all parties: database, "
      "client) over a lethe submission's (lethe, database, wrk), the rate ratio the "
      "machine's cores would allow; it moves much less with other load on the machine "
      "than the rates do. For SQLite the raw side is a Python loop, whose interpreter "
      "time counts against it.")
    w("")
    w("lethe processes: \"API only\" runs with `LETHE_JOB_WORKERS=0` (an API replica "
      "whose job workers run elsewhere) and makes only the submission's own writes, the "
      "same rows as the raw runs: the comparison the ratios are for. \"all-in-one\" is "
      "`lethe serve` as it starts by default, whose job workers also send each "
      "request's approval email (to the file outbox) while the load runs, on the same cores "
      "and database. Each has its own database; before every measured run the benchmark "
      "waits for the all-in-one process's workers to finish what earlier runs queued.")
    w("")
    w("### Where the CPU goes (per submission or transaction)")
    w("")
    w("| run | clients | rate/s | lethe CPU µs | database CPU µs | load generator CPU µs "
      "| all parties CPU µs | lethe context switches | cores busy % | of which interrupts % "
      "| of which other processes % | iowait % |")
    w("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        if r["what"] == "lethe":
            name = f"lethe {r['backend']} {process(r)} {r['policy']}"
        elif r["what"] == "raw-sqlite":
            name = f"raw SQLite loop, synchronous={r['sync']}"
        elif r["what"] == "raw-postgres-one":
            name = "raw PostgreSQL (pgbench), one statement"
        else:
            name = "raw PostgreSQL (pgbench), three INSERTs"
        client = fmt(r["client_cpu_us"])
        db_cpu = fmt(r["pg_cpu_us"])
        if r["what"] == "raw-sqlite":
            db_cpu, client = f"{client} (one process)", "(same)"
        elif r["what"] == "lethe" and r["backend"] == "sqlite":
            db_cpu = "(inside lethe)"
        clients = f"1 (next to {r['c']})" if r["what"] == "raw-sqlite" else r["c"]
        w(f"| {name} | {clients} | {fmt(r['rate'])} | {fmt(r['lethe_cpu_us'])} | {db_cpu} "
          f"| {client} | {fmt(cpu_total(r))} | {fmt(r['lethe_cs'], 1)} | {fmt(r['busy_pct'])} | {fmt(r.get('irq_pct'))} "
          f"| {fmt(r['other_pct'])} "
          f"| {fmt(r['iowait_pct'])} |")
    w("")
    w("CPU µs are CPU time (user + system) per submission. Cores busy % is the share of "
      "all cores in use during the run (100 = every core); \"interrupts\" is interrupt "
      "time no process is charged with (mostly the loopback network stack); \"other "
      "processes\" is the rest that no party of this run used (other work on the "
      "machine), which makes a run slower. "
      "PostgreSQL CPU counts the benchmark database's backends and the shared WAL writer, "
      "checkpointer and background writer.")
    w("")
    w("### Footprint")
    w("")
    w("| figure | SQLite | PostgreSQL |")
    w("|---|---:|---:|")
    fp = meta["footprint"]
    mib = lambda kb: f"{kb / 1024:.1f} MiB" if kb else "–"
    w(f"| release binary | {meta['binary_mib']:.1f} MiB | (same binary) |")
    w(f"| cold start, empty database (exec to /healthz 200, includes migrations) "
      f"| {fp['sqlite']['first_start_ms']:.0f} ms | {fp['postgres']['first_start_ms']:.0f} ms |")
    w(f"| restart, schema present (exec to /healthz 200) "
      f"| {fp['sqlite']['restart_ms']:.0f} ms | {fp['postgres']['restart_ms']:.0f} ms |")
    w(f"| resident memory idle (VmRSS after start) | {mib(fp['sqlite']['idle_rss_kb'])} "
      f"| {mib(fp['postgres']['idle_rss_kb'])} |")
    peak = {b: max([r["peak_rss_kb"] or 0 for r in rows
                    if r["what"] == "lethe" and r["backend"] == b and r["c"] == max(meta["concurrency"])]
                   or [0]) for b in ("sqlite", "postgres")}
    w(f"| resident memory peak, sampled every 100 ms during the {max(meta['concurrency'])}-client runs "
      f"| {mib(peak['sqlite'])} | {mib(peak['postgres'])} |")
    w(f"| VmHWM (high-water mark) at the end | {mib(fp['sqlite']['hwm_kb'])} "
      f"| {mib(fp['postgres']['hwm_kb'])} |")
    w("")
    w("### Bounds")
    w("")
    w("| figure | value |")
    w("|---|---:|")
    w(f"| cores busy before the run (other processes) | {meta['background_busy_pct']} % |")
    (f0, l0), (f1, l1) = meta["fsync"]
    w(f"| disk: 4 KiB write + fdatasync, one after another, at the start / end of the run "
      f"| {fmt(f0)} / {fmt(f1)} per s (p50 {l0:.2f} / {l1:.2f} ms) |")
    (z0, p0), (z1, p1) = meta.get("cpu_gauge", [[None, None], [None, None]])
    w(f"| speed gauge (`bench/helper.py cpu-gauge`, best of 3, lower is faster): zlib over 8 MiB on one core, "
      f"at the start / end of the run | {fmt(z0)} / {fmt(z1)} ms |")
    w(f"| speed gauge: one byte's round trip between two processes over a pipe, at the start / end of the run "
      f"| {fmt(p0, 1)} / {fmt(p1, 1)} µs |")
    for r in rows:
        if r["what"] == "raw-sqlite":
            w(f"| raw SQLite loop, synchronous={r['sync']} (next to {r['c']} clients) "
              f"| {fmt(r['rate'])} tx/s |")
    w("")
    w(f"Command: `{meta['command']}`")
    emit(out, args.out)


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd_name", required=True)

    sub.add_parser("free-port").set_defaults(fn=lambda a: print(free_port()))

    p = sub.add_parser("spawn")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--pidfile", required=True)
    p.add_argument("--log", required=True)
    p.add_argument("--timeout", type=float, default=60)
    p.add_argument("cmd", nargs=argparse.REMAINDER)
    p.set_defaults(fn=spawn)

    p = sub.add_parser("rss")
    p.add_argument("pid")
    p.add_argument("--field", default="VmRSS")
    p.set_defaults(fn=lambda a: print(proc_status(a.pid, a.field) or 0))

    p = sub.add_parser("measure")
    p.add_argument("--pid", type=int, default=0)
    p.add_argument("--kind", choices=["wrk", "pgbench", "json"], required=True)
    p.add_argument("--pglog")
    p.add_argument("--pgdb", help="PostgreSQL database whose backends' CPU to count")
    p.add_argument("--label", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("cmd", nargs=argparse.REMAINDER)
    p.set_defaults(fn=measure)

    p = sub.add_parser("wait-quiet")
    p.add_argument("--max-busy", type=float, default=25)
    p.add_argument("--timeout", type=float, default=0)
    p.set_defaults(fn=wait_quiet)

    p = sub.add_parser("sqlite-setup")
    p.add_argument("--db", required=True)
    p.add_argument("--tenant", required=True)
    p.set_defaults(fn=sqlite_setup)

    p = sub.add_parser("sqlite-raw")
    p.add_argument("--db", required=True)
    p.add_argument("--tenant", required=True)
    p.add_argument("--seconds", type=float, required=True)
    p.add_argument("--sync", choices=["FULL", "NORMAL"], default="FULL")
    p.add_argument("--max-tx", type=int, default=2_000_000)
    p.set_defaults(fn=sqlite_raw)

    p = sub.add_parser("count-rows")
    p.add_argument("--db", required=True)
    p.set_defaults(fn=count_rows)

    sub.add_parser("cpu-gauge").set_defaults(fn=cpu_gauge)
    p = sub.add_parser("fsync-rate")
    p.add_argument("--dir", required=True)
    p.add_argument("--seconds", type=float, default=2)
    p.set_defaults(fn=fsync_rate)

    p = sub.add_parser("report")
    p.add_argument("--results", required=True)
    p.add_argument("--meta", required=True)
    p.add_argument("--out")
    p.set_defaults(fn=report)

    args = ap.parse_args()
    if getattr(args, "cmd", None) and args.cmd[:1] == ["--"]:
        args.cmd = args.cmd[1:]
    args.fn(args)


if __name__ == "__main__":
    main()
