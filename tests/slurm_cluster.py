"""A real single-node SLURM cluster for tests (Debian packages slurmctld, slurmd,
slurm-client, munge; run as root): one node with a fake GPU (gres on /dev/null) so that
GPU requests are scheduled; state, logs and pid files in a temporary folder; daemons
stopped by their pid files.

The configuration goes to /etc/slurm (steps inside a job drop SLURM_CONF, so only the
default location works) and is removed afterwards; a machine whose /etc/slurm/slurm.conf
was not written here is left alone (the test is skipped)."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

DAEMONS = ("slurmctld", "slurmd", "sinfo", "sbatch", "squeue", "munged")
MUNGE_PID = Path("/run/munge/munged.pid")
CONF_DIR = Path("/etc/slurm")
MARKER = "# dipmed test cluster"


def missing() -> str | None:
    """Why a cluster cannot start here, or None."""
    if os.geteuid() != 0:
        return "SLURM test needs root (it starts slurmctld, slurmd and munged)"
    absent = [d for d in DAEMONS if shutil.which(d) is None]
    if absent:
        return f"SLURM not installed ({', '.join(absent)} missing; .ci/system-deps installs it)"
    conf = CONF_DIR / "slurm.conf"
    if conf.exists() and not conf.read_text().startswith(MARKER):
        return f"{conf} belongs to a real SLURM set-up; the test cluster would replace it"
    return None


@contextmanager
def slurm_cluster(folder: Path, *, timeout_s: float = 90.0) -> Iterator[dict[str, str]]:
    """Start munge (if needed), slurmctld and slurmd; yield the environment for clients."""
    folder.mkdir(parents=True, exist_ok=True)
    _write_config(folder)
    env = dict(os.environ)
    started_munge = _start_munge()
    try:
        subprocess.run(["slurmctld"], env=env, check=True)
        subprocess.run(["slurmd"], env=env, check=True)
        _wait_idle(env, folder, timeout_s)
        yield env
    finally:
        for name in ("slurmd", "slurmctld"):
            _stop(folder / f"{name}.pid")
        if started_munge:
            _stop(MUNGE_PID)
        for name in ("slurm.conf", "gres.conf"):
            (CONF_DIR / name).unlink(missing_ok=True)


def _write_config(folder: Path) -> None:
    host = socket.gethostname().split(".")[0]
    node = _node_line()
    (folder / "state").mkdir(exist_ok=True)
    (folder / "spool").mkdir(exist_ok=True)
    settings = {
        "ClusterName": "dipmedtest",
        "SlurmctldHost": f"{host}(127.0.0.1)",
        "SlurmctldPort": "16817",
        "SlurmdPort": "16818",
        "SlurmUser": "root",
        "AuthType": "auth/munge",
        "ProctrackType": "proctrack/linuxproc",
        "TaskPlugin": "task/none",
        "SelectType": "select/cons_tres",
        "SelectTypeParameters": "CR_CPU_Memory",
        "AccountingStorageType": "accounting_storage/none",
        "JobAcctGatherType": "jobacct_gather/none",
        "JobCompType": "jobcomp/none",
        "MpiDefault": "none",
        "ReturnToService": "2",
        "GresTypes": "gpu",
        "StateSaveLocation": str(folder / "state"),
        "SlurmdSpoolDir": str(folder / "spool"),
        "SlurmctldPidFile": str(folder / "slurmctld.pid"),
        "SlurmdPidFile": str(folder / "slurmd.pid"),
        "SlurmctldLogFile": str(folder / "slurmctld.log"),
        "SlurmdLogFile": str(folder / "slurmd.log"),
    }
    lines = [MARKER] + [f"{k}={v}" for k, v in settings.items()]
    lines += [
        f"NodeName={host} NodeAddr=127.0.0.1 {node} Gres=gpu:1 State=UNKNOWN",
        "PartitionName=main Nodes=ALL Default=YES MaxTime=INFINITE State=UP",
    ]
    CONF_DIR.mkdir(parents=True, exist_ok=True)
    (CONF_DIR / "slurm.conf").write_text("\n".join(lines) + "\n")
    (CONF_DIR / "gres.conf").write_text(
        f"{MARKER}\nNodeName={host} Name=gpu Count=1 File=/dev/null\n"
    )


def _node_line() -> str:
    """CPUs and RealMemory as slurmd detects them (memory a little below, for the OS)."""
    fields = dict(
        item.split("=", 1)
        for item in subprocess.run(["slurmd", "-C"], capture_output=True, text=True)
        .stdout.split("\n")[0]
        .split()
    )
    memory = int(int(fields["RealMemory"]) * 0.9)
    return f"CPUs={fields['CPUs']} RealMemory={memory}"


def _start_munge() -> bool:
    if MUNGE_PID.exists() and _alive(int(MUNGE_PID.read_text().split()[0])):
        return False
    MUNGE_PID.parent.mkdir(parents=True, exist_ok=True)
    shutil.chown(MUNGE_PID.parent, "munge", "munge")
    subprocess.run(["runuser", "-u", "munge", "--", "munged"], check=True)
    return True


def _wait_idle(env: dict, folder: Path, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        state = subprocess.run(
            ["sinfo", "-h", "-o", "%t"], env=env, capture_output=True, text=True
        ).stdout.strip()
        if state == "idle":
            return
        time.sleep(1)
    logs = "".join(
        (folder / n).read_text()[-800:]
        for n in ("slurmctld.log", "slurmd.log")
        if (folder / n).exists()
    )
    raise RuntimeError(f"SLURM node not idle after {timeout_s:.0f} s (state {state!r}):\n{logs}")


def _stop(pid_file: Path, timeout_s: float = 20.0) -> None:
    if not pid_file.exists():
        return
    pid = int(pid_file.read_text().split()[0])
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout_s
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.2)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
