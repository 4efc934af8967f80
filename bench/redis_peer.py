"""A real Redis next to memsim: find or install Debian's redis-server, run a private instance, drive it with redis-py.

Used by the benchmarks that compare memsim's cache with the real thing on the same machine, and by the tests that
drive memsim's RESP port with Redis's own tools (`ensure_redis_tools`: redis-cli, redis-benchmark).

    from bench.redis_peer import RedisServer, ensure_redis_py, redis_version

    ensure_redis_py()
    with RedisServer(maxmemory="20mb", policy="allkeys-lru") as srv:
        r = srv.client()
        r.set(b"k", b"v")
        print(srv.port, srv.pid, srv.info("memory")["used_memory"])

Every instance is private: a free loopback port, its own temporary directory (working dir, log), no persistence
(`--save ''`, `--appendonly no`), in the foreground (`--daemonize no`) as a child of this process. On exit it gets
SIGTERM (its own PID only), SIGKILL after `stop_timeout`, and the directory is removed, also when the body raised or
startup failed. With `die_with_parent=True` (default) the kernel also sends it SIGTERM if the thread that started it
dies (PR_SET_PDEATHSIG), so a SIGKILLed benchmark leaves no server behind: start it from a thread that outlives it.

Installing: Debian's package runs its maintainer scripts, which start the system service through invoke-rc.d (or
systemd where systemd is PID 1) unless /usr/sbin/policy-rc.d forbids it (the Docker-style images used here have one
that exits 101, so nothing starts). `ensure_redis_server` compares the redis-server processes before and after the
install and stops any the install started the way the package is stopped (`systemctl stop` / `service ... stop`).
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import importlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import weakref
from pathlib import Path

__all__ = ["RedisServer", "ensure_redis_py", "ensure_redis_server", "ensure_redis_tools", "redis_version"]

APT_PACKAGE = "redis-server"
TOOLS_PACKAGE = "redis-tools"  # redis-cli and redis-benchmark
_SERVICE = "redis-server"  # the Debian package's service (systemd unit and /etc/init.d script)
_INSTALL_TIMEOUT_S = 900


# --------------------------------------------------------------------------------------------------------------------
# Finding / installing the server and the client library
# --------------------------------------------------------------------------------------------------------------------

def _which(name: str) -> str | None:
    """Path of an executable, on PATH or where Debian's packages put it."""
    found = shutil.which(name)
    if found:
        return found
    for d in ("/usr/bin", "/usr/sbin", "/usr/local/bin"):
        if os.access(f"{d}/{name}", os.X_OK):
            return f"{d}/{name}"
    return None


def _which_redis_server() -> str | None:
    return _which("redis-server")


def _redis_server_pids() -> dict[int, str]:
    """PID -> command line of every process whose name is redis-server (read from /proc: no pgrep needed)."""
    out: dict[int, str] = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            comm = Path(f"/proc/{d}/comm").read_text().strip()
            if not comm.startswith("redis-server"):
                continue
            cmd = Path(f"/proc/{d}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:
            continue
        out[int(d)] = cmd or comm
    return out


def _run(cmd: list[str], env: dict[str, str], timeout: float) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, timeout=timeout, check=False)


def _stop_installer_started(new: dict[int, str], prefix: list[str], env: dict[str, str]) -> list[str]:
    """Stop redis-server processes that the package's maintainer scripts started, as the package itself would."""
    notes = [f"the install started {pid}: {cmd}" for pid, cmd in sorted(new.items())]
    systemd = Path("/run/systemd/system").is_dir() and shutil.which("systemctl")
    cmds = [[*prefix, "systemctl", "stop", _SERVICE]] if systemd else []
    if shutil.which("service"):
        cmds.append([*prefix, "service", _SERVICE, "stop"])
    if shutil.which("invoke-rc.d"):
        cmds.append([*prefix, "invoke-rc.d", "--force", _SERVICE, "stop"])
    for cmd in cmds:
        with contextlib.suppress(OSError, subprocess.TimeoutExpired):
            r = _run(cmd, env, 60)
            notes.append(f"{' '.join(cmd)} -> {r.returncode}")
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and set(new) & set(_redis_server_pids()):
            time.sleep(0.1)
        if not set(new) & set(_redis_server_pids()):
            return notes
    left = {p: c for p, c in _redis_server_pids().items() if p in new}
    if left:
        raise RuntimeError("installing redis-server started a system redis that would not stop: "
                           + "; ".join(f"{p}: {c}" for p, c in left.items()) + " (" + "; ".join(notes) + ")")
    return notes


def _apt_install(package: str, executable: str, quiet: bool) -> str:
    """Install Debian's `package` and return the path of `executable` from it. Raises RuntimeError if that fails.

    No system redis started by the install is left running (see the module doc)."""
    prefix = [] if os.geteuid() == 0 else ["sudo", "-n"]
    if prefix and not shutil.which("sudo"):
        raise RuntimeError(f"{executable} is not installed, this is not root and there is no sudo: "
                           f"install it with `apt-get install -y --no-install-recommends {package}`")
    if not shutil.which("apt-get"):
        raise RuntimeError(f"{executable} is not installed and there is no apt-get to install {package}")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    before = _redis_server_pids()
    steps = [
        [*prefix, "apt-get", "update"],
        [*prefix, "apt-get", "-o", "DPkg::Lock::Timeout=300", "install", "-y", "--no-install-recommends", package],
    ]
    t0 = time.monotonic()
    for cmd in steps:
        try:
            r = _run(cmd, env, _INSTALL_TIMEOUT_S)
        except (OSError, subprocess.TimeoutExpired) as e:
            raise RuntimeError(f"installing {package}: `{' '.join(cmd)}` failed: {e}") from e
        if r.returncode != 0:
            tail = "\n".join(r.stdout.splitlines()[-25:])
            raise RuntimeError(f"installing {package}: `{' '.join(cmd)}` exited {r.returncode}:\n{tail}")
    new = {p: c for p, c in _redis_server_pids().items() if p not in before}
    notes = _stop_installer_started(new, prefix, env) if new else []
    found = _which(executable)
    if not found:
        raise RuntimeError(f"apt-get installed {package} but no {executable} executable was found")
    if not quiet:
        print(f"installed {package} in {time.monotonic() - t0:.1f} s" + ("; " + "; ".join(notes) if notes else ""),
              file=sys.stderr)
    return found


def ensure_redis_server(*, quiet: bool = True) -> str:
    """Path of `redis-server`; installs Debian's package if it is missing. Raises RuntimeError if that fails."""
    return _which_redis_server() or _apt_install(APT_PACKAGE, "redis-server", quiet)


def ensure_redis_tools(*, quiet: bool = True) -> tuple[str, str]:
    """Paths of `redis-cli` and `redis-benchmark` (Debian's redis-tools, which redis-server depends on);
    installs the package if either is missing. Raises RuntimeError if that fails."""
    cli, bench = _which("redis-cli"), _which("redis-benchmark")
    if cli and bench:
        return cli, bench
    _apt_install(TOOLS_PACKAGE, "redis-benchmark", quiet)
    cli, bench = _which("redis-cli"), _which("redis-benchmark")
    if not (cli and bench):
        raise RuntimeError(f"apt-get installed {TOOLS_PACKAGE} but redis-cli or redis-benchmark is missing")
    return cli, bench


def ensure_redis_py():
    """Import redis-py, installing it into this interpreter (`python -m pip install redis`) if missing."""
    try:
        return importlib.import_module("redis")
    except ImportError:
        pass
    r = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "redis"], stdin=subprocess.DEVNULL,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, check=False)
    if r.returncode != 0:
        raise RuntimeError(f"pip install redis failed ({r.returncode}):\n" + "\n".join(r.stdout.splitlines()[-20:]))
    importlib.invalidate_caches()
    return importlib.import_module("redis")


def redis_version(executable: str | None = None) -> str:
    """The server's version, e.g. '7.0.15', from `redis-server --version` (installs the server if missing)."""
    exe = executable or ensure_redis_server()
    out = subprocess.run([exe, "--version"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                         timeout=30, check=False).stdout
    m = re.search(r"\bv=(\d+(?:\.\d+)+)", out)
    if not m:
        raise RuntimeError(f"cannot read the version from `{exe} --version`: {out.strip()!r}")
    return m.group(1)


# --------------------------------------------------------------------------------------------------------------------
# A private redis-server instance
# --------------------------------------------------------------------------------------------------------------------

_PR_SET_PDEATHSIG = 1
_live: weakref.WeakSet[RedisServer] = weakref.WeakSet()


def _pdeathsig() -> None:  # runs in the child between fork and exec
    with contextlib.suppress(Exception):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


@atexit.register
def _stop_all() -> None:
    for srv in list(_live):
        with contextlib.suppress(Exception):
            srv.stop()


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _server_pid(port: int, timeout: float = 0.5) -> int | None:
    """process_id from `INFO server` of whatever answers on 127.0.0.1:port, None if nothing answers (yet).

    A PONG alone is not enough: while a new server fails to bind a busy port, an older one answers there."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            s.sendall(b"*2\r\n$4\r\nINFO\r\n$6\r\nserver\r\n")
            buf = b""
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    return None
                buf += chunk
                if not buf.startswith(b"$"):
                    return None  # -LOADING or another error: not ready
                head = buf.find(b"\r\n")
                if head > 0 and len(buf) >= head + 2 + int(buf[1:head]):
                    break
    except (OSError, ValueError):
        return None
    m = re.search(rb"\r\nprocess_id:(\d+)\r\n", buf)
    return int(m.group(1)) if m else None


class RedisServer:
    """A redis-server child process on 127.0.0.1, for one `with` block.

    maxmemory: bytes (int) or a Redis size string ("20mb"); 0 = unlimited. policy: maxmemory-policy.
    extra_args: more `--name value` arguments, e.g. ("--maxmemory-samples", "10", "--hz", "10").
    """

    def __init__(self, *, maxmemory: int | str = 0, policy: str = "noeviction", extra_args: tuple[str, ...] = (),
                 port: int | None = None, executable: str | None = None, startup_timeout: float = 15.0,
                 stop_timeout: float = 10.0, die_with_parent: bool = True):
        self.maxmemory = maxmemory
        self.policy = policy
        self.extra_args = tuple(str(a) for a in extra_args)
        self._want_port = port
        self.executable = executable
        self.startup_timeout = startup_timeout
        self.stop_timeout = stop_timeout
        self.die_with_parent = die_with_parent
        self.port: int | None = None
        self.dir: str | None = None
        self.proc: subprocess.Popen | None = None
        self._log = None
        self._admin = None

    # -- lifecycle ---------------------------------------------------------------------------------------------------
    def args(self, port: int, workdir: str) -> list[str]:
        return [self.executable or "redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                "--appendonly", "no", "--dir", workdir, "--daemonize", "no", "--logfile", "",
                "--maxmemory-policy", self.policy, "--maxmemory", str(self.maxmemory), *self.extra_args]

    def start(self) -> RedisServer:
        if self.proc is not None:
            raise RuntimeError("this RedisServer is already started")
        self.executable = self.executable or ensure_redis_server()
        self.dir = tempfile.mkdtemp(prefix="memsim-redis-")
        _live.add(self)
        try:
            for _attempt in range(5):  # a free port can be taken between probing and binding
                port = self._want_port or _free_port()
                if self._launch(port):
                    self.port = port
                    return self
                if self._want_port or "Address already in use" not in self.log_text():
                    break
            raise RuntimeError(f"redis-server did not start (port {port}); "
                               f"its log:\n{self.log_text()[-4000:]}")
        except BaseException:
            self.stop()
            raise

    def _launch(self, port: int) -> bool:
        """Start the process and wait for PING; False if it exited (the log says why). Raises on timeout."""
        if self.proc is not None:  # a failed earlier attempt
            self._terminate()
        if self._log is not None:
            self._log.close()
        self._log = open(os.path.join(self.dir, "redis.log"), "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(self.args(port, self.dir), stdin=subprocess.DEVNULL, stdout=self._log,
                                     stderr=subprocess.STDOUT, cwd=self.dir,
                                     preexec_fn=_pdeathsig if self.die_with_parent else None)
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            answering = _server_pid(port)
            if answering == self.proc.pid:
                return True
            time.sleep(0.02)
        raise TimeoutError(f"redis-server (pid {self.proc.pid}, port {port}) did not answer PING within "
                           f"{self.startup_timeout} s; its log:\n{self.log_text()[-4000:]}")

    def _terminate(self) -> None:
        """SIGTERM to our own child only, SIGKILL after stop_timeout; reaps it."""
        p, self.proc = self.proc, None
        if p is None:
            return
        if p.poll() is None:  # Popen never signals a reaped PID, so this cannot hit a recycled one
            with contextlib.suppress(ProcessLookupError):
                p.send_signal(signal.SIGTERM)
            try:
                p.wait(self.stop_timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    p.kill()
                p.wait()

    def stop(self) -> None:
        if self._admin is not None:
            with contextlib.suppress(Exception):
                self._admin.close()
            self._admin = None
        try:
            self._terminate()
        finally:
            if self._log is not None:
                self._log.close()
                self._log = None
            if self.dir is not None:
                shutil.rmtree(self.dir, ignore_errors=True)
                self.dir = None
            _live.discard(self)

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- using it ----------------------------------------------------------------------------------------------------
    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    @property
    def host(self) -> str:
        return "127.0.0.1"

    def client(self, **kw):
        """A new redis.Redis connected to this server (keyword arguments go to redis.Redis)."""
        if self.port is None:
            raise RuntimeError("the server is not running")
        redis = ensure_redis_py()
        return redis.Redis(host=self.host, port=self.port, **kw)

    def info(self, section: str | None = None) -> dict:
        if self._admin is None:
            self._admin = self.client()
        return self._admin.info(section) if section else self._admin.info()

    def used_memory(self) -> int:
        return int(self.info("memory")["used_memory"])

    def log_text(self) -> str:
        if self.dir is None:
            return ""
        try:
            return Path(self.dir, "redis.log").read_text(errors="replace")
        except OSError:
            return ""
