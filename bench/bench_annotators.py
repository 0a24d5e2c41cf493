"""Annotators at speed: N gradio_client sessions rate, prune, undo, rename and edit for a while, against one or more
servers this script starts on 127.0.0.1 on one database, while another client keeps a search running; then every
acknowledged action is looked up in the database, and every acknowledged rating and edit is checked for a silent
overwrite.

    python bench/bench_annotators.py [--db sqlite|postgres|URL] [--servers 1] [--clients 16] [--seconds 60]
                                     [--mode both|closed|paced] [--think-ms 2000] [--client gradio|gradio-default|http]
                                     [--max-actions 400] [--no-search]

Several instances, one database (issue 26's load run): `--servers 2 --db postgres` starts two `serve` processes on
one fresh scratch PostgreSQL database (created for the run, dropped at its end, so a run repeats), and spreads the
clients over them (client i talks to server i mod N), as a team behind a load balancer would be; the search runs on
the first. The report gives the latency per server and overall, with the load average before, during (its highest
one-minute figure) and after.

Two ways to load the server, side by side in one run (`--mode both`, the default; each runs for --seconds):
- closed: each client sends its next action the moment the last one is acknowledged (no think time), so the
  latency is about clients / server throughput: a saturation test, not what a person does;
- paced: each client waits a human-like pause between actions (uniform in 0.5-1.5 x --think-ms), so the server sees
  the offered load a team of fast annotators makes; the table says how many actions/s that was.

Clients (--client): `gradio` is gradio_client with one shared, verifying TLS context (the default);
`gradio-default` is gradio_client as constructed by default, which builds a new TLS context (about 40 ms of CPU) for
each of a call's two HTTP requests, even for an http:// URL; `http` calls the queue as the browser does (a kept-alive
connection, queue/join, then the session's SSE stream), which is what an annotator in the web page waits for.

Every client is its own process (as every annotator is another machine), apart from the server's process, so no
client shares a server's GIL. Each server runs with GRADIO_PROFILING=1, and each acknowledged call is matched to
the server's trace of it by event id, so the latency splits into: queue wait (in Gradio's queue before a worker
took it), handler (Gradio's process_api: our function and Gradio's pre/post-processing), and the rest (HTTP join,
the SSE message back, gradio_client's own polling, client-side CPU). CPU seconds of the server and of the clients
per action and the load average before/after come with each mode.

Prints, per mode and action kind: acknowledged, stored, intended version conflicts, other errors, p50/p95/max latency
(ms) and the split; then per server; then lost (acknowledged, not in the database) and silent overwrites (a stored
rating other than its annotator's last acknowledged one for that step, with no unacknowledged try of hers after it;
an edited step whose stored text is not the text acknowledged). Bounded: each client stops after --seconds or
--max-actions, whichever comes first; the servers are stopped and a scratch database removed at the end.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing as mp
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from reasoning.http_client import free_port  # noqa: E402 - after the path above

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/test"
PROBLEMS = ["Use 4 7 8 8 to make 24.", "Use 2 3 4 6 to make 24.", "Use 1 5 5 5 to make 24.",
            "Use 3 3 8 8 to make 24."]
# What an annotator does, by share of actions; a prune is followed by its undo (so the tree stays whole for others).
MIX = (("rate", 0.75), ("prune", 0.12), ("rename", 0.05), ("edit_step", 0.08))
KINDS = ("rate", "prune", "undo", "rename", "edit_step")
CHEAP = ("rate", "prune", "undo", "rename")  # short transactions; edit_step runs the PRM (the model slot)
APIS = ("rate", "prune", "undo", "rename_session", "edit_step")
CLIENTS = {"gradio": "gradio_client, one shared TLS context", "gradio-default": "gradio_client as constructed by default",
           "http": "browser-like: kept-alive HTTP, queue/join + SSE"}
CLK = os.sysconf("SC_CLK_TCK")


@dataclass
class Outcome:
    kind: str
    ms: float
    ok: bool
    conflict: bool = False
    error: str = ""
    key: tuple = ()
    event_id: str = ""
    intent: tuple = ()  # what was asked, known before the answer: (session, node, rating, annotator) for a rating
    server: int = 0


@dataclass
class Phase:
    """One mode's run: what the clients saw, what the server traced, and the CPU and load around it."""

    mode: str
    think_ms: float
    outcomes: list[Outcome] = field(default_factory=list)
    seconds: float = 0.0
    client_cpu: float = 0.0
    server_cpu: float = 0.0
    traces: dict[str, dict] = field(default_factory=dict)
    load: tuple[float, float] = (0.0, 0.0)
    load_peak: float = 0.0  # the highest one-minute load average sampled during the run
    stored: dict[str, int] = field(default_factory=dict)
    overwritten: dict[str, int] = field(default_factory=dict)
    checked: dict[str, int] = field(default_factory=dict)


def wait_up(url: str, seconds: float = 300) -> None:
    end = time.time() + seconds
    while time.time() < end:
        try:
            urllib.request.urlopen(url, timeout=2)
            return
        except OSError:
            time.sleep(1)
    raise SystemExit(f"the server at {url} did not come up in {seconds:.0f} s")


def scratch_db(kind: str, tmp: Path):
    """(URL, cleanup) for `sqlite`, `postgres` (a scratch database on the local server) or a given URL."""
    if kind == "sqlite":
        return f"sqlite:///{tmp / 'bench.db'}", lambda: None
    if kind != "postgres":
        return kind, lambda: None
    import psycopg

    name = f"bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as c:
        c.execute(f'CREATE DATABASE "{name}"')

    def drop() -> None:
        with psycopg.connect(PG_ADMIN, autocommit=True) as c:
            c.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    return f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}", drop


def pick(rng: random.Random) -> str:
    x, acc = rng.random(), 0.0
    for kind, share in MIX:
        acc += share
        if x < acc:
            return kind
    return MIX[0][0]


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process (and its reaped children) from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(x) for x in fields[11:15]) / CLK


# -- one annotator --------------------------------------------------------------------------------------------
class CallError(Exception):
    def __init__(self, message: str, event_id: str = ""):
        super().__init__(message)
        self.event_id = event_id


class BrowserLike:
    """The browser's way of calling the queue: one kept-alive HTTP connection; per call, POST queue/join, then read
    the session's SSE stream (queue/data) until this event's `process_completed` (the server closes the stream when
    the session has nothing pending, and the browser opens it again for its next event)."""

    def __init__(self, url: str, fn_index: dict[str, int]):
        import httpx

        self.url, self.fn_index, self.session = url, fn_index, uuid.uuid4().hex
        self.http = httpx.Client(timeout=httpx.Timeout(600.0, connect=30.0))

    def invoke(self, api: str, args: tuple) -> tuple[object, str]:
        body = {"data": list(args), "fn_index": self.fn_index[api], "session_hash": self.session,
                "event_data": None, "trigger_id": None}
        joined = self.http.post(self.url + "gradio_api/queue/join", json=body)
        joined.raise_for_status()
        eid = joined.json()["event_id"]
        with self.http.stream("GET", self.url + "gradio_api/queue/data", params={"session_hash": self.session}) as r:
            for line in r.iter_lines():
                if not line.startswith("data:"):
                    continue
                msg = json.loads(line[5:])
                if msg.get("msg") == "process_completed" and msg.get("event_id") == eid:
                    out = msg.get("output") or {}
                    if not msg.get("success"):
                        raise CallError(str(out.get("error") or out), eid)
                    return out["data"][0], eid
        raise CallError("the event stream closed before the result", eid)

    def close(self) -> None:
        self.http.close()


class GradioClient:
    """gradio_client, as scripts use it. `shared_tls`: one verifying TLS context for every request; without it,
    gradio_client builds a new one (certificate store load, about 40 ms of CPU here) for each of a call's two HTTP
    requests, even for an http:// URL."""

    def __init__(self, url: str, shared_tls: bool):
        from gradio_client import Client

        kwargs = {}
        if shared_tls:
            import ssl

            import certifi

            kwargs["ssl_verify"] = ssl.create_default_context(cafile=certifi.where())
        self.client = Client(url, verbose=False, **kwargs)

    def invoke(self, api: str, args: tuple) -> tuple[object, str]:
        job = self.client.submit(*args, api_name=f"/{api}")
        try:
            return job.result(), getattr(job.communicator, "event_id", "") or ""
        except Exception as exc:  # noqa: BLE001 - passed on with the event id
            raise CallError(str(exc), getattr(job.communicator, "event_id", "") or "") from exc

    def close(self) -> None:
        self.client.close()


def connect(kind: str, url: str, fn_index: dict[str, int]):
    return BrowserLike(url, fn_index) if kind == "http" else GradioClient(url, shared_tls=kind == "gradio")


def call(client, kind: str, args: tuple, out: list[Outcome], key_of=None, api: str = "", intent: tuple = ()):
    """One API call (`/kind` unless `api` is given), timed from submit to result, with the event id the server
    traced it under and what it asked for (`intent`, kept for failures too)."""
    t0 = time.perf_counter()
    try:
        value, eid = client.invoke(api or kind, args)
        key = key_of(value) if key_of else ()
        out.append(Outcome(kind, 1000 * (time.perf_counter() - t0), True, key=key, event_id=eid, intent=intent))
        return value
    except Exception as exc:  # noqa: BLE001 - every failure is counted and shown
        text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        conflict = "changed" in text or "reload" in text or "already pruned" in text
        out.append(Outcome(kind, 1000 * (time.perf_counter() - t0), False, conflict, text[:160],
                           event_id=getattr(exc, "event_id", ""), intent=intent))
        return None


def annotate(client, idx: int, sessions: dict[int, list[str]], deadline: float, max_actions: int,
             think_ms: float, out: list[Outcome]) -> None:
    rng = random.Random(idx)
    name = f"annotator-{idx}"
    versions: dict[tuple[int, str], int] = {}
    pause = (lambda: rng.uniform(0.5, 1.5) * think_ms / 1000) if think_ms > 0 else (lambda: 0.0)
    if think_ms > 0:  # annotators do not start in step
        time.sleep(min(rng.uniform(0, think_ms / 1000), max(0.0, deadline - time.time())))
    for _ in range(max_actions):
        if time.time() >= deadline:
            return
        sid = rng.choice(list(sessions))
        node = rng.choice(sessions[sid])
        kind = pick(rng)
        aid = uuid.uuid4().hex
        if kind == "rate":
            rating = rng.choice([-1, 0, 1])
            call(client, "rate", (sid, node, rating, False, "", name, aid, None), out, lambda _v, a=aid: (a,),
                 intent=(sid, node, rating, name))
        elif kind == "prune":  # a shared node, with the version this client last saw: conflicts are intended
            got = call(client, "prune", (sid, node, name, aid, versions.get((sid, node))), out,
                       lambda _v, a=aid: (a,))
            if got is not None:
                versions[(sid, node)] = got["version"]
                call(client, "undo", (sid, name), out,
                     lambda v: ((v["undid"] or {}).get("action_id"),))  # keep the tree whole for the others
        elif kind == "rename":
            call(client, "rename", (sid, f"session {sid} by {name}", name), out, lambda _v, s=sid: (s, name),
                 api="rename_session")
        else:
            text = f"{idx}: an edited step {aid[:6]}"
            call(client, "edit_step", (sid, node, text, name), out, lambda new, s=sid: (s, new),
                 intent=(sid, node, text))
        time.sleep(max(0.0, min(pause(), deadline - time.time())))


def client_process(urls: list[str], kind: str, fn_index: dict[str, int], idx: int, sessions: dict[int, list[str]],
                   modes: list[tuple[str, float]], seconds: float, max_actions: int, ready, go, results) -> None:
    """One annotator in its own process: connect to its server (client i to server i mod N), report ready, then run
    each mode when told to."""
    server = idx % len(urls)
    client = connect(kind, urls[server], fn_index)
    for phase, (_mode, think_ms) in enumerate(modes):
        ready.put(idx)
        go[phase].wait()
        out: list[Outcome] = []
        c0, t0 = os.times(), time.time()
        annotate(client, idx, sessions, t0 + seconds, max_actions, think_ms, out)
        for o in out:
            o.server = server
        c1 = os.times()
        results.put((phase, idx, [asdict(o) for o in out], (c1.user + c1.system) - (c0.user + c0.system)))
    client.close()


def searcher(url: str, stop: threading.Event, counts: list[int]) -> None:
    from gradio_client import Client

    client = Client(url, verbose=False)
    i = 0
    while not stop.is_set():
        try:
            client.predict(PROBLEMS[i % len(PROBLEMS)], "mcts", 64, api_name="/search")
            counts[0] += 1
        except Exception as exc:  # noqa: BLE001
            if stop.is_set():  # the server is going away
                return
            counts[1] += 1
            print(f"search failed: {str(exc)[:120]}", file=sys.stderr)
        i += 1


# -- the server's side ---------------------------------------------------------------------------------------
def server_traces(url: str) -> dict[str, dict]:
    """Gradio's per-event profiling traces (GRADIO_PROFILING=1), by event id."""
    with urllib.request.urlopen(url + "gradio_api/profiling/traces", timeout=30) as r:
        return {t["event_id"]: t for t in json.loads(r.read()) if t.get("event_id")}


def clear_traces(url: str) -> None:
    req = urllib.request.Request(url + "gradio_api/profiling/clear", method="POST", data=b"")
    urllib.request.urlopen(req, timeout=30).close()


def verify(db_url: str, outcomes: list[Outcome]) -> tuple[dict[str, int], dict[str, int], dict[str, int]]:
    """How many acknowledged actions the database holds (each looked up by its action id, node or name), and how
    many acknowledged ratings and edits it holds otherwise than written (silent overwrites), of how many checked."""
    from sqlalchemy import select

    from storage.models import ActionRow, AnnotationRow, NodeRow
    from storage.store import Store

    stored: dict[str, int] = {}
    with Store(db_url) as store, store.read() as s:
        logged = set(s.scalars(select(ActionRow.action_id)))
        undone = set(s.scalars(select(ActionRow.action_id).where(ActionRow.undone.is_(True))))
        renames = {(r.session_id, r.annotator) for r in s.execute(
            select(ActionRow.session_id, ActionRow.annotator).where(ActionRow.kind == "rename"))}
        texts = {(r.session_id, r.node_id): r.text for r in s.execute(
            select(NodeRow.session_id, NodeRow.node_id, NodeRow.text))}
        ratings = {(r.session_id, r.node_id, r.annotator): r.rating for r in s.execute(
            select(AnnotationRow.session_id, AnnotationRow.node_id, AnnotationRow.annotator, AnnotationRow.rating))}
        for o in outcomes:
            if not o.ok:
                continue
            found = (o.key[0] in logged if o.kind in ("rate", "prune") else
                     o.key[0] is None or o.key[0] in undone if o.kind == "undo" else
                     o.key in renames if o.kind == "rename" else tuple(o.key) in texts)
            stored[o.kind] = stored.get(o.kind, 0) + bool(found)
    overwritten, checked = overwrites(outcomes, ratings, texts)
    return stored, overwritten, checked


def overwrites(outcomes: list[Outcome], ratings: dict[tuple, int],
               texts: dict[tuple, str]) -> tuple[dict[str, int], dict[str, int]]:
    """Acknowledged writes the database holds otherwise than written, though their writer did nothing since: a
    rating row (one per annotator and step, written only by her) that is not her last acknowledged rating of the
    step (steps where a later try of hers went unacknowledged are not checked: either value is right), and an
    edited step (a new node) whose text is not the text sent. `outcomes` keeps each client's actions in order."""
    last: dict[tuple, int | None] = {}
    for o in outcomes:
        if o.kind == "rate" and o.intent:
            sid, node, rating, name = o.intent
            last[(sid, node, name)] = rating if o.ok else None
    rated = {k: r for k, r in last.items() if r is not None}
    edits = [(tuple(o.key), o.intent[2]) for o in outcomes if o.kind == "edit_step" and o.ok]
    overwritten = {"rate": sum(ratings.get(k) != r for k, r in rated.items()),
                   "edit_step": sum(texts.get(k) != text for k, text in edits)}
    return overwritten, {"rate": len(rated), "edit_step": len(edits)}


# -- the report ----------------------------------------------------------------------------------------------
def pct(xs: list[float], q: float) -> float:
    if not xs:
        return float("nan")
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(q * (len(xs) - 1))))]


def report(ph: Phase, clients: int, servers: list[str], search: bool) -> None:
    title = ("closed loop (no think time)" if ph.mode == "closed" else
             f"paced (think {ph.think_ms / 1000:.1f} s mean, 0.5-1.5x)")
    print(f"\n== {title}: {clients} clients, {len(servers)} server{'s' if len(servers) > 1 else ''}, "
          f"{ph.seconds:.0f} s ==")
    print(f"{'kind':<10} {'acked':>6} {'stored':>6} {'confl':>5} {'errors':>6} {'p50 ms':>7} {'p95 ms':>7} "
          f"{'max ms':>7} | server p50: {'queue':>6} {'handler':>7} {'rest':>6}")
    groups = [(k, (k,)) for k in KINDS] + [("cheap", CHEAP), ("all", KINDS)]
    for label, kinds in groups:
        rows = [o for o in ph.outcomes if o.kind in kinds]
        if not rows:
            continue
        ok = [o for o in rows if o.ok]
        ms = [o.ms for o in ok]
        conflicts = sum(o.conflict for o in rows)
        errors = sum(not o.ok and not o.conflict for o in rows)
        stored = sum(ph.stored.get(k, 0) for k in kinds)
        traced = [(o, ph.traces[o.event_id]) for o in ok if o.event_id in ph.traces]
        queue = pct([t["queue_wait_ms"] for _, t in traced], .5)
        handler = pct([t["total_ms"] for _, t in traced], .5)
        rest = pct([o.ms - t["queue_wait_ms"] - t["total_ms"] for o, t in traced], .5)
        print(f"{label:<10} {len(ok):>6} {stored:>6} {conflicts:>5} {errors:>6} {pct(ms, .5):>7.0f} "
              f"{pct(ms, .95):>7.0f} {max(ms, default=float('nan')):>7.0f} | {'':>11} {queue:>6.0f} {handler:>7.0f} "
              f"{rest:>6.0f}")
    errs = sorted({o.error for o in ph.outcomes if not o.ok and not o.conflict})
    for e in errs[:8]:
        print(f"  error: {e}")
    by_server(ph, clients, servers)
    acked = sum(o.ok for o in ph.outcomes)
    print(f"lost: {acked - sum(ph.stored.values())} of {acked} acknowledged actions; silent overwrites: "
          + ", ".join(f"{ph.overwritten[k]} of {ph.checked[k]} {k} checked" for k in ("rate", "edit_step")))
    n = len(ph.outcomes)
    with_search = " (with the search's)" if search else ""
    print(f"{n} actions in {ph.seconds:.0f} s: {n / max(ph.seconds, 1e-9):.1f} actions/s "
          f"({'offered by the paced clients' if ph.mode == 'paced' else 'as fast as the servers answer'}); "
          f"CPU per action: servers {1000 * ph.server_cpu / max(n, 1):.0f} ms{with_search}, clients "
          f"{1000 * ph.client_cpu / max(n, 1):.0f} ms; load average {ph.load[0]:.2f} before, {ph.load_peak:.2f} at "
          f"most during, {ph.load[1]:.2f} after ({os.cpu_count()} CPUs)")


def by_server(ph: Phase, clients: int, servers: list[str]) -> None:
    """Acknowledgement latency of every acknowledged action (all kinds), per server and overall."""
    if len(servers) < 2:
        return
    print(f"{'server':<30} {'clients':>7} {'acked':>6} {'errors':>6} {'p50 ms':>7} {'p95 ms':>7} {'max ms':>7}")
    groups = [(f"{k + 1}: {u}", len(range(k, clients, len(servers))), [o for o in ph.outcomes if o.server == k])
              for k, u in enumerate(servers)]
    for label, n, rows in [*groups, ("overall", clients, ph.outcomes)]:
        ms = [o.ms for o in rows if o.ok]
        errors = sum(not o.ok and not o.conflict for o in rows)
        print(f"{label:<30} {n:>7} {len(ms):>6} {errors:>6} {pct(ms, .5):>7.0f} {pct(ms, .95):>7.0f} "
              f"{max(ms, default=float('nan')):>7.0f}")


class LoadPeak:
    """The highest one-minute load average seen while the clients run (sampled every 2 s in a thread)."""

    def __init__(self):
        self.peak, self.stop = os.getloadavg()[0], threading.Event()
        self.thread = threading.Thread(target=self._sample, daemon=True)
        self.thread.start()

    def _sample(self) -> None:
        while not self.stop.wait(2.0):
            self.peak = max(self.peak, os.getloadavg()[0])

    def end(self) -> float:
        self.stop.set()
        self.thread.join()
        return max(self.peak, os.getloadavg()[0])


def run_phases(urls: list[str], server_pids: list[int], db_url: str, sessions: dict[int, list[str]],
               fn_index: dict[str, int], args: argparse.Namespace) -> list[Phase]:
    modes = [("closed", 0.0), ("paced", args.think_ms)]
    modes = [m for m in modes if args.mode in ("both", m[0])]
    ctx = mp.get_context("spawn")
    ready, results = ctx.Queue(), ctx.Queue()
    go = [ctx.Event() for _ in modes]
    procs = [ctx.Process(target=client_process, args=(urls, args.client, fn_index, i, sessions, modes, args.seconds,
                                                      args.max_actions, ready, go, results), daemon=True)
             for i in range(args.clients)]
    for p in procs:
        p.start()
    phases = []
    try:
        for k, (mode, think_ms) in enumerate(modes):
            for _ in procs:
                ready.get(timeout=300)
            time.sleep(2)  # let the connects and imports settle before the clock starts
            for url in urls:
                clear_traces(url)
            ph = Phase(mode, think_ms)
            load0, s0, t0 = os.getloadavg()[0], sum(map(cpu_seconds, server_pids)), time.time()
            peak = LoadPeak()
            go[k].set()
            for _ in procs:
                _, _, out, cpu = results.get(timeout=args.seconds + 900)
                ph.outcomes += [Outcome(**{**o, "key": tuple(o["key"]), "intent": tuple(o["intent"])}) for o in out]
                ph.client_cpu += cpu
            ph.seconds = time.time() - t0
            ph.server_cpu = sum(map(cpu_seconds, server_pids)) - s0
            ph.load, ph.load_peak = (load0, os.getloadavg()[0]), peak.end()
            for url in urls:  # event ids are unique across servers
                ph.traces.update(server_traces(url))
            ph.stored, ph.overwritten, ph.checked = verify(db_url, ph.outcomes)
            phases.append(ph)
    finally:
        for p in procs:
            p.join(timeout=30)
            if p.is_alive():
                p.kill()
    return phases


def start_server(port: int, db_url: str, env: dict[str, str], log) -> subprocess.Popen:
    """`app.py serve` on 127.0.0.1:port over `db_url`, in its own process group (stopped with its children)."""
    return subprocess.Popen([sys.executable, str(ROOT / "app.py"), "serve", "--host", "127.0.0.1", "--port",
                             str(port), "--db", db_url], env=env, stdout=subprocess.DEVNULL, stderr=log,
                            start_new_session=True)


def stop_server(server: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError):  # it may have died already (its log says why)
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--db", default="sqlite", help="sqlite, postgres (a scratch database at 127.0.0.1:5432) or a URL")
    p.add_argument("--servers", type=int, default=1,
                   help="serve processes on the one database, the clients spread over them (2 with --db postgres: "
                        "issue 26's load run)")
    p.add_argument("--clients", type=int, default=16)
    p.add_argument("--seconds", type=float, default=60.0, help="per mode")
    p.add_argument("--mode", choices=("both", "closed", "paced"), default="both")
    p.add_argument("--think-ms", type=float, default=2000.0,
                   help="paced mode: mean pause between an annotator's actions (each uniform in 0.5-1.5x)")
    p.add_argument("--max-actions", type=int, default=400, help="per client and mode, at most")
    p.add_argument("--client", choices=tuple(CLIENTS), default="gradio",
                   help="gradio: gradio_client with one shared (verifying) TLS context; gradio-default: gradio_client "
                        "as constructed by default (a new TLS context per request); http: what the browser does")
    p.add_argument("--no-search", action="store_true", help="without the search running beside the annotators")
    args = p.parse_args(argv)
    if not (1 <= args.clients <= 64 and 1 <= args.seconds <= 600 and 1 <= args.max_actions <= 10_000
            and 0 < args.think_ms <= 600_000 and 1 <= args.servers <= min(4, args.clients)):
        p.error("--clients 1-64, --servers 1-4 (at most --clients), --seconds 1-600, --max-actions 1-10000, "
                "--think-ms above 0, at most 600000")

    from gradio_client import Client

    with tempfile.TemporaryDirectory(prefix="rte-bench-annot-") as tmp:
        db_url, cleanup = scratch_db(args.db, Path(tmp))
        ports: list[int] = []
        while len(ports) < args.servers:
            port = free_port()
            ports += [port] if port not in ports else []
        urls = [f"http://127.0.0.1:{port}/" for port in ports]
        env = {**os.environ, "REASONING_DATA_DIR": tmp, "PYTHONPATH": str(ROOT), "GRADIO_PROFILING": "1"}
        log = (Path(tmp) / "server.log").open("w")
        servers: list[subprocess.Popen] = []
        stop, counts = threading.Event(), [0, 0]
        try:
            for port in ports:
                servers.append(start_server(port, db_url, env, log))
            for url in urls:
                wait_up(url)
            setup = Client(urls[0], verbose=False)
            sessions: dict[int, list[str]] = {}
            for problem in PROBLEMS:
                sid = setup.predict(problem, "mcts", 24, api_name="/search")["session_id"]
                tree = setup.predict(sid, api_name="/tree")
                sessions[sid] = [n["id"] for n in tree["nodes"] if n["id"] != "0"]
            print(f"db {args.db}: {len(sessions)} sessions of {[len(v) + 1 for v in sessions.values()]} nodes; "
                  f"{args.servers} server{'s' if args.servers > 1 else ''} on it; {args.clients} client processes "
                  f"({CLIENTS[args.client]}), {args.seconds:.0f} s per mode"
                  f"{'' if args.no_search else ', a search (mcts, budget 64) running throughout on the first server'}")
            print(f"uptime before: {subprocess.run(['uptime'], capture_output=True, text=True).stdout.strip()}")
            if not args.no_search:
                threading.Thread(target=searcher, args=(urls[0], stop, counts), daemon=True).start()
            fn_index = {api: setup._infer_fn_index(f"/{api}", None) for api in APIS}  # the same app on every server
            phases = run_phases(urls, [sv.pid for sv in servers], db_url, sessions, fn_index, args)
            stop.set()
            for ph in phases:
                report(ph, args.clients, urls, not args.no_search)
            if not args.no_search:
                print(f"\nsearches finished during the run: {counts[0]} ({counts[1]} failed)")
            print(f"uptime after: {subprocess.run(['uptime'], capture_output=True, text=True).stdout.strip()}")
        finally:
            stop.set()
            for server in servers:
                stop_server(server)
            log.close()
            cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
