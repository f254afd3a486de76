#!/usr/bin/env python3
"""Whole-process start-up benchmark: `edgeinit run` beside cloud-init, in one run.

edgeinit runs several times per boot on small devices, so what matters is the cost of a
whole process (interpreter, imports, config load, work, exit), not of a function call.
Each scenario is timed as a child process; the fast ones are interleaved round-robin so
machine noise hits them alike. Standard library only; see README.md. Run setup.sh first.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
VENV = HERE / ".venv"
EDGEINIT = VENV / "bin" / "edgeinit"
VENV_PYTHON = VENV / "bin" / "python"
SAMPLE = REPO / "samples" / "derivative" / "system" / "oem"
RESULTS = HERE / "results"
CLOUD_INIT = "/usr/bin/cloud-init"
GNU_TIME = "/usr/bin/time"

# Targets are ratios to the cloud-init baseline (median wall, median peak RSS).
TARGETS: dict[str, dict[str, float]] = {"A": {"time": 0.4, "rss": 0.6}, "C": {"time": 0.25}}
SCALE_TARGET = (1000, 5.0)  # 1000 files in under 5 s
SCALE_STAGE = "boot"
STEPS_PER_FILE = 10

# Variables that would change what the children import or log; the rest of the
# environment is passed through unchanged.
SCRUBBED_PREFIXES = ("PYTHON", "EDGEINIT_")


@dataclass
class Sample:
    """One whole-process run: wall time around the child, its peak RSS, its exit code."""

    wall_s: float
    maxrss_kib: int
    exit_code: int


@dataclass
class Scenario:
    """A command timed as a whole process, with its untimed per-run preparation."""

    key: str
    title: str
    argv: list[str]
    env: dict[str, str]
    prepare: Callable[[], None]
    output: Path  # the child's stdout+stderr (last run)
    report: Path | None = None  # edgeinit's stored run report (last run)
    samples: list[Sample] = field(default_factory=list)
    timeout_s: float | None = None

    def run_once(self, cwd: Path) -> Sample:
        self.prepare()
        sample = measure(self.argv, self.env, self.output, cwd, self.timeout_s)
        self.samples.append(sample)
        return sample


def rss_via_gnu_time() -> bool:
    """Whether peak RSS is taken by GNU time's wait4 rather than by ours.

    ru_maxrss of a child spawned by this Python process starts at this process's RSS:
    the vfork'd child execs from our address space and exec keeps its high-water mark
    (a /bin/true spawned from here reports ~10 MiB, from a 300 MiB parent ~310 MiB).
    GNU time is a ~1 MiB C program doing the same wait4, so its figure is the child's.
    """
    return os.access(GNU_TIME, os.X_OK)


def measure(argv: list[str], env: dict[str, str], output: Path, cwd: Path,
            timeout_s: float | None = None) -> Sample:
    """Time one child from spawn to reaping; its peak RSS (KiB) from wait4's ru_maxrss.

    The rusage covers the child and the descendants it reaped, so a helper it waits for
    counts too (one it leaves running, like cloud-init's `tee`, does not). The wall
    time includes GNU time's own fork and exec (~1.5 ms, the same for every scenario;
    the output reports it as the spawn overhead).
    """
    rss_file = output.with_suffix(".rss")
    wrapped = [GNU_TIME, "-f", "%M", "-o", str(rss_file), *argv] if rss_via_gnu_time() else argv
    with open(output, "wb") as out:
        start = time.perf_counter()
        proc = subprocess.Popen(wrapped, env=env, cwd=cwd, stdin=subprocess.DEVNULL,
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        timer = None
        if timeout_s:  # os.killpg, not proc.kill: Popen's poll() would race our wait4
            timer = threading.Timer(timeout_s, os.killpg, (proc.pid, signal.SIGKILL))
            timer.start()
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        if timer:
            timer.cancel()
    proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
    maxrss = usage.ru_maxrss
    if wrapped is not argv:
        try:  # the last line; "Command exited with non-zero status N" may come first
            maxrss = int(rss_file.read_text().split()[-1])
        except (OSError, ValueError, IndexError):
            maxrss = -1  # GNU time itself was killed (timeout)
    return Sample(wall, maxrss, proc.returncode)


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(SCRUBBED_PREFIXES)}
    env.update(extra)
    return env


ACCOUNTS = {  # a small Debian-like /etc: the seed's users and entities steps have work to do
    "passwd": "root:x:0:0:root:/root:/bin/bash\ndaemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n"
              "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n",
    "shadow": "root:*:19000:0:99999:7:::\ndaemon:*:19000:0:99999:7:::\n"
              "nobody:*:19000:0:99999:7:::\n",
    "group": "root:x:0:\ndaemon:x:1:\nshadow:x:42:\nusers:x:100:\nnogroup:x:65534:\n",
    "gshadow": "root:*::\ndaemon:*::\nshadow:*::\nusers:*::\nnogroup:*::\n",
}


def fresh_root(root: Path, state: Path | None = None) -> None:
    """A scratch target root with a minimal /etc (hosts, account files, skel), and an
    empty state dir."""
    for path in (root, state):
        if path is not None and path.exists():
            shutil.rmtree(path)
    (root / "etc" / "skel").mkdir(parents=True)
    (root / "etc" / "hosts").write_text("127.0.0.1\tlocalhost\n")
    (root / "etc" / "skel" / ".profile").write_text("# ~/.profile\n")
    for name, text in ACCOUNTS.items():
        (root / "etc" / name).write_text(text)
        if name in ("shadow", "gshadow"):
            os.chmod(root / "etc" / name, 0o640)
    if state is not None:
        state.mkdir(parents=True)


def p90(values: list[float]) -> float:
    if len(values) < 2:
        return values[0]
    return statistics.quantiles(values, n=10, method="inclusive")[8]


def mib(kib: float) -> str:
    return f"{kib / 1024:.1f} MiB" if kib >= 0 else "n/a (killed)"


def summarise(samples: list[Sample]) -> dict[str, Any]:
    walls = [s.wall_s for s in samples]
    rss = [s.maxrss_kib for s in samples if s.maxrss_kib >= 0]
    return {
        "runs": len(samples),
        "median_wall_s": statistics.median(walls),
        "p90_wall_s": p90(walls),
        "min_wall_s": min(walls),
        "median_maxrss_kib": statistics.median(rss) if rss else -1,
        "exit_codes": sorted({s.exit_code for s in samples}),
        "samples": [vars(s) for s in samples],
    }


def read_report(path: Path | None) -> dict[str, Any] | None:
    """edgeinit's stored report of the last run: which steps failed, and why."""
    if path is None or not path.exists():
        return None
    data = json.loads(path.read_text())
    steps = data.get("steps", [])
    counts: dict[str, int] = {}
    for step in steps:
        counts[step.get("status", "?")] = counts.get(step.get("status", "?"), 0) + 1
    failed = [{"name": s.get("name"), "error": (s.get("error") or "").replace("\n", " / ")}
              for s in steps if s.get("status") == "failed"]
    return {"steps": len(steps), "counts": counts, "failed": failed[:20],
            "failed_total": len(failed)}


# --- scenarios -----------------------------------------------------------------------

CLOUD_LOG_CFG = """\
[loggers]
keys=root,cloudinit
[handlers]
keys=consoleHandler,cloudLogHandler
[formatters]
keys=simpleFormatter,arg0Formatter
[logger_root]
level=DEBUG
handlers=consoleHandler,cloudLogHandler
[logger_cloudinit]
level=DEBUG
qualname=cloudinit
handlers=
propagate=1
[handler_consoleHandler]
class=StreamHandler
level=WARNING
formatter=arg0Formatter
args=(sys.stderr,)
[formatter_arg0Formatter]
format=%(asctime)s - %(filename)s[%(levelname)s]: %(message)s
[formatter_simpleFormatter]
format=[CLOUDINIT] %(filename)s[%(levelname)s]: %(message)s
"""


def cloud_init_config(state: Path) -> str:
    """One write_files entry; cloud-init's state, log and output moved under `state`.

    Debian's /etc/cloud/cloud.cfg.d/05_logging.cfg logs to /var/log/cloud-init.log and
    tees output to /var/log/cloud-init-output.log, and `single` writes instance data to
    /run/cloud-init. The same handlers with other paths keep the cost and spare the host.
    """
    handler = ("[handler_cloudLogHandler]\nclass=FileHandler\nlevel=DEBUG\n"
               f"formatter=arg0Formatter\nargs=('{state}/cloud-init.log', 'a', 'UTF-8')\n")
    cfg = {
        "system_info": {"paths": {"cloud_dir": f"{state}/var/lib/cloud",
                                  "run_dir": f"{state}/run/cloud-init"}},
        "log_cfgs": [[CLOUD_LOG_CFG, handler]],
        "output": {"all": f"| tee -a {state}/cloud-init-output.log"},
        "write_files": [{"path": f"{state}/out/etc/motd", "content": "hello from cloud-init\n",
                         "permissions": "0644"}],
    }
    return "#cloud-config\n" + json.dumps(cfg, indent=2) + "\n"  # JSON is YAML


def baseline_scenario(work: Path) -> Scenario:
    state = work / "baseline" / "state"
    config = work / "baseline" / "cloud-config.yaml"
    config.parent.mkdir(parents=True)
    config.write_text(cloud_init_config(state))

    def prepare() -> None:
        if state.exists():
            shutil.rmtree(state)
        state.mkdir()

    argv = [CLOUD_INIT, "--file", str(config), "single", "--name", "write_files",
            "--frequency", "always"]
    return Scenario("baseline", "cloud-init single write_files", argv, clean_env(), prepare,
                    work / "baseline" / "output.txt")


def edgeinit_scenario(work: Path, key: str, title: str, stage: str, sources: list[Path],
                      level: str = "warning", timeout_s: float | None = None) -> Scenario:
    base = work / key
    root, state, cmdline = base / "root", base / "state", work / "cmdline-empty"
    cmdline.touch()
    argv = [str(EDGEINIT), "run", "--stage", stage, "--root", str(root),
            "--cmdline", str(cmdline), *map(str, sources)]
    env = clean_env(EDGEINIT_STATE_DIR=str(state), EDGEINIT_LOG_LEVEL=level)
    fresh_root(root, state)
    return Scenario(key, title, argv, env, lambda: fresh_root(root, state),
                    base / "output.txt", report=state / f"{stage}.json", timeout_s=timeout_s)


def scale_config(index: int) -> str:
    """One generated config: STEPS_PER_FILE steps alternating `files` and `environment`."""
    lines = [f'name: "bench config {index:05d}"', "stages:", f"  {SCALE_STAGE}:"]
    where = f"/srv/bench/c{index:05d}"
    for step in range(STEPS_PER_FILE):
        if step % 2 == 0:
            lines += [f'    - name: "file {step}"', "      files:",
                      f"        - path: {where}/file{step}.conf",
                      f'          content: "config {index} step {step}\\n"',
                      "          permissions: 0644"]
        else:
            lines += [f'    - name: "env {step}"',
                      f"      environment_file: {where}/bench.env",
                      "      environment:", f'        KEY_{step}: "value-{index}-{step}"']
    return "\n".join(lines) + "\n"


# --- import-time profile -------------------------------------------------------------

IMPORT_LINE = re.compile(r"^import time:\s+(\d+)\s+\|\s+(\d+)\s+\|(\s*)(\S+)\s*$")


def parse_importtime(text: str) -> list[tuple[int, int, int, str]]:
    """(self us, cumulative us, nesting depth, module) per `-X importtime` line."""
    rows = []
    for line in text.splitlines():
        m = IMPORT_LINE.match(line)
        if m:
            depth = (len(m.group(3)) - 1) // 2
            rows.append((int(m.group(1)), int(m.group(2)), depth, m.group(4)))
    return rows


def importtime_profile(scenario: Scenario, work: Path, runs: int, top: int) -> dict[str, Any]:
    """Profile the scenario's imports with `python -X importtime -m edgeinit`.

    Of `runs` profiles, the one with the median total is kept (the first imports of a
    fresh process are noisy). The report lists the top cumulative imports and the
    self time summed per top-level package (where the start-up goes).
    """
    argv = [str(VENV_PYTHON), "-X", "importtime", "-m", "edgeinit", *scenario.argv[1:]]
    profiles = []
    for i in range(runs):
        scenario.prepare()
        raw = work / f"importtime-{scenario.key}-{i}.txt"
        sample = measure(argv, scenario.env, raw, work)
        rows = parse_importtime(raw.read_text(errors="replace"))
        profiles.append((sum(r[0] for r in rows), sample, rows, raw))
    profiles.sort(key=lambda p: p[0])
    total_us, sample, rows, raw = profiles[len(profiles) // 2]
    packages: dict[str, int] = {}
    for self_us, _, _, module in rows:
        name = module.split(".")[0]
        packages[name] = packages.get(name, 0) + self_us
    top_cumulative = sorted(rows, key=lambda r: r[1], reverse=True)[:top]
    top_packages = sorted(packages.items(), key=lambda kv: kv[1], reverse=True)[:top]

    text = [f"# import-time profile, scenario {scenario.key}: {scenario.title}",
            "# command: " + " ".join(argv),
            f"# wall {sample.wall_s:.3f} s (with -X importtime), peak RSS "
            f"{sample.maxrss_kib / 1024:.1f} MiB, {len(rows)} modules, sum of self times "
            f"{total_us / 1000:.1f} ms (median of {runs} profiles)", "",
            f"## top {top} by cumulative time (ms; nesting depth; module)"]
    text += [f"{cum / 1000:8.1f}  {depth:2d}  {module}" for _, cum, depth, module in
             top_cumulative]
    text += ["", f"## top {top} top-level packages by summed self time (ms)"]
    text += [f"{us / 1000:8.1f}  {name}" for name, us in top_packages]
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"importtime-{scenario.key}.txt"
    out.write_text("\n".join(text) + "\n")
    shutil.copy(raw, RESULTS / f"importtime-{scenario.key}.raw.txt")
    print("\n".join(text) + "\n")
    return {"file": str(out.relative_to(REPO)), "total_self_ms": total_us / 1000,
            "modules": len(rows), "wall_s": sample.wall_s,
            "top_cumulative": [{"module": m, "cumulative_ms": c / 1000, "depth": d}
                               for _, c, d, m in top_cumulative],
            "top_packages": [{"package": n, "self_ms": us / 1000} for n, us in top_packages]}


def cprofile_scale(work: Path, n: int, top: int) -> dict[str, Any]:
    """cProfile one D run of `n` files: where the per-step time goes, for the lead.

    Not a timing (cProfile slows Python calls several-fold); the ranking is what counts.
    """
    import io
    import pstats

    configs = work / f"cprofile-{n}-configs"
    configs.mkdir()
    for i in range(n):
        (configs / f"cfg-{i:05d}.yaml").write_text(scale_config(i))
    sc = edgeinit_scenario(work, f"cprofile-D{n}", f"{n} files under cProfile", SCALE_STAGE,
                           [configs])
    prof = work / "cprofile.out"
    argv = [str(VENV_PYTHON), "-m", "cProfile", "-o", str(prof), "-m", "edgeinit",
            *sc.argv[1:]]
    sample = measure(argv, sc.env, sc.output, work)
    text = io.StringIO()
    stats = pstats.Stats(str(prof), stream=text)
    stats.strip_dirs()
    text.write(f"# cProfile of scenario D with {n} files (exit {sample.exit_code}, "
               f"{sample.wall_s:.2f} s under the profiler)\n# command: {' '.join(argv)}\n")
    for order in ("cumulative", "tottime"):
        text.write(f"\n## top {top} by {order}\n")
        stats.sort_stats(order).print_stats(top)
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"cprofile-D{n}.txt"
    out.write_text(text.getvalue())
    print(f"wrote {out}", file=sys.stderr)
    return {"file": str(out.relative_to(REPO)), "n": n, "wall_s": sample.wall_s}


# --- reporting -----------------------------------------------------------------------

def ratio(value: float, base: float) -> float:
    return value / base if base else float("nan")


def fast_table(results: dict[str, dict[str, Any]]) -> str:
    base = results["baseline"]
    rows = ["| scenario | runs | median wall | p90 wall | median peak RSS | time / cloud-init "
            "(target) | RSS / cloud-init (target) | exit |",
            "|---|---|---|---|---|---|---|---|"]
    for key, r in results.items():
        target = TARGETS.get(key, {})
        t_ratio = ratio(r["median_wall_s"], base["median_wall_s"])
        m_ratio = ratio(r["median_maxrss_kib"], base["median_maxrss_kib"])
        t_target = f" (<= {target['time']}x)" if "time" in target else ""
        m_target = f" (<= {target['rss']}x)" if "rss" in target else ""
        rows.append(f"| {key}: {r['title']} | {r['runs']} | {r['median_wall_s']:.3f} s "
                    f"| {r['p90_wall_s']:.3f} s | {mib(r['median_maxrss_kib'])} "
                    f"| {t_ratio:.2f}x{t_target} | {m_ratio:.2f}x{m_target} "
                    f"| {','.join(map(str, r['exit_codes']))} |")
    return "\n".join(rows)


def scale_table(rows: list[dict[str, Any]], startup_s: float) -> str:
    n_target, s_target = SCALE_TARGET
    out = ["| files (x10 steps) | runs | median wall | time(N)/N | (time - C)/N | vs smallest N "
           "| median peak RSS | steps ok/failed | exit | second run (nothing to write) |",
           "|---|---|---|---|---|---|---|---|---|---|"]
    first = rows[0]["per_file_ms"] if rows else 0.0
    for r in rows:
        target = f" (target < {s_target:g} s)" if r["n"] == n_target else ""
        steps = r.get("steps") or {}
        counts = steps.get("counts", {})
        out.append(f"| {r['n']} | {r['runs']} | {r['median_wall_s']:.2f} s{target} "
                   f"| {r['per_file_ms']:.2f} ms | {r['marginal_per_file_ms']:.2f} ms "
                   f"| {ratio(r['per_file_ms'], first):.2f}x "
                   f"| {mib(r['median_maxrss_kib'])} "
                   f"| {counts.get('ok', 0)}/{counts.get('failed', 0)} "
                   f"| {','.join(map(str, r['exit_codes']))} "
                   f"| {r.get('converged_wall_s', float('nan')):.2f} s |")
    out.append(f"\n(time - C)/N subtracts scenario C's median ({startup_s:.3f} s), the cost of a "
               "run with no steps.")
    return "\n".join(out)


def command_output(argv: list[str]) -> str:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    except OSError as e:
        return f"unavailable: {e}"
    return (done.stdout + done.stderr).strip()


def metadata() -> dict[str, Any]:
    dirty = command_output(["git", "-C", str(REPO), "status", "--porcelain",
                            "--untracked-files=no", "--", ".", ":!benchmarks"])
    return {
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": platform.machine(), "cpus": os.cpu_count(),
        "loadavg_start": os.getloadavg(),
        "kernel": platform.release(),
        "venv_python": command_output([str(VENV_PYTHON), "-c",
                                       "import sys; print(sys.version.split()[0])"]),
        "edgeinit": command_output([str(EDGEINIT), "--version"]),
        "cloud_init": command_output([CLOUD_INIT, "--version"]),
        "git_head": command_output(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"]),
        "git_modified_files": len(dirty.splitlines()) if dirty else 0,
        "rss_method": "GNU time %M (its wait4 ru_maxrss)" if rss_via_gnu_time()
        else "wait4 from Python (floor: this process's RSS, inflated)",
    }


# --- main ----------------------------------------------------------------------------

def run_fast(scenarios: list[Scenario], runs: int, cwd: Path) -> None:
    """One untimed warm-up each, then `runs` rounds, rotating the order every round."""
    for sc in scenarios:
        sc.prepare()
        measure(sc.argv, sc.env, sc.output, cwd, sc.timeout_s)
    for i in range(runs):
        k = i % len(scenarios)
        for sc in scenarios[k:] + scenarios[:k]:
            sc.run_once(cwd)
        print(f"\rround {i + 1}/{runs}", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)


def run_scaling(work: Path, fs: str, sizes: list[int], runs: int, timeout_s: float,
                startup_s: float) -> list[dict[str, Any]]:
    """Scenario D on one filesystem: edgeinit fsyncs every write, so disk vs tmpfs differ."""
    rows = []
    for n in sizes:
        configs = work / f"scale-{n}-configs"
        configs.mkdir()
        for i in range(n):
            (configs / f"cfg-{i:05d}.yaml").write_text(scale_config(i))
        sc = edgeinit_scenario(work, f"D{n}", f"{n} files x {STEPS_PER_FILE} steps",
                               SCALE_STAGE, [configs], timeout_s=timeout_s)
        for _ in range(runs):
            sample = sc.run_once(work)
            print(f"D ({fs}) N={n}: {sample.wall_s:.2f} s, exit {sample.exit_code}",
                  file=sys.stderr)
            if sample.wall_s > timeout_s * 0.9:  # killed or nearly: one is enough
                break
        report = read_report(sc.report)
        # The same stage again on the converged root: every step plans, nothing is written.
        again = measure(sc.argv, sc.env, sc.output, work, sc.timeout_s)
        print(f"D ({fs}) N={n} second run: {again.wall_s:.2f} s, exit {again.exit_code}",
              file=sys.stderr)
        row = summarise(sc.samples) | {"n": n, "fs": fs, "title": sc.title, "steps": report,
                                       "converged_wall_s": again.wall_s}
        row["per_file_ms"] = row["median_wall_s"] / n * 1000
        row["marginal_per_file_ms"] = (row["median_wall_s"] - startup_s) / n * 1000
        rows.append(row)
        shutil.rmtree(configs)
        shutil.rmtree(work / sc.key)
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=15, help="runs per fast scenario (15)")
    ap.add_argument("--scale-sizes", default="250,500,1000,2000",
                    help="file counts for scenario D (250,500,1000,2000)")
    ap.add_argument("--scale-runs", type=int, default=3, help="runs per size in D (3)")
    ap.add_argument("--scale-timeout", type=float, default=300.0,
                    help="kill a D run after this many seconds (300)")
    ap.add_argument("--no-scaling", action="store_true", help="skip scenario D")
    ap.add_argument("--scale-fs", default="disk,tmpfs",
                    help="where D's root lives: disk (the temp dir), tmpfs (/dev/shm); both")
    ap.add_argument("--importtime", action="store_true",
                    help="also write import-time profiles of A and C to results/")
    ap.add_argument("--importtime-runs", type=int, default=3)
    ap.add_argument("--cprofile", type=int, metavar="N", default=0,
                    help="also cProfile one scenario-D run of N files into results/")
    ap.add_argument("--json", type=Path, default=RESULTS / "latest.json",
                    help="where to write the results (results/latest.json)")
    args = ap.parse_args()

    missing = [str(p) for p in (EDGEINIT, VENV_PYTHON, Path(CLOUD_INIT)) if not p.exists()]
    if missing:
        print(f"missing {', '.join(missing)}: run benchmarks/setup.sh first", file=sys.stderr)
        return 2

    meta = metadata()
    with tempfile.TemporaryDirectory(prefix="edgeinit-bench-") as tmp:
        calib = [measure(["/bin/true"], clean_env(), Path(tmp) / "true.txt", Path(tmp))
                 for _ in range(20)]
    meta["spawn_overhead_s"] = statistics.median(c.wall_s for c in calib)
    meta["spawn_floor_rss_kib"] = statistics.median(c.maxrss_kib for c in calib)
    # Children run from the scratch dir, never the repo: `python -m edgeinit` there would
    # import the work tree instead of the installed package.
    with tempfile.TemporaryDirectory(prefix="edgeinit-bench-") as tmp:
        work = Path(tmp)
        fast = [
            baseline_scenario(work),
            edgeinit_scenario(work, "A", "seed initramfs stage", "initramfs", [SAMPLE]),
            edgeinit_scenario(work, "A-info", "A at log level info", "initramfs", [SAMPLE],
                              level="info"),
            edgeinit_scenario(work, "C", "stage with no steps", "nosuchstage", [SAMPLE]),
        ]
        run_fast(fast, args.runs, work)
        results = {sc.key: {"title": sc.title, "argv": sc.argv} | summarise(sc.samples)
                   | {"steps": read_report(sc.report)} for sc in fast}
        base_out = fast[0].output.read_text(errors="replace")
        if results["baseline"]["exit_codes"] != [0]:
            print(f"WARNING: cloud-init failed; its output:\n{base_out}", file=sys.stderr)
        results["baseline"]["wrote_file"] = (work / "baseline/state/out/etc/motd").exists()

        scaling: dict[str, list[dict[str, Any]]] = {}
        startup_s = results["C"]["median_wall_s"]
        sizes = [int(s) for s in args.scale_sizes.split(",") if s.strip()]
        for fs in [] if args.no_scaling else args.scale_fs.split(","):
            if fs == "disk":
                scaling[fs] = run_scaling(work, fs, sizes, args.scale_runs,
                                          args.scale_timeout, startup_s)
            elif fs == "tmpfs" and Path("/dev/shm").is_dir():
                with tempfile.TemporaryDirectory(prefix="edgeinit-bench-", dir="/dev/shm") as t:
                    scaling[fs] = run_scaling(Path(t), fs, sizes, args.scale_runs,
                                              args.scale_timeout, startup_s)

        profiles = {}
        if args.importtime:
            for sc in fast:
                if sc.key in ("A", "C"):
                    profiles[sc.key] = importtime_profile(sc, work, args.importtime_runs, 15)
        if args.cprofile:
            profiles["cprofile"] = cprofile_scale(work, args.cprofile, 25)
    meta["loadavg_end"] = os.getloadavg()

    print(f"\n## edgeinit start-up vs cloud-init ({meta['date']}, {meta['cpus']} CPUs, "
          f"{meta['edgeinit']}, git {meta['git_head']} + {meta['git_modified_files']} "
          f"modified files outside benchmarks/, cloud-init {meta['cloud_init'].split()[-1]})\n")
    print(fast_table(results))
    print(f"\nPeak RSS: {meta['rss_method']}. Spawn overhead in every wall figure: "
          f"{meta['spawn_overhead_s'] * 1000:.1f} ms (median of /bin/true, whose peak RSS "
          f"reads {meta['spawn_floor_rss_kib'] / 1024:.1f} MiB).")
    for key in ("A", "C"):
        steps = results[key]["steps"]
        if steps:
            print(f"\n{key}: {steps['steps']} steps, {steps['counts']}")
            for f in steps["failed"]:
                print(f"  failed: {f['name']}: {f['error']}")
    print(f"\nbaseline wrote its file: {results['baseline']['wrote_file']}")
    for fs, rows in scaling.items():
        where = "/dev/shm (tmpfs)" if fs == "tmpfs" else f"{tempfile.gettempdir()} ({fs})"
        print(f"\n## D: scaling, generated configs, root on {where}\n")
        print(scale_table(rows, startup_s))

    out = {"meta": meta, "targets": {"ratios_to_baseline": TARGETS,
                                     "scale": {"files": SCALE_TARGET[0],
                                               "max_s": SCALE_TARGET[1]}},
           "scenarios": results, "scaling": scaling, "importtime": profiles}
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(out, indent=2) + "\n")
    print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
