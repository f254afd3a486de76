"""The daemon's main loop: reconcile on an interval and on config changes, apply
labelled devices, serve the D-Bus API, talk to the service manager.

One stage runs at a time (an asyncio lock; RunStage waits for it), in a worker thread,
so the loop keeps answering D-Bus calls and pinging the watchdog meanwhile. A failing
stage (an exception or a failed report) is logged and never ends the daemon. SIGTERM
and SIGINT stop taking work, let the current step finish (the runner checks
Runner.stop_requested between steps; the steps not run are reported failed), send
STOPPING=1 and exit 0.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
from typing import Any

from edgeinit.daemon import NameTaken, Stopping, notify, udev
from edgeinit.daemon.watch import ConfigWatcher
from edgeinit.engine.report import Report, read_reports
from edgeinit.engine.runner import Runner
from edgeinit.log import log

RECONCILE = "reconcile"


class Options:
    def __init__(self, root: str = "/", interval: float = 3600.0, debounce: float = 5.0,
                 labels: tuple[str, ...] | list[str] = udev.DEFAULT_LABELS,
                 cmdline: str | None = None) -> None:
        self.root = root
        self.interval = interval
        self.debounce = debounce
        self.labels = list(labels)
        self.cmdline = cmdline  # file to read the kernel command line from


def read_cmdline(path: str | None) -> str:
    try:
        with open(path or "/proc/cmdline", encoding="utf-8", errors="replace") as f:
            return f.read()
    except OSError as e:
        if path:
            log.warning("cannot read the command line file %s: %s", path, e.strerror or e)
        return ""


class Daemon:
    def __init__(self, options: Options, notifier: notify.Notifier | None = None) -> None:
        self.options = options
        self.notifier = notifier or notify.Notifier()
        self.stopping = False
        self.reports: dict[str, str] = {}  # stage -> report JSON, of this daemon's runs
        self.bus: Any = None  # bus.BusService once connected
        self.watcher: ConfigWatcher | None = None
        self.devices: udev.DeviceMonitor | None = None
        self._lock = asyncio.Lock()  # one stage at a time
        self._wanted = asyncio.Event()  # a reconcile is asked for
        self._stop = asyncio.Event()
        self._tasks: set[asyncio.Task[Any]] = set()

    # -- running stages ------------------------------------------------------------

    def run_sync(self, stage: str, sources: list[str]) -> Report:
        """One stage, as `edgeinit run --stage STAGE --root ROOT [SOURCE ...]` (blocking)."""
        from edgeinit.engine.stage import run_stage
        from edgeinit.target.root import TargetRoot

        return run_stage(stage, sources, TargetRoot(self.options.root),
                         cmdline=read_cmdline(self.options.cmdline))

    async def run_stage(self, stage: str, why: str) -> Report:
        """Run `stage` with the default sources once no other stage runs; raises
        Stopping when the daemon is stopping."""
        return await self._locked(stage, why, lambda: self.run_sync(stage, []))

    async def _locked(self, stage: str, why: str, work: Any) -> Any:
        async with self._lock:
            if self.stopping:
                raise Stopping(stage)
            log.info("daemon: running stage %s (%s)", stage, why)
            self.notifier.status(f"running stage {stage} ({why})")
            try:
                report = await asyncio.to_thread(work)
            finally:
                self.notifier.status(self._idle_status())
            if report is not None:
                self._finished(stage, report)
            return report

    def _finished(self, stage: str, report: Report) -> None:
        self.reports[stage] = report.to_json()
        failed = sum(1 for s in report.steps if s.status == "failed")
        if report.ok:
            log.info("daemon: stage %s ok (%d steps, %.2f s)", stage, len(report.steps),
                     report.duration_s)
        else:
            log.error("daemon: stage %s failed: %d of %d steps failed (edgeinit status "
                      "shows the report)", stage, failed, len(report.steps))
        if self.bus is not None:
            self.bus.stage_finished(stage, report.ok)

    async def guarded(self, stage: str, why: str, work: Any) -> Any:
        """_locked, with every failure logged instead of raised."""
        try:
            return await self._locked(stage, why, work)
        except Stopping:
            return None
        except Exception as e:
            log.exception("daemon: stage %s (%s) failed: %s: %s", stage, why,
                          type(e).__name__, e)
            return None

    def stages(self) -> dict[str, str]:
        """The last report of each stage: the state directory's, else this daemon's."""
        out = dict(self.reports)
        for stage, data in read_reports().items():
            out[stage] = json.dumps(data)
        return out

    def _idle_status(self) -> str:
        if RECONCILE in self.reports:
            ok = json.loads(self.reports[RECONCILE]).get("ok")
            return f"idle; last reconcile {'ok' if ok else 'failed'}"
        return "idle"

    # -- triggers ----------------------------------------------------------------------

    def request_reconcile(self) -> None:
        """A config change: reconcile soon (once, however many changes came)."""
        if not self.stopping:
            log.info("daemon: the config changed; reconciling")
            self._wanted.set()

    async def _reconcile_loop(self) -> None:
        while not self.stopping:
            try:
                await asyncio.wait_for(self._wanted.wait(), self.options.interval)
                why = "config change"
            except TimeoutError:
                why = f"every {self.options.interval:g} s"
            self._wanted.clear()
            if self.stopping:
                return
            await self.guarded(RECONCILE, why, lambda: self.run_sync(RECONCILE, []))

    def _device_appeared(self, devnode: str, label: str) -> None:
        self._spawn(self.guarded(
            udev.DEVICE_STAGE, f"device {devnode} labelled {label}",
            lambda: udev.apply_device(
                devnode, lambda directory: self.run_sync(udev.DEVICE_STAGE, [directory]))))

    def _spawn(self, coro: Any) -> asyncio.Task[Any]:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _watchdog(self, interval: float) -> None:
        while True:
            self.notifier.watchdog()
            await asyncio.sleep(interval)

    # -- life cycle ----------------------------------------------------------------------

    def request_stop(self, signum: int) -> None:
        if self.stopping:
            log.info("daemon: already stopping")
            return
        name = signal.Signals(signum).name
        log.info("daemon: %s received; stopping after the current step", name)
        self.stopping = True
        Runner.stop_requested = True
        self.notifier.stopping(f"stopping ({name})")
        self._stop.set()

    async def main(self) -> int:
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self.request_stop, signum)
        self.notifier.status("starting")
        try:
            from edgeinit.daemon.bus import BusService

            bus = BusService(self)
            await bus.start()
            self.bus = bus
        except NameTaken as e:  # the name is taken: never run two daemons at once
            log.error("daemon: %s", e)
            return 1
        except Exception as e:
            log.error("daemon: the D-Bus API is not available (%s: %s); reconciling "
                      "without it", type(e).__name__, e)
        try:
            self.watcher = ConfigWatcher(self.options.root, self.request_reconcile,
                                         debounce=self.options.debounce, loop=loop)
            self.watcher.start()
        except OSError as e:
            self.watcher = None
            log.error("daemon: cannot watch the config directories (%s); reconciling "
                      "every %g s only", e.strerror or e, self.options.interval)
        self.devices = udev.DeviceMonitor(self.options.labels, self._device_appeared)
        self.devices.start(loop)
        background = [asyncio.ensure_future(self._reconcile_loop())]
        if self.notifier.watchdog_s:
            background.append(asyncio.ensure_future(self._watchdog(self.notifier.watchdog_s)))
        log.info("daemon: ready (root %s, reconcile every %g s and %g s after a config "
                 "change)", self.options.root, self.options.interval, self.options.debounce)
        self.notifier.ready(self._idle_status())
        await self._stop.wait()
        # Stopping: no new work; the stage that runs finishes its current step.
        if self.watcher is not None:
            self.watcher.close()
        self.devices.close()
        async with self._lock:
            pass
        for task in background:
            task.cancel()
        await asyncio.gather(*background, *self._tasks, return_exceptions=True)
        if self.bus is not None:
            await self.bus.close()
        log.info("daemon: stopped")
        return 0


def run(options: Options) -> int:
    """`edgeinit daemon`: run until SIGTERM/SIGINT; the exit status."""
    notifier = notify.Notifier()
    for name in notify.ENV_NAMES:  # not for the commands the stages run
        os.environ.pop(name, None)
    try:
        return asyncio.run(Daemon(options, notifier).main())
    finally:
        notifier.close()
