"""A throwaway single-node SLURM cluster for the tests (Debian's slurm-wlm + munge, run as root).

Everything lives in one temporary folder: its own munge key and socket, slurm.conf/gres.conf,
state and spool folders, and its own ports, so a site's SLURM or munge is never touched. The
node advertises 64 CPUs, ~1 TB and 8 fake a100 GPUs (`SlurmdParameters=config_overrides`,
`gres.conf` File=/dev/tty[0-7]) so that the shipped profile's requests fit; partitions are
`cpuq` (default) and `gpuq`, deliberately not the profile's default names, so a run proves that
the partition override reaches sbatch. Without accounting `sacct` is disabled: the profile's
squeue status command sees finished jobs for MinJobAge=600 s.

`SlurmCluster.start()` installs the packages if missing (apt-get), starts munged, slurmctld and
slurmd in the foreground as child processes, and `stop()` ends exactly those PIDs (plus any
slurmstepd that appeared while the cluster ran), then checks that none is left.
"""
from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

CPU_PARTITION, GPU_PARTITION = "cpuq", "gpuq"
# The slurm plugin's job step strips SLURM_* variables (SLURM_CONF too) before its inner `srun`,
# so commands inside a job find the config only at the compiled-in path: the cluster links it
# there while it runs (never over an existing file: a site's config is left alone).
ETC_CONF = Path("/etc/slurm/slurm.conf")
PREFIX = "solopo-slurm-"
PACKAGES = ("slurm-wlm", "munge")
BINARIES = ("slurmctld", "slurmd", "munged", "sbatch", "squeue", "scontrol", "sinfo")


def unavailable_reason() -> str | None:
    """Why no cluster can be started here (None: it can)."""
    if os.geteuid() != 0:
        return "single-node SLURM needs root (slurmd runs jobs as their user; apt-get installs slurm-wlm/munge)"
    if (ETC_CONF.exists() or ETC_CONF.is_symlink()) and not _ours(ETC_CONF):
        return f"{ETC_CONF} exists (a site's SLURM config; this test does not touch it)"
    if not Path("/dev/tty7").exists():
        return "no /dev/tty[0-7] to stand in for 8 GPUs in gres.conf"
    if not all(shutil.which(b) for b in BINARIES) and not shutil.which("apt-get"):
        return "slurm-wlm/munge are not installed and there is no apt-get to install them"
    return None


def install() -> None:
    """apt-get install slurm-wlm munge when a binary is missing (update the index once if needed)."""
    if all(shutil.which(b) for b in BINARIES):
        return
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    cmd = ["apt-get", "install", "-y", "--no-install-recommends", *PACKAGES]
    if subprocess.run(cmd, env=env, capture_output=True, text=True).returncode != 0:
        subprocess.run(["apt-get", "update"], env=env, check=True, capture_output=True, text=True)
        out = subprocess.run(cmd, env=env, capture_output=True, text=True)
        if out.returncode != 0:
            raise RuntimeError(f"apt-get install {' '.join(PACKAGES)} failed: {out.stderr[-1000:]}")


def _ours(path: Path) -> bool:
    """A link left by this module (an earlier run that was killed): safe to replace."""
    return path.is_symlink() and os.readlink(path).startswith(os.path.join(tempfile.gettempdir(), PREFIX))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _pids_named(name: str) -> set[int]:
    pids = set()
    for p in Path("/proc").iterdir():
        if p.name.isdigit():
            try:
                if (p / "comm").read_text().strip() == name:
                    pids.add(int(p.name))
            except OSError:
                pass
    return pids


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except OSError:
        return False
    return state != "Z"


class SlurmCluster:
    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix=PREFIX))
        self.host = socket.gethostname().split(".")[0]
        self.conf = self.dir / "slurm.conf"
        self.procs: dict[str, subprocess.Popen] = {}
        self.steps_before: set[int] = set()
        self.env = {**os.environ, "SLURM_CONF": str(self.conf)}
        self.linked = False

    # ------------------------------------------------------------------ setup
    def _out(self, name: str):
        return open(self.dir / f"{name}.out.log", "w")

    def _munge(self) -> None:
        mdir = self.dir / "munge"
        mdir.mkdir()
        mdir.chmod(0o755)  # munged: the socket folder must be searchable by all (clients connect)
        munge = pwd.getpwnam("munge")
        key = mdir / "munge.key"
        key.write_bytes(os.urandom(1024))
        key.chmod(0o400)
        for p in (mdir, key):
            os.chown(p, munge.pw_uid, munge.pw_gid)
        self.dir.chmod(0o755)  # munged (user munge) must reach its folder
        self.munge_socket = mdir / "munge.sock"
        self.procs["munged"] = subprocess.Popen(
            ["munged", "--foreground", f"--socket={self.munge_socket}", f"--key-file={key}",
             f"--pid-file={mdir / 'munged.pid'}", f"--log-file={mdir / 'munged.log'}", f"--seed-file={mdir / 'munged.seed'}"],
            user=munge.pw_uid, group=munge.pw_gid, stdout=self._out("munged"), stderr=subprocess.STDOUT)
        for _ in range(100):
            if self.munge_socket.exists():
                return
            if self.procs["munged"].poll() is not None:
                raise RuntimeError(f"munged exited: {self.logs()}")
            time.sleep(0.1)
        raise RuntimeError("munged did not create its socket within 10 s")

    def _write_conf(self) -> None:
        d = self.dir
        for sub in ("state", "spool"):
            (d / sub).mkdir()
        self.conf.write_text(f"""\
ClusterName=solopotest
SlurmctldHost={self.host}
SlurmctldPort={_free_port()}
SlurmdPort={_free_port()}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={self.munge_socket}
StateSaveLocation={d / 'state'}
SlurmdSpoolDir={d / 'spool'}
SlurmctldPidFile={d / 'slurmctld.pid'}
SlurmdPidFile={d / 'slurmd.pid'}
SlurmctldLogFile={d / 'slurmctld.log'}
SlurmdLogFile={d / 'slurmd.log'}
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SlurmdParameters=config_overrides
MinJobAge=600
ReturnToService=2
MpiDefault=none
GresTypes=gpu
SchedulerParameters=sched_interval=2
NodeName={self.host} CPUs=64 RealMemory=1000000 Gres=gpu:a100:8 State=UNKNOWN
PartitionName={CPU_PARTITION} Nodes={self.host} Default=YES MaxTime=INFINITE State=UP
PartitionName={GPU_PARTITION} Nodes={self.host} MaxTime=INFINITE State=UP
""")
        (d / "gres.conf").write_text(f"NodeName={self.host} Name=gpu Type=a100 File=/dev/tty[0-7]\n")

    def start(self, timeout: float = 60) -> "SlurmCluster":
        install()
        self.steps_before = _pids_named("slurmstepd")
        t0 = time.time()
        try:
            self._munge()
            self._write_conf()
            if _ours(ETC_CONF):
                ETC_CONF.unlink()
            ETC_CONF.parent.mkdir(parents=True, exist_ok=True)
            ETC_CONF.symlink_to(self.conf)  # fails (and stops) if a file appeared there meanwhile
            self.linked = True
            self.procs["slurmctld"] = subprocess.Popen(["slurmctld", "-D", "-f", str(self.conf)], env=self.env,
                                                       stdout=self._out("slurmctld"), stderr=subprocess.STDOUT)
            time.sleep(1)
            self.procs["slurmd"] = subprocess.Popen(["slurmd", "-D", "-N", self.host, "-f", str(self.conf)], env=self.env,
                                                    stdout=self._out("slurmd"), stderr=subprocess.STDOUT)
            while time.time() - t0 < timeout:
                for name, p in self.procs.items():
                    if p.poll() is not None:
                        raise RuntimeError(f"{name} exited with {p.returncode}: {self.logs()}")
                out = self.run(["sinfo", "-h", "-o", "%T"], check=False)
                if out.returncode == 0 and out.stdout.split() and all(s == "idle" for s in out.stdout.split()):
                    self.start_s = time.time() - t0
                    return self
                time.sleep(0.5)
            raise RuntimeError(f"the node did not become idle within {timeout} s: {self.logs()}")
        except BaseException:
            self.stop()
            raise

    def run(self, cmd: list[str], check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run(cmd, env=self.env, capture_output=True, text=True, check=check, timeout=60)

    def logs(self) -> str:
        return "\n".join(f"--- {f.name}\n{f.read_text(errors='replace')[-1500:]}" for f in sorted(self.dir.rglob("*.log")))

    def job(self, jobid: str) -> dict[str, str]:
        """`scontrol show job` as key -> value (finished jobs stay visible for MinJobAge)."""
        out = self.run(["scontrol", "show", "job", "-o", jobid]).stdout
        return dict(kv.split("=", 1) for kv in out.split() if "=" in kv)

    # ------------------------------------------------------------------ teardown
    def stop(self) -> list[int]:
        """Cancel jobs, stop slurmd, slurmctld and munged by PID; return the PIDs still alive (should be [])."""
        if "slurmctld" in self.procs and self.procs["slurmctld"].poll() is None:
            self.run(["scancel", "--full", "-u", "root"], check=False)
        steps = _pids_named("slurmstepd") - self.steps_before  # job steps this cluster started
        deadline = time.time() + 15
        while any(_alive(p) for p in steps) and time.time() < deadline:
            time.sleep(0.2)
        for pid in steps:
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
        for name in ("slurmd", "slurmctld", "munged"):  # reverse start order
            p = self.procs.get(name)
            if p is None or p.poll() is not None:
                continue
            p.terminate()
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(timeout=5)
        if self.linked and _ours(ETC_CONF):
            ETC_CONF.unlink()
        left = [p.pid for p in self.procs.values() if _alive(p.pid)] + [p for p in steps if _alive(p)]
        if not left:
            shutil.rmtree(self.dir, ignore_errors=True)
        return left
