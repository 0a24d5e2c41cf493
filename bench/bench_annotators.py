"""Annotators at speed: N gradio_client sessions rate, prune and edit for a while, against a server this script
starts on 127.0.0.1, while another client keeps a search running; then every acknowledged action is looked up in
the database.

    python bench/bench_annotators.py [--db sqlite|postgres|URL] [--clients 16] [--seconds 60] [--max-actions 400]

Prints, per action kind: acknowledged, stored, intended version conflicts, other errors, p50/p95/max latency (ms);
and the machine's load average before and after. Bounded: each client stops after --seconds or --max-actions,
whichever comes first; the server is stopped and a scratch database removed at the end.
"""
from __future__ import annotations

import argparse
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/test"
PROBLEMS = ["Use 4 7 8 8 to make 24.", "Use 2 3 4 6 to make 24.", "Use 1 5 5 5 to make 24.",
            "Use 3 3 8 8 to make 24."]
MIX = (("rate", 0.75), ("prune", 0.12), ("rename", 0.05), ("edit_step", 0.08))


@dataclass
class Outcome:
    kind: str
    ms: float
    ok: bool
    conflict: bool = False
    error: str = ""
    key: tuple = ()


@dataclass
class Tally:
    outcomes: list[Outcome] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, o: Outcome) -> None:
        with self.lock:
            self.outcomes.append(o)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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


def annotator(url: str, idx: int, sessions: dict[int, list[str]], deadline: float, max_actions: int,
              tally: Tally) -> None:
    from gradio_client import Client

    client = Client(url, verbose=False)
    rng = random.Random(idx)
    name = f"annotator-{idx}"
    versions: dict[tuple[int, str], int] = {}
    for _ in range(max_actions):
        if time.time() >= deadline:
            return
        sid = rng.choice(list(sessions))
        node = rng.choice(sessions[sid])
        kind = pick(rng)
        aid = uuid.uuid4().hex
        t0 = time.perf_counter()
        try:
            if kind == "rate":
                client.predict(sid, node, rng.choice([-1, 0, 1]), False, "", name, aid, None, api_name="/rate")
                key = (aid,)
            elif kind == "prune":  # a shared node, with the version this client last saw: conflicts are intended
                seen = versions.get((sid, node))
                out = client.predict(sid, node, name, aid, seen, api_name="/prune")
                versions[(sid, node)] = out["version"]
                client.predict(sid, name, api_name="/undo")  # keep the tree whole for the others
                key = (aid,)
            elif kind == "rename":
                client.predict(sid, f"session {sid} by {name}", name, api_name="/rename_session")
                key = (sid, name)
            else:
                new = client.predict(sid, node, f"{idx}: an edited step {aid[:6]}", name, api_name="/edit_step")
                key = (sid, new)
            tally.add(Outcome(kind, 1000 * (time.perf_counter() - t0), True, key=key))
        except Exception as exc:  # noqa: BLE001 - every failure is counted and shown
            text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            conflict = "changed" in text or "reload" in text or "already pruned" in text
            tally.add(Outcome(kind, 1000 * (time.perf_counter() - t0), False, conflict, text[:160]))


def searcher(url: str, deadline: float, stop: threading.Event, counts: list[int]) -> None:
    from gradio_client import Client

    client = Client(url, verbose=False)
    i = 0
    while time.time() < deadline and not stop.is_set():
        try:
            client.predict(PROBLEMS[i % len(PROBLEMS)], "mcts", 64, api_name="/search")
            counts[0] += 1
        except Exception as exc:  # noqa: BLE001
            counts[1] += 1
            print(f"search failed: {str(exc)[:120]}", file=sys.stderr)
        i += 1


def verify(db_url: str, tally: Tally) -> dict[str, int]:
    """How many acknowledged actions the database holds (each looked up by its action id, node or name)."""
    from sqlalchemy import select

    from storage.models import ActionRow, NodeRow
    from storage.store import Store

    stored: dict[str, int] = {}
    with Store(db_url) as store, store.read() as s:
        logged = set(s.scalars(select(ActionRow.action_id)))
        renames = {(r.session_id, r.annotator) for r in s.execute(
            select(ActionRow.session_id, ActionRow.annotator).where(ActionRow.kind == "rename"))}
        nodes = {tuple(r) for r in s.execute(select(NodeRow.session_id, NodeRow.node_id))}
        for o in tally.outcomes:
            if not o.ok:
                continue
            found = (o.key[0] in logged if o.kind in ("rate", "prune") else
                     o.key in renames if o.kind == "rename" else tuple(o.key) in nodes)
            stored[o.kind] = stored.get(o.kind, 0) + bool(found)
    return stored


def pct(xs: list[float], q: float) -> float:
    if not xs:
        return float("nan")
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(q * (len(xs) - 1))))]


def report(tally: Tally, stored: dict[str, int], seconds: float) -> None:
    print(f"{'kind':<10} {'acked':>6} {'stored':>6} {'conflicts':>9} {'errors':>6} {'p50 ms':>8} {'p95 ms':>8} "
          f"{'max ms':>8}")
    kinds = [k for k, _ in MIX] + ["all"]
    for kind in kinds:
        rows = [o for o in tally.outcomes if kind == "all" or o.kind == kind]
        ok = [o for o in rows if o.ok]
        ms = [o.ms for o in ok]
        acked, conflicts = len(ok), sum(o.conflict for o in rows)
        errors = sum(not o.ok and not o.conflict for o in rows)
        st = sum(stored.values()) if kind == "all" else stored.get(kind, 0)
        print(f"{kind:<10} {acked:>6} {st:>6} {conflicts:>9} {errors:>6} {pct(ms, .5):>8.0f} {pct(ms, .95):>8.0f} "
              f"{max(ms, default=float('nan')):>8.0f}")
    errs = sorted({o.error for o in tally.outcomes if not o.ok and not o.conflict})
    for e in errs[:8]:
        print(f"  error: {e}")
    n = len([o for o in tally.outcomes if o.ok])
    print(f"{n} acknowledged actions in {seconds:.0f} s ({n / max(seconds, 1e-9):.1f}/s); mean of all latencies "
          f"{statistics.fmean([o.ms for o in tally.outcomes] or [0]):.0f} ms")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--db", default="sqlite", help="sqlite, postgres (a scratch database at 127.0.0.1:5432) or a URL")
    p.add_argument("--clients", type=int, default=16)
    p.add_argument("--seconds", type=float, default=60.0)
    p.add_argument("--max-actions", type=int, default=400, help="per client, at most")
    p.add_argument("--no-search", action="store_true", help="without the search running beside the annotators")
    args = p.parse_args(argv)
    if not (1 <= args.clients <= 64 and 1 <= args.seconds <= 600 and 1 <= args.max_actions <= 10_000):
        p.error("--clients 1-64, --seconds 1-600, --max-actions 1-10000")

    from gradio_client import Client

    with tempfile.TemporaryDirectory(prefix="rte-bench-annot-") as tmp:
        db_url, cleanup = scratch_db(args.db, Path(tmp))
        port = free_port()
        url = f"http://127.0.0.1:{port}/"
        env = {**os.environ, "REASONING_DATA_DIR": tmp, "PYTHONPATH": str(ROOT)}
        log = (Path(tmp) / "server.log").open("w")
        server = subprocess.Popen([sys.executable, str(ROOT / "app.py"), "serve", "--host", "127.0.0.1", "--port",
                                   str(port), "--db", db_url], env=env, stdout=subprocess.DEVNULL, stderr=log,
                                  start_new_session=True)
        try:
            wait_up(url)
            setup = Client(url, verbose=False)
            sessions: dict[int, list[str]] = {}
            for problem in PROBLEMS:
                sid = setup.predict(problem, "mcts", 24, api_name="/search")["session_id"]
                tree = setup.predict(sid, api_name="/tree")
                sessions[sid] = [n["id"] for n in tree["nodes"] if n["id"] != "0"]
            print(f"db {args.db}: {len(sessions)} sessions of {[len(v) + 1 for v in sessions.values()]} nodes; "
                  f"{args.clients} clients for {args.seconds:.0f} s (at most {args.max_actions} actions each)"
                  f"{'' if args.no_search else ', a search (mcts, budget 64) running throughout'}")
            load_before = os.getloadavg()
            tally, stop, counts = Tally(), threading.Event(), [0, 0]
            deadline = time.time() + args.seconds
            threads = [threading.Thread(target=annotator, args=(url, i, sessions, deadline, args.max_actions, tally))
                       for i in range(args.clients)]
            if not args.no_search:
                threads.append(threading.Thread(target=searcher, args=(url, deadline, stop, counts)))
            t0 = time.time()
            for t in threads:
                t.start()
            for t in threads:
                t.join(timeout=args.seconds + 600)
            stop.set()
            elapsed = time.time() - t0
            stored = verify(db_url, tally)
            report(tally, stored, elapsed)
            print(f"searches finished during the run: {counts[0]} ({counts[1]} failed); load average "
                  f"{load_before[0]:.1f} before, {os.getloadavg()[0]:.1f} after ({os.cpu_count()} CPUs)")
        finally:
            os.killpg(server.pid, signal.SIGTERM)
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, signal.SIGKILL)
            log.close()
            cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
