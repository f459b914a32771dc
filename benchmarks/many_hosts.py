"""Many hosts on one study, rehearsed on one machine: PostgreSQL + ``mlflow server`` + N ``advisor search``
"hosts" that share nothing but the two URLs, with faults from a seeded schedule (issue 23).

Servers (started here, in a scratch folder, on free ports):

* PostgreSQL (Debian's binaries, run as the ``postgres`` user when we are root), two fresh databases:
  one for the Optuna study, one for MLflow's backend store;
* ``mlflow server`` on 127.0.0.1 with that PostgreSQL backend store and ``--artifacts-destination`` in a
  folder only the server uses; clients get ``http://127.0.0.1:PORT`` and nothing else (artifacts proxied).

Hosts: each is one ``advisor search`` process (``--workers`` worker processes under it) with its own
``HOME``, ``TORCH_HOME`` (the offline pretrained weights symlinked into it), cache folder, workspace and
working directory, and -- where ``unshare -u`` works -- its own hostname (a UTS namespace), so that no
host can tell another's processes from its own. Where this runs as root and ``ip netns`` works (``--netns``,
on by default there), each host also runs in its own network namespace joined to this machine by a veth
pair (a /30: this machine's end 10.231.x.1, the host's 10.231.x.2): its only routes are to the servers'
ports on that address -- PostgreSQL and ``mlflow server`` listen on it -- and its ``127.0.0.1`` is its own.
A host reaches the two servers by their URLs and nothing else. Otherwise the hosts share this machine's
network: separate folders and hostnames, not separate networks (the rehearsal prints which).

Faults (``--faults``, each once, at a finished-trial count drawn from ``--seed``; printed first):
``kill-worker`` (kill -9 one process that runs trials: a spawned worker where a host has several, else
the host), ``kill-host`` (kill -9 a host's whole process group), ``restart-mlflow`` (stop the server,
start it again on the same port), ``stop-postgres`` (10 s down, then up). A host that dies is run again
with the same command, hostname and folders 3 s later -- that is the documented recovery.

Checks, against both stores: exactly ``--trials`` finished trials in the study, none RUNNING or WAITING,
no trial number counted twice; one ended MLflow run per finished trial, in the trial's state; no run
RUNNING; the parent run names the best trial and holds its test metrics; one registered version; a
fresh host predicts from ``models:/NAME/1`` and exports it with the tracking URL alone; no MLflow "View
run" line in any host's output. Measured: trials per minute against one host alone (``--baseline``),
PostgreSQL connections at peak (``pg_stat_activity``), the storage's time per trial operation.

Run: ``OMP_NUM_THREADS=1 python benchmarks/many_hosts.py`` (4 hosts, 16 trials of last_k on digits at 32 px);
``--trials 40 --workers 2``; the load run: ``--hosts 8 --workers 2 --trials 200 --strategy linear_probe``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable
FAULTS = ("kill-worker", "kill-host", "restart-mlflow", "stop-postgres")
SPACES = {
    "last_k": """strategy: last_k
params:
  k: {type: int, low: 1, high: 2}
  head_lr: {type: float, low: 1.0e-3, high: 1.0e-1, log: true}
  lr_ratio: {type: float, low: 0.05, high: 1.0, log: true}
  epochs: 1
  batch_size: 32
  patience: 1
""",
    "linear_probe": """strategy: linear_probe
params:
  C: {type: float, low: 1.0e-2, high: 1.0e+1, log: true}
  max_iter: 300
""",
}
T0 = time.monotonic()


def say(*parts) -> None:
    print(f"[{time.monotonic() - T0:7.1f} s]", *parts, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ------------------------------------------------------------------ PostgreSQL
class Postgres:
    def __init__(self, folder: Path, listen: tuple[str, ...] = ()):
        bins = sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: p.parent.name)
        if not bins:
            raise SystemExit("no PostgreSQL server binaries (/usr/lib/postgresql/*/bin): apt-get install postgresql")
        self.bin, self.data, self.port = bins[-1], folder / "pgdata", free_port()
        self.as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        self.data.mkdir(parents=True)
        if self.as_user:
            shutil.chown(self.data, "postgres")
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres")
        self.listen = ",".join(("127.0.0.1", *listen))
        if listen:  # the hosts' network namespaces reach it on their veth pairs' addresses
            with open(self.data / "pg_hba.conf", "a") as f:
                f.write(f"host all all {Network.SUBNET} trust\n")
        self.start()

    def _run(self, tool: str, *args: str) -> None:
        subprocess.run([*self.as_user, str(self.bin / tool), *args], check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)

    def start(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-w", "-t", "60", "-l", str(self.data / "server.log"), "-o",
                  f"-p {self.port} -k {self.data} -c listen_addresses={self.listen}", "start")

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-w", "-m", "fast", "stop")

    def url(self, db: str, driver: str = "", address: str = "127.0.0.1") -> str:
        return f"postgresql{driver}://postgres@{address}:{self.port}/{db}"

    def sql(self, query: str, db: str = "postgres") -> list[tuple]:
        import sqlalchemy

        engine = sqlalchemy.create_engine(self.url(db), isolation_level="AUTOCOMMIT",
                                          poolclass=sqlalchemy.pool.NullPool)
        try:
            with engine.connect() as conn:
                res = conn.execute(sqlalchemy.text(query))
                return list(res) if res.returns_rows else []
        finally:
            engine.dispose()


# ------------------------------------------------------------------ MLflow server
class MlflowServer:
    def __init__(self, backend: str, artifacts: Path, log: Path, everywhere: bool = False):
        self.backend, self.artifacts, self.log, self.port = backend, artifacts, log, free_port()
        self.proc: subprocess.Popen | None = None
        self.url = f"http://127.0.0.1:{self.port}"
        self.bind = "0.0.0.0" if everywhere else "127.0.0.1"  # 0.0.0.0: the hosts' veth addresses too

    def url_at(self, address: str) -> str:
        return f"http://{address}:{self.port}"

    def start(self, timeout: float = 300) -> None:
        cmd = [str(Path(PY).with_name("mlflow")), "server", "--backend-store-uri", self.backend,
               "--artifacts-destination", str(self.artifacts), "--host", self.bind, "--port", str(self.port),
               "--workers", "2"]
        env = dict(os.environ, MLFLOW_DISABLE_TELEMETRY="true", DO_NOT_TRACK="true")
        self.proc = subprocess.Popen(cmd, stdout=open(self.log, "a"), stderr=subprocess.STDOUT, env=env,
                                     start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=2) as r:
                    if r.status == 200:
                        return
            except OSError:
                pass
            if self.proc.poll() is not None:
                raise SystemExit(f"mlflow server exited ({self.proc.returncode}); see {self.log}")
            time.sleep(0.5)
        raise SystemExit(f"mlflow server did not answer in {timeout:.0f} s; see {self.log}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


# ------------------------------------------------------------------ hosts
def weights_files() -> list[Path]:
    """The offline pretrained weights of this machine's torch hub cache (symlinked into each host's TORCH_HOME)."""
    import torch

    folder = Path(torch.hub.get_dir()) / "checkpoints"
    return sorted(folder.glob("*")) if folder.is_dir() else []


def can_unshare() -> bool:
    try:
        return subprocess.run(["unshare", "-u", "true"], capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


class Network:
    """One network namespace per host slot, each joined to this machine by a veth pair on its own /30 of
    :data:`SUBNET`: this machine's end ``10.231.x.(4k+1)``, the namespace's ``.(4k+2)``, the namespace's
    loopback up. The servers listen on every machine-side address; a host in slot k reaches them at
    :meth:`gateway` ``(k)`` and reaches nothing else (no default route, no forwarding)."""

    SUBNET = "10.231.0.0/16"

    def __init__(self, slots: int):
        self.tag = f"{os.getpid() % 100000}"
        self.slots = slots
        self.made: list[int] = []
        for k in range(slots):
            self._make(k)

    @staticmethod
    def available() -> bool:
        if os.geteuid() != 0 or shutil.which("ip") is None:
            return False
        name = f"advprobe{os.getpid() % 100000}"
        ok = subprocess.run(["ip", "netns", "add", name], capture_output=True).returncode == 0
        if ok:
            subprocess.run(["ip", "netns", "del", name], capture_output=True)
        return ok

    def _addr(self, k: int, end: int) -> str:
        base = 4 * k + end
        return f"10.231.{base // 256}.{base % 256}"

    def gateway(self, k: int) -> str:
        return self._addr(k, 1)

    def ns(self, k: int) -> str:
        return f"advh{self.tag}-{k}"

    def _veth(self, k: int) -> tuple[str, str]:
        return f"avh{k}x{self.tag}a", f"avh{k}x{self.tag}b"

    def addresses(self) -> tuple[str, ...]:
        return tuple(self.gateway(k) for k in self.made)

    def _make(self, k: int) -> None:
        ns, (a, b) = self.ns(k), self._veth(k)
        steps = [["ip", "netns", "add", ns], ["ip", "link", "add", a, "type", "veth", "peer", "name", b],
                 ["ip", "link", "set", b, "netns", ns], ["ip", "addr", "add", f"{self.gateway(k)}/30", "dev", a],
                 ["ip", "link", "set", a, "up"],
                 ["ip", "netns", "exec", ns, "ip", "addr", "add", f"{self._addr(k, 2)}/30", "dev", b],
                 ["ip", "netns", "exec", ns, "ip", "link", "set", b, "up"],
                 ["ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up"]]
        self.made.append(k)
        for cmd in steps:
            subprocess.run(cmd, check=True, capture_output=True)

    def close(self) -> None:
        for k in self.made:
            subprocess.run(["ip", "link", "del", self._veth(k)[0]], capture_output=True)
            subprocess.run(["ip", "netns", "del", self.ns(k)], capture_output=True)
        self.made = []


class Host:
    def __init__(self, index: int, folder: Path, args, storage: str, tracking: str, name: str, workers: int,
                 uts: bool, trials: int | None = None, netns: str | None = None):
        self.index, self.folder, self.workers, self.uts, self.netns = index, folder, workers, uts, netns
        self.hostname = f"host{index}"
        self.storage, self.tracking = storage, tracking
        self.runs = 0
        self.proc: subprocess.Popen | None = None
        for sub in ("home", "torch/hub/checkpoints", "cache", "ws", "cwd"):
            (folder / sub).mkdir(parents=True, exist_ok=True)
        for w in weights_files():
            link = folder / "torch/hub/checkpoints" / w.name
            if not link.exists():
                link.symlink_to(w)
        space = folder / "cwd" / "space.yaml"
        space.write_text(SPACES[args.strategy])
        self.cmd = [PY, "-m", "advisor.cli", "search", args.dataset, "--strategy", args.strategy, "--space",
                    str(space), "--trials", str(trials or args.trials), "--image-size", str(args.image_size),
                    "--workspace", str(folder / "ws"), "--cache-dir", str(folder / "cache"), "--study-name", name,
                    "--experiment", name, "--pruner", "none", "--storage", storage, "--tracking-uri", tracking,
                    "--register", name, "--workers", str(workers), "--json", str(folder / "result.json"),
                    "--quiet"]
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(("ADVISOR_", "MLFLOW_"))}
        self.env.update(HOME=str(folder / "home"), TORCH_HOME=str(folder / "torch"),
                        XDG_CACHE_HOME=str(folder / "home" / ".cache"), PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1",
                        ADVISOR_HEARTBEAT_SECONDS=str(args.heartbeat))

    def start(self) -> None:
        self.runs += 1
        cmd = self.cmd
        if self.uts:  # its own hostname: worker ids host<i>:pid, as on separate machines
            cmd = ["unshare", "-u", "sh", "-c", 'hostname "$0" && exec "$@"', self.hostname, *cmd]
        if self.netns:  # its own network: the two servers' URLs on its veth pair, nothing else
            cmd = ["ip", "netns", "exec", self.netns, *cmd]
        out = open(self.folder / f"run{self.runs}.out", "w")
        err = open(self.folder / f"run{self.runs}.err", "w")
        self.proc = subprocess.Popen(cmd, cwd=self.folder / "cwd", env=self.env, stdout=out, stderr=err,
                                     start_new_session=True)

    def trial_processes(self) -> list[int]:
        """The processes that run trials: the spawned workers, or the host itself with one worker."""
        if self.proc is None or self.proc.poll() is not None:
            return []
        if self.workers == 1:
            return [self.proc.pid]
        kids = []
        for task in Path(f"/proc/{self.proc.pid}/task").glob("*/children"):
            for pid in task.read_text().split():
                try:
                    cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
                except OSError:
                    continue
                if b"spawn_main" in cmdline:
                    kids.append(int(pid))
        return kids

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)

    def output(self) -> str:
        return "".join(p.read_text(errors="replace") for p in sorted(self.folder.glob("run*.out")))

    def errors(self) -> str:
        return "".join(p.read_text(errors="replace") for p in sorted(self.folder.glob("run*.err")))


# ------------------------------------------------------------------ the run
def schedule(faults: list[str], trials: int, seed: int) -> list[tuple[int, str]]:
    """Each fault at a distinct finished-trial count in [1, trials - 2], drawn from ``seed``."""
    rng = random.Random(seed)
    points = sorted(rng.sample(range(1, max(2, trials - 1)), k=min(len(faults), max(1, trials - 2))))
    order = list(faults)
    rng.shuffle(order)
    return list(zip(points, order))


_STORAGES: dict = {}


def study_state(storage_url: str, name: str):
    """The study as the hosts see it; one storage (one connection pool) for the whole rehearsal."""
    import optuna

    from advisor.search.storage import open_storage
    from advisor.search.trials import _counts

    if storage_url not in _STORAGES:
        _STORAGES[storage_url] = open_storage(storage_url, "/tmp")
    study = optuna.load_study(study_name=name, storage=_STORAGES[storage_url])
    trials = study.get_trials(deepcopy=False)
    done, pending = _counts(trials)
    return study, trials, done, pending


def host_urls(pg: Postgres, server: MlflowServer, db: str, net: Network | None, slot: int) -> dict:
    """The two URLs a host in ``slot`` is given (its veth pair's far end where it has its own network), and
    its network namespace."""
    if net is None:
        return {"storage": pg.url(db), "tracking": server.url, "netns": None}
    gw = net.gateway(slot)
    return {"storage": pg.url(db, address=gw), "tracking": server.url_at(gw), "netns": net.ns(slot)}


def run_hosts(args, pg: Postgres, server: MlflowServer, root: Path, name: str, db: str, n_hosts: int,
              workers: list[int], faults: list[tuple[int, str]], uts: bool, log: dict,
              net: Network | None = None) -> dict:
    """Start the hosts at once, inject the faults, run dead hosts again, until every host exited 0."""
    storage = pg.url(db)  # the monitor's, on this machine
    hosts = []
    for i in range(n_hosts):
        u = host_urls(pg, server, db, net, i)
        hosts.append(Host(i, root / name / f"host{i}", args, u["storage"], u["tracking"], name,
                          workers[i % len(workers)], uts, netns=u["netns"]))
    rng = random.Random(args.seed + 1)
    t_start, t_wall = time.monotonic(), time.time()
    for h in hosts:
        h.start()
    say(f"{name}: {n_hosts} hosts started ({', '.join(f'{h.hostname}: {h.workers} worker(s)' for h in hosts)})")
    pending_faults = list(faults)
    peak = {"total": 0, db: 0}
    finished, t_done, restart_at = 0, None, {}
    deadline = t_start + args.timeout
    while time.monotonic() < deadline:
        try:
            rows = pg.sql("SELECT datname, count(*) FROM pg_stat_activity WHERE datname IS NOT NULL GROUP BY datname")
            counts = {r[0]: int(r[1]) for r in rows}
            peak["total"] = max(peak["total"], sum(counts.values()))
            for k, v in counts.items():
                peak[k] = max(peak.get(k, 0), v)
            _, _, done, pend = study_state(storage, name)
            finished = len(done)
            if finished >= args_trials(args, name) and not pend and t_done is None:
                # the last trial's end, from the study (the monitor may have been busy with a fault)
                last = max(t.datetime_complete.timestamp() for t in done if t.datetime_complete is not None)
                t_done = t_start + (last - t_wall)
        except Exception as e:  # noqa: BLE001 - the study may not exist yet, or PostgreSQL is restarting
            if "not found" not in str(e).lower() and "does not exist" not in str(e).lower():
                say(f"monitor: {type(e).__name__}: {str(e).splitlines()[0][:120]}")
        while pending_faults and finished >= pending_faults[0][0]:
            at, fault = pending_faults.pop(0)
            inject(fault, at, hosts, pg, server, rng, log)
        for h in hosts:
            code = h.proc.poll()
            if code is not None and code != 0 and h.index not in restart_at and h.runs <= args.max_restarts:
                restart_at[h.index] = time.monotonic() + 3.0
                log["events"].append(f"{h.hostname} exited {code} (run {h.runs})")
                say(f"{h.hostname} exited {code}: {(h.errors().strip().splitlines() or ['-'])[-1][:160]}")
        for i, when in list(restart_at.items()):
            if time.monotonic() >= when:
                del restart_at[i]
                hosts[i].start()
                log["events"].append(f"{hosts[i].hostname} run again (run {hosts[i].runs})")
                say(f"{hosts[i].hostname} run again")
        if all(h.proc.poll() is not None for h in hosts) and not restart_at:
            if all(h.proc.returncode == 0 for h in hosts) or all(h.runs > args.max_restarts for h in hosts
                                                                  if h.proc.returncode != 0):
                break
        time.sleep(1.0)
    else:
        for h in hosts:
            h.kill()
        log["events"].append(f"timeout after {args.timeout} s")
    wall = (t_done or time.monotonic()) - t_start
    steady = None
    try:  # trials per minute from the first trial's end to the last's: the start-up of the processes left out
        ends = sorted(t.datetime_complete.timestamp() for t in study_state(storage, name)[2]
                      if t.datetime_complete is not None)
        steady = 60 * (len(ends) - 1) / (ends[-1] - ends[0]) if len(ends) > 1 and ends[-1] > ends[0] else None
    except Exception:  # noqa: BLE001 - a number left out, not a failed rehearsal
        pass
    return {"hosts": hosts, "wall": wall, "peak": peak, "storage": storage, "left_faults": pending_faults,
            "steady": steady}


_TRIALS: dict[str, int] = {}


def args_trials(args, name: str) -> int:
    return _TRIALS.get(name, args.trials)


def inject(fault: str, at: int, hosts: list[Host], pg: Postgres, server: MlflowServer, rng, log: dict) -> None:
    t = time.monotonic()
    if fault == "kill-worker":
        live = [(h, p) for h in hosts for p in h.trial_processes()]
        if not live:
            what = "no worker alive"
        else:
            h, pid = rng.choice(live)
            os.kill(pid, signal.SIGKILL)
            whose = f"worker {pid} of " if pid != h.proc.pid else ""
            what = f"kill -9 {whose}{h.hostname} (pid {h.proc.pid})"
    elif fault == "kill-host":
        live = [h for h in hosts if h.proc.poll() is None]
        if not live:
            what = "no host alive"
        else:
            h = rng.choice(live)
            h.kill()
            what = f"kill -9 {h.hostname} (its process group)"
    elif fault == "restart-mlflow":
        server.stop()
        server.start()
        what = "mlflow server stopped and started again"
    elif fault == "stop-postgres":
        pg.stop()
        time.sleep(10)
        pg.start()
        what = "PostgreSQL stopped for 10 s and started again"
    else:
        raise ValueError(fault)
    line = f"at {at} finished trials: {fault}: {what} ({time.monotonic() - t:.1f} s)"
    log["events"].append(line)
    say(line)


def check(args, pg: Postgres, server: MlflowServer, run: dict, name: str, root: Path, log: dict,
          net: Network | None = None) -> list[tuple]:
    """The checks against both stores; returns (name, passed, detail)."""
    from mlflow import MlflowClient
    from optuna.trial import TrialState

    from advisor.search.trials import best_trial

    out = []
    study, trials, done, pending = study_state(run["storage"], name)
    n = args_trials(args, name)
    numbers = [t.number for t in done]
    out.append(("finished trials == requested", len(done) == n and len(set(numbers)) == len(numbers),
                f"{len(done)} of {n}; states {sorted({t.state.name for t in done})}"))
    out.append(("none RUNNING or WAITING", not pending, f"{[t.number for t in pending]}"))
    retried = [t.number for t in trials if t.state == TrialState.FAIL and t not in done and
               not t.user_attrs.get("surplus")]
    log["retried"] = retried
    client = MlflowClient(server.url)
    exp = client.get_experiment_by_name(name)
    runs = client.search_runs([exp.experiment_id], max_results=5000)
    parents = [r for r in runs if r.data.tags.get("advisor.kind") == "study"]
    out.append(("one parent run", len(parents) == 1, f"{len(parents)}"))
    parent = parents[0] if parents else None
    trial_runs = [r for r in runs if r.data.tags.get("advisor.kind") == "trial"]
    by_number: dict[int, list] = {}
    for r in trial_runs:
        by_number.setdefault(int(r.data.tags["advisor.trial_number"]), []).append(r)
    status = {"COMPLETE": "FINISHED", "PRUNED": "KILLED", "FAIL": "FAILED"}
    # every finished trial: the counted ones and those failed as stale and retried (a surplus trial withdrew
    # before it sampled anything and has no run)
    ended = [t for t in trials if t.state.is_finished() and not t.user_attrs.get("surplus")]
    bad = [t.number for t in ended if len(by_number.get(t.number, [])) != 1
           or by_number[t.number][0].info.status != status[t.state.name]]
    out.append(("one ended MLflow run per finished trial", not bad and len(trial_runs) == len(ended),
                f"{len(trial_runs)} trial runs for {len(ended)} finished trials ({len(done)} counted, "
                f"{len(ended) - len(done)} failed as stale and retried); wrong or missing for trials {bad}"))
    running = [r.info.run_name for r in runs if r.info.status == "RUNNING"]
    out.append(("no run RUNNING", not running, f"{running}"))
    best = best_trial(study)
    ok = (parent is not None and best is not None and parent.data.tags.get("advisor.best_trial") == str(best.number)
          and "test_accuracy" in parent.data.metrics)
    out.append(("parent run holds the best trial and its test metrics", ok,
                f"best trial {best.number if best else None}, test accuracy "
                f"{parent.data.metrics.get('test_accuracy') if parent else None}"))
    versions = client.search_model_versions(f"name = '{name}'")
    out.append(("one registered version", [str(v.version) for v in versions] == ["1"],
                f"versions {[v.version for v in versions]}"))
    refit = study.user_attrs.get("refit", {})
    endings = {}
    for h in run["hosts"]:
        try:
            endings[h.hostname] = json.loads((h.folder / "result.json").read_text())["ending"]
        except (OSError, ValueError, KeyError):
            endings[h.hostname] = "-"
    log["endings"] = endings
    out.append(("one refit", refit.get("state") == "done" and list(endings.values()).count("refit") == 1,
                f"claim by {refit.get('by')}; endings {endings}"))
    if net is not None:  # the namespaces: the servers by their URLs, nothing else (not this machine's loopback)
        probe = ("import socket,sys\nfor h,p in ((sys.argv[1],int(sys.argv[3])),(sys.argv[2],int(sys.argv[3])),"
                 "(sys.argv[2],int(sys.argv[4]))):\n s=socket.socket(); s.settimeout(3)\n"
                 " print(h, p, s.connect_ex((h,p)) == 0)\n s.close()")
        res = subprocess.run(["ip", "netns", "exec", net.ns(0), PY, "-c", probe, net.gateway(0), "127.0.0.1",
                              str(pg.port), str(server.port)], capture_output=True, text=True, timeout=60)
        seen = [line.split() for line in res.stdout.splitlines()]
        ok = [x[2] for x in seen] == ["True", "False", "False"]
        out.append(("a host's network reaches the servers only at their URLs", ok,
                    "from host0's namespace: " + "; ".join(f"{h}:{p} {'open' if o == 'True' else 'unreachable'}"
                                                           for h, p, o in seen)))
    views = [h.hostname for h in run["hosts"] if "View run" in h.output() + h.errors()]
    out.append(("no MLflow 'View run' line in any host's output", not views, f"{views}"))
    # a fresh host: nothing but the tracking URL
    u = host_urls(pg, server, "optuna", net, net.slots - 1 if net else 0)
    fresh = Host(99, root / name / "fresh", args, u["storage"], u["tracking"], name, 1, False, netns=u["netns"])
    env = {**fresh.env}
    inside = ["ip", "netns", "exec", fresh.netns] if fresh.netns else []
    pred = subprocess.run([*inside, PY, "-m", "advisor.cli", "predict", f"models:/{name}/1",
                           args.dataset.split(":")[0] + ":5",
                           "--tracking-uri", fresh.tracking, "--workspace", str(fresh.folder / "ws"),
                           "--json", str(fresh.folder / "pred.json"), "--quiet"],
                          cwd=fresh.folder / "cwd", env=env, capture_output=True, text=True, timeout=600)
    detail = (pred.stderr.strip().splitlines() or ["ok"])[-1][:200]
    if pred.returncode == 0:
        try:
            p = json.loads((fresh.folder / "pred.json").read_text())
            detail = f"{p['n']} images, accuracy {(p.get('metrics') or {}).get('accuracy')}"
        except (OSError, ValueError, KeyError, TypeError):
            pass
    out.append((f"a fresh host predicts from models:/{name}/1", pred.returncode == 0, detail))
    exp_out = fresh.folder / "model.ts"
    export = subprocess.run([*inside, PY, "-m", "advisor.cli", "export", f"models:/{name}/1", "--format",
                             "torchscript", "--out", str(exp_out), "--tracking-uri", fresh.tracking,
                             "--workspace", str(fresh.folder / "ws")],
                            cwd=fresh.folder / "cwd", env=env, capture_output=True, text=True, timeout=600)
    out.append((f"a fresh host exports models:/{name}/1", export.returncode == 0 and exp_out.is_file(),
                (export.stderr.strip().splitlines() or [f"{exp_out.stat().st_size if exp_out.is_file() else 0} bytes"]
                 )[-1][:200]))
    return out


def storage_op_times(url: str, n: int = 20) -> dict:
    """Milliseconds per storage operation of one trial (ask, a param, a user attr, a report, tell, the trial
    list), on a scratch study in the same database, through the storage advisor opens."""
    import warnings

    import optuna

    from advisor.search.storage import open_storage

    warnings.filterwarnings("ignore", message="Heartbeat of storage")  # ask/tell by hand, as a worker's would
    study = optuna.create_study(study_name=f"ops-{os.getpid()}", storage=open_storage(url, "/tmp"),
                                direction="maximize")
    times: dict[str, list[float]] = {k: [] for k in ("ask", "suggest", "set_user_attr", "report", "tell",
                                                     "get_trials")}
    for i in range(n):
        t = time.perf_counter()
        trial = study.ask()
        times["ask"].append(time.perf_counter() - t)
        t = time.perf_counter()
        trial.suggest_float("x", 0, 1)
        times["suggest"].append(time.perf_counter() - t)
        t = time.perf_counter()
        trial.set_user_attr("worker", "bench:1")
        times["set_user_attr"].append(time.perf_counter() - t)
        t = time.perf_counter()
        trial.report(0.5, 1)
        times["report"].append(time.perf_counter() - t)
        t = time.perf_counter()
        study.tell(trial, 0.5)
        times["tell"].append(time.perf_counter() - t)
        t = time.perf_counter()
        study.get_trials(deepcopy=False)
        times["get_trials"].append(time.perf_counter() - t)
    optuna.delete_study(study_name=study.study_name, storage=url)
    return {k: 1000 * sorted(v)[len(v) // 2] for k, v in times.items()}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--hosts", type=int, default=4)
    ap.add_argument("--workers", default="2,1,1,1",
                    help="worker processes per host, a comma list cycled over the hosts (default 2,1,1,1)")
    ap.add_argument("--trials", type=int, default=16)
    ap.add_argument("--strategy", choices=sorted(SPACES), default="last_k")
    ap.add_argument("--dataset", default="digits:30")
    ap.add_argument("--image-size", type=int, default=32)
    ap.add_argument("--faults", default=",".join(FAULTS), help=f"comma list of {', '.join(FAULTS)}; '' for none")
    ap.add_argument("--seed", type=int, default=0, help="draws the fault schedule and the victims")
    ap.add_argument("--heartbeat", type=int, default=5, help="ADVISOR_HEARTBEAT_SECONDS for the hosts (grace: 2x)")
    ap.add_argument("--baseline", action=argparse.BooleanOptionalAction, default=True,
                    help="also run one host alone on the same budget, for trials per minute")
    ap.add_argument("--max-restarts", type=int, default=3, help="runs again of a host that died")
    ap.add_argument("--timeout", type=float, default=1800.0, help="seconds for the hosts of one study")
    ap.add_argument("--netns", action=argparse.BooleanOptionalAction, default=None,
                    help="each host in its own network namespace joined by a veth pair (default: where root and "
                         "'ip netns' allow it)")
    ap.add_argument("--keep", action="store_true", help="keep the scratch folder")
    ap.add_argument("--json", help="write the results here")
    args = ap.parse_args(argv)
    workers = [int(w) for w in str(args.workers).split(",") if w.strip()]
    faults = [f.strip() for f in args.faults.split(",") if f.strip()]
    unknown = [f for f in faults if f not in FAULTS]
    if unknown or not workers or min(workers) < 1 or args.hosts < 1 or args.trials < 2:
        ap.error(f"bad arguments (unknown faults {unknown})" if unknown else "bad --hosts/--workers/--trials")

    root = Path(tempfile.mkdtemp(prefix="advisor-many-hosts-"))
    if os.geteuid() == 0:
        os.chmod(root, 0o755)  # the postgres user reaches its data folder
    sched = schedule(faults, args.trials, args.seed)
    uts = can_unshare()
    netns_ok = Network.available()
    if args.netns and not netns_ok:
        ap.error("--netns needs root and a working 'ip netns' (iproute2)")
    use_netns = netns_ok if args.netns is None else args.netns
    network_note = ("one network namespace per host, joined by a veth pair (only the two servers' URLs reach out)"
                    if use_netns else "shared (no network namespaces: " + ("--no-netns)" if netns_ok else
                                                                             "not root, or no 'ip netns')"))
    print(f"rehearsal: {args.hosts} hosts, workers {workers} (cycled), {args.trials} trials of {args.strategy} on "
          f"{args.dataset} at {args.image_size} px; heartbeat {args.heartbeat} s (grace {2 * args.heartbeat} s); "
          f"seed {args.seed}; hostnames: {'one UTS namespace per host' if uts else 'shared (unshare -u failed)'}; "
          f"network: {network_note}; scratch {root}")
    print("fault schedule (finished trials: fault):", ", ".join(f"{a}: {f}" for a, f in sched) or "none")
    log: dict = {"events": [], "schedule": sched, "args": vars(args)}
    pg = server = net = None
    code = 1
    try:
        # one slot per host and one for the fresh host that predicts at the end
        net = Network(args.hosts + 1) if use_netns else None
        pg = Postgres(root / "pg", listen=net.addresses() if net else ())
        for db in ("optuna", "mlflow", "optuna_one"):
            pg.sql(f"CREATE DATABASE {db}")
        max_conn = pg.sql("SHOW max_connections")[0][0]
        (root / "server-only").mkdir()
        server = MlflowServer(pg.url("mlflow", "+psycopg"), root / "server-only" / "artifacts",
                              root / "mlflow-server.log", everywhere=net is not None)
        server.start()
        say(f"PostgreSQL on port {pg.port} (max_connections {max_conn}); mlflow server at {server.url}, "
            f"artifacts in {root / 'server-only'} (no host sees it)")
        _TRIALS["many"] = args.trials
        run = run_hosts(args, pg, server, root, "many", "optuna", args.hosts, workers, sched, uts, log, net)
        checks = check(args, pg, server, run, "many", root, log, net)
        base = None
        if args.baseline:
            _TRIALS["one"] = args.trials
            base = run_hosts(args, pg, server, root, "one", "optuna_one", 1, [sum(workers) // len(workers) or 1],
                             [], uts, {"events": []}, net)
        ops = storage_op_times(pg.url("optuna"))
        print("\nevents:")
        for e in log["events"]:
            print("  " + e)
        print("\nchecks:")
        for what, ok, detail in checks:
            print(f"  {'PASS' if ok else 'FAIL'}  {what}: {detail}")
        tpm = args.trials / (run["wall"] / 60)
        print("\nnumbers:")
        print(f"  {args.hosts} hosts: {args.trials} trials in {run['wall']:.0f} s from the start to the last trial's "
              f"end = {tpm:.1f} trials/min ({'with the faults; ' if sched else ''}runs per host "
              f"{[h.runs for h in run['hosts']]})")
        if run["steady"]:
            print(f"  {args.hosts} hosts from the first trial's end to the last's: {run['steady']:.1f} trials/min")
        if base is not None:
            btpm = args.trials / (base["wall"] / 60)
            print(f"  1 host alone ({base['hosts'][0].workers} worker(s), no faults): {args.trials} trials in "
                  f"{base['wall']:.0f} s = {btpm:.1f} trials/min; ratio {tpm / btpm:.2f}x"
                  + (f"; from its first trial's end to the last's: {base['steady']:.1f} trials/min"
                     if base["steady"] else ""))
        print(f"  PostgreSQL connections at peak: {run['peak']['total']} in all, {run['peak'].get('optuna', 0)} on "
              f"the study's database, {run['peak'].get('mlflow', 0)} on MLflow's (max_connections {max_conn})")
        print("  storage time per operation (median ms): " + ", ".join(f"{k} {v:.1f}" for k, v in ops.items()))
        code = 0 if all(ok for _, ok, _ in checks) else 1
        print(f"\nresult: {'PASS' if code == 0 else 'FAIL'}")
        if args.json:
            Path(args.json).write_text(json.dumps({
                "checks": [{"check": c, "ok": ok, "detail": d} for c, ok, d in checks], "events": log["events"],
                "schedule": sched, "endings": log.get("endings"), "retried": log.get("retried"),
                "wall": run["wall"], "trials_per_minute": tpm, "steady_trials_per_minute": run["steady"],
                "baseline_trials_per_minute": None if base is None else args.trials / (base["wall"] / 60),
                "peak_connections": run["peak"], "max_connections": int(max_conn), "storage_ms": ops,
                "host_runs": [h.runs for h in run["hosts"]], "network": network_note, "pass": code == 0},
                indent=2))
    finally:
        if server is not None:
            server.stop()
        if pg is not None:
            try:
                pg.stop()
            except subprocess.CalledProcessError:
                pass
        if net is not None:
            net.close()
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
        else:
            print(f"kept {root}")
    return code


if __name__ == "__main__":
    sys.exit(main())
