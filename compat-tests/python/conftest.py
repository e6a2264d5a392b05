"""Fixtures that run the gateway binary under test.

Every test gets a fresh server with a fresh temporary data directory. The server
is started with ephemeral ports; its single stdout "ready" line tells us where
it listens. stderr goes to a log file per server process, whose tail is attached
to the report of a failing test.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import threading
from pathlib import Path
from typing import Dict, List, Optional

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
READY_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 30.0

READY_RE = re.compile(
    r"^gateway ready kafka=(?P<kafka>\S+) namesrv=(?P<namesrv>\S+) "
    r"broker=(?P<broker>\S+) metrics=(?P<metrics>\S+)(\s.*)?$"
)


def gateway_binary() -> Path:
    override = os.environ.get("GATEWAY_BIN")
    if override:
        return Path(override)
    return REPO_ROOT / "target" / "debug" / "gateway"


def _tail(path: Path, max_bytes: int = 8000) -> str:
    try:
        data = path.read_bytes()
    except OSError as exc:  # pragma: no cover - diagnostics only
        return f"<cannot read {path}: {exc}>"
    return data[-max_bytes:].decode("utf-8", "replace")


class GatewayServer:
    """One gateway server, restartable on the same data directory."""

    def __init__(
        self,
        data_dir: Path,
        log_dir: Path,
        sets: Optional[Dict[str, str]] = None,
        args: Optional[List[str]] = None,
    ):
        self.binary = gateway_binary()
        self.data_dir = data_dir
        self.log_dir = log_dir
        self.sets = dict(sets or {})
        self.args = list(args or [])
        self.proc: Optional[subprocess.Popen] = None
        self.generation = 0
        self.addrs: Dict[str, str] = {}
        self.log_paths: List[Path] = []
        self._stdout_thread: Optional[threading.Thread] = None

    # -- addresses ---------------------------------------------------------
    @property
    def bootstrap(self) -> str:
        return self.addrs["kafka"]

    @property
    def kafka_host(self) -> str:
        return self.addrs["kafka"].rsplit(":", 1)[0]

    @property
    def kafka_port(self) -> int:
        return int(self.addrs["kafka"].rsplit(":", 1)[1])

    @property
    def metrics_url(self) -> str:
        return f"http://{self.addrs['metrics']}/metrics"

    @property
    def admin_url(self) -> str:
        return f"http://{self.addrs['admin']}"

    @property
    def log_path(self) -> Path:
        return self.log_paths[-1]

    def command(self) -> List[str]:
        cmd = [
            str(self.binary),
            "--data-dir", str(self.data_dir),
            "--kafka-addr", "127.0.0.1:0",
            "--namesrv-addr", "127.0.0.1:0",
            "--broker-addr", "127.0.0.1:0",
            "--metrics-addr", "127.0.0.1:0",
            "--admin-addr", "127.0.0.1:0",
        ]
        for key, value in self.sets.items():
            cmd += ["--set", f"{key}={value}"]
        return cmd + self.args

    def listener(self, name: str) -> str:
        """host:port of a named Kafka listener (ready line `listener.NAME=PROTOCOL://addr`)."""
        return self.addrs[f"listener.{name}"].split("://", 1)[1]

    # -- lifecycle ---------------------------------------------------------
    def start(self) -> "GatewayServer":
        assert self.proc is None or self.proc.poll() is not None, "server already running"
        if not self.binary.exists():
            pytest.fail(
                f"gateway binary not found at {self.binary}; build it with "
                f"`cargo build -p gateway` or set GATEWAY_BIN",
                pytrace=False,
            )
        self.generation += 1
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log_path = self.log_dir / f"gateway-{self.generation}.stderr.log"
        self.log_paths.append(log_path)
        stderr_file = open(log_path, "wb")
        cmd = self.command()
        with open(self.log_dir / f"gateway-{self.generation}.cmd", "w") as f:
            f.write(" ".join(cmd) + "\n")
        self.proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=stderr_file,
            cwd=str(self.log_dir),
            start_new_session=True,
        )
        stderr_file.close()

        ready: Dict[str, str] = {}
        seen: List[str] = []
        ready_event = threading.Event()
        proc = self.proc
        stdout_log = self.log_dir / f"gateway-{self.generation}.stdout.log"

        def pump() -> None:
            # Reads stdout for the whole life of the process so that the pipe
            # never fills up; every line is also kept in a log file.
            with open(stdout_log, "w") as out:
                assert proc.stdout is not None
                for raw in proc.stdout:
                    line = raw.decode("utf-8", "replace").rstrip("\n")
                    out.write(line + "\n")
                    out.flush()
                    if not ready_event.is_set():
                        seen.append(line)
                        m = READY_RE.match(line)
                        if m:
                            ready.update(
                                dict(tok.split("=", 1) for tok in line.split()[2:] if "=" in tok)
                            )
                            ready_event.set()
            ready_event.set()

        self._stdout_thread = threading.Thread(target=pump, name=f"gateway-stdout-{self.generation}", daemon=True)
        self._stdout_thread.start()
        got = ready_event.wait(READY_TIMEOUT_S)
        if not ready:
            rc = proc.poll()
            if rc is None:
                self._force_kill()
            pytest.fail(
                "gateway did not print its ready line "
                + (f"within {READY_TIMEOUT_S}s" if not got else f"(exited with {rc})")
                + f"\ncommand: {' '.join(cmd)}\nstdout so far: {seen!r}\n"
                + f"--- stderr ({log_path}) ---\n{_tail(log_path)}",
                pytrace=False,
            )
        self.addrs = ready
        return self

    def _force_kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait(timeout=STOP_TIMEOUT_S)

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> int:
        """Graceful stop with SIGTERM. Returns the exit code.

        If the process does not exit within `timeout`, it is SIGKILLed and the
        calling test fails."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self._force_kill()
                pytest.fail(
                    f"gateway did not exit within {timeout}s after SIGTERM\n"
                    f"--- stderr ---\n{_tail(self.log_path)}",
                    pytrace=False,
                )
        if self._stdout_thread is not None:
            self._stdout_thread.join(timeout=5)
        return self.proc.returncode

    def kill(self) -> int:
        """SIGKILL the server process (crash simulation)."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=STOP_TIMEOUT_S)
        if self._stdout_thread is not None:
            self._stdout_thread.join(timeout=5)
        return self.proc.returncode

    def restart(self) -> int:
        """Graceful restart on the same data dir. Returns the old exit code."""
        rc = self.stop()
        self.start()
        return rc

    def is_running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def cleanup(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._force_kill()


_ACTIVE_SERVERS: List[GatewayServer] = []


@pytest.fixture
def server_factory(tmp_path):
    """Start gateway servers: `server_factory(sets={...})`."""
    created: List[GatewayServer] = []

    def make(
        sets: Optional[Dict[str, str]] = None,
        name: str = "gw",
        args: Optional[List[str]] = None,
    ) -> GatewayServer:
        base = tmp_path / f"{name}{len(created)}"
        log_dir = base / "logs"
        log_dir.mkdir(parents=True)
        srv = GatewayServer(base / "data", log_dir, sets, args)
        created.append(srv)
        _ACTIVE_SERVERS.append(srv)
        return srv.start()

    yield make
    for srv in created:
        srv.cleanup()
        _ACTIVE_SERVERS.remove(srv)


@pytest.fixture
def server(server_factory) -> GatewayServer:
    """A fresh gateway with default configuration."""
    return server_factory()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.failed and _ACTIVE_SERVERS:
        for srv in _ACTIVE_SERVERS:
            for path in srv.log_paths:
                report.sections.append((f"gateway stderr {path}", _tail(path, 6000)))
