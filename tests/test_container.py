"""The container image, built with podman and run the way HPC sites run BIDS-Apps.

The image is built from the repository's Dockerfile on a Debian base made locally with
debootstrap (``docker/build-base.sh``) and a wheelhouse (``docker/build-wheelhouse.sh``): the
air-gapped build path. The demo dataset then goes through the participant and group levels
inside the container with the input mounted read-only, a read-only image root, an arbitrary
non-root UID and no network at all, so any download or write outside the mounted folders
fails the run.

The image is cached under a tag made from a hash of everything that goes into it
(Dockerfile, lock, wheel names, package source), so only the first run after a change pays
for the build. Skipped, with the reason, where podman is missing, when not root (rootless
podman needs per-site setup), or when the base image, wheelhouse or build cannot be made in
time (``BIDS_DFC_CONTAINER_BUILD_TIMEOUT`` seconds, default 2400).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from _daemons import own
from _demo_data import copy_tree, dmn_des_sd

REPO = Path(__file__).resolve().parents[1]
BASE_IMAGE = "localhost/debian:bookworm-slim"
IMAGE_REPO = "localhost/bids_dfc"
UID = "12345:12345"
BUILD_TIMEOUT = int(os.environ.get("BIDS_DFC_CONTAINER_BUILD_TIMEOUT", "2400"))
RUN_TIMEOUT = 3600 * float(os.environ.get("BIDS_DFC_TEST_PATIENCE", "1"))
PODMAN = shutil.which("podman")

pytestmark = [
    pytest.mark.container,
    pytest.mark.slow,
    pytest.mark.skipif(
        PODMAN is None,
        reason="podman is not installed (apt-get install podman runc fuse-overlayfs "
        "debootstrap); the container test builds and runs the image with it",
    ),
    pytest.mark.skipif(
        os.geteuid() != 0,
        reason="needs root: rootless podman needs subordinate UIDs set up per site",
    ),
    pytest.mark.skipif(
        not (REPO / "Dockerfile").is_file(), reason="no Dockerfile in this checkout"
    ),
]


def _podman_env() -> dict:
    env = dict(os.environ)
    env["CONTAINERS_CONF"] = str(REPO / "docker" / "containers.conf")
    env["CONTAINERS_STORAGE_CONF"] = str(REPO / "docker" / "storage.conf")
    return env


def podman(*args: str, timeout: float = RUN_TIMEOUT, check: bool = False):
    """Run one podman command with the project's settings; return the CompletedProcess."""
    return subprocess.run(
        [PODMAN, *args], env=_podman_env(), capture_output=True, text=True,
        timeout=timeout, check=check,
    )


def _wheelhouse_complete(wheelhouse: Path, lock: Path) -> bool:
    def norm(name: str) -> str:
        return name.replace("-", "_").replace(".", "_").lower()

    have = {(norm(w.name.split("-")[0]), w.name.split("-")[1]) for w in wheelhouse.glob("*.whl")}
    for line in lock.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line and (norm(line.split("==")[0]), line.split("==")[1]) not in have:
            return False
    return True


def image_inputs_hash() -> str:
    """Hash of every input of the image build: a changed input means a new image."""
    digest = hashlib.sha256()
    files = [REPO / name for name in ("Dockerfile", ".dockerignore", "pyproject.toml",
                                      "setup.cfg", "README.md", "LICENSE")]
    files += [REPO / "docker" / "requirements.lock", REPO / "docker" / "fetch_templates.py"]
    files += sorted(p for p in (REPO / "bids_dfc").rglob("*")
                    if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc")
    for path in files:
        if path.is_file():
            digest.update(str(path.relative_to(REPO)).encode())
            digest.update(path.read_bytes())
    for wheel in sorted((REPO / "docker" / "wheelhouse").glob("*.whl")):
        digest.update(f"{wheel.name}:{wheel.stat().st_size}".encode())
    return digest.hexdigest()[:12]


def _prepare_build_inputs() -> None:
    """Local base image and complete wheelhouse, or skip saying which one is missing."""
    if podman("image", "exists", BASE_IMAGE, timeout=60).returncode != 0:
        if shutil.which("debootstrap") is None:
            pytest.skip(f"no base image {BASE_IMAGE} and no debootstrap to make it "
                        "(apt-get install debootstrap)")
        done = subprocess.run([str(REPO / "docker" / "build-base.sh"), BASE_IMAGE],
                              env=_podman_env(), capture_output=True, text=True, timeout=900)
        if done.returncode != 0:
            pytest.skip(f"could not make the base image with debootstrap (no Debian mirror?): "
                        f"{done.stderr.strip()[-500:]}")
    wheelhouse, lock = REPO / "docker" / "wheelhouse", REPO / "docker" / "requirements.lock"
    if not _wheelhouse_complete(wheelhouse, lock):
        done = subprocess.run(
            [str(REPO / "docker" / "build-wheelhouse.sh"), str(wheelhouse), str(lock)],
            env={**os.environ, "PYTHON": sys.executable}, capture_output=True, text=True,
            timeout=900,
        )
        if done.returncode != 0:
            pytest.skip(f"could not fill docker/wheelhouse from the package index: "
                        f"{done.stderr.strip()[-500:]}")


@pytest.fixture(scope="module")
def image() -> str:
    """Tag of an image built from the current sources (reused while the inputs are unchanged)."""
    _prepare_build_inputs()
    tag = f"{IMAGE_REPO}:test-{image_inputs_hash()}"
    if podman("image", "exists", tag, timeout=60).returncode == 0:
        return tag
    from bids_dfc import __version__

    start = time.monotonic()
    cmd = ["build", "--pull=never", "--build-arg", f"BASE_IMAGE={BASE_IMAGE}",
           "--build-arg", "FETCH_TEMPLATES=0", "--build-arg", f"VERSION={__version__}",
           "-t", tag, str(REPO)]
    try:
        done = podman(*cmd, timeout=BUILD_TIMEOUT)
    except subprocess.TimeoutExpired:
        pytest.skip(f"the image build did not finish within {BUILD_TIMEOUT} s "
                    "(set BIDS_DFC_CONTAINER_BUILD_TIMEOUT to allow more)")
    assert done.returncode == 0, f"podman build failed:\n{done.stdout[-3000:]}{done.stderr[-3000:]}"
    print(f"built {tag} in {time.monotonic() - start:.0f} s")
    # Older test images are no longer wanted: keep the store from growing with every change.
    listed = podman("images", "--format", "{{.Repository}}:{{.Tag}}", IMAGE_REPO, timeout=60)
    for old in listed.stdout.split():
        if old.startswith(f"{IMAGE_REPO}:test-") and old != tag:
            podman("rmi", "--force", old, timeout=120)
    return tag


def run_container(image: str, args: list[str], mounts: list[str], *, extra=()) -> tuple:
    """Run the image as UID 12345, offline, read-only root; return (rc, exit code, logs).

    The container is not started with ``--rm``: the exit status is read back from the
    stopped container as well (``podman inspect``), then it is removed.
    """
    name = own(f"bids_dfc_test_{uuid.uuid4().hex[:10]}")  # conmon's command line has it
    cmd = ["run", "--name", name, "--user", UID, "--network", "none", "--read-only",
           "--security-opt", "label=disable", *extra]
    for mount in mounts:
        cmd += ["-v", mount]
    try:
        done = podman(*cmd, image, *args, timeout=RUN_TIMEOUT)
        exit_code = _exit_code(name)
    finally:
        podman("rm", "--force", name, timeout=120)
    return done.returncode, exit_code, done.stdout + done.stderr


def _exit_code(name: str) -> int:
    """The exit code of the stopped container. On a loaded machine ``podman run`` can return
    while the container is still recorded as running ("getting exit code of container ...
    from DB: no such exit code"), and a running container's ExitCode reads 0: wait until
    it is recorded as exited."""
    deadline = time.monotonic() + 300
    while True:
        state = podman("inspect", name, "--format", "{{.State.Status}} {{.State.ExitCode}}",
                       timeout=60).stdout.split()
        if state and state[0] in ("exited", "stopped"):
            return int(state[1])
        assert time.monotonic() < deadline, f"container {name} still {state} after 300 s"
        time.sleep(1)


def _open_dir(path: Path) -> Path:
    """A folder any UID can read and write (the container runs as an arbitrary UID)."""
    path.mkdir(parents=True, exist_ok=True)
    path.chmod(0o777)
    return path


@pytest.fixture(scope="module")
def demo(shared_demo_bids, tmp_path_factory) -> Path:
    """Demo BIDS dataset with 2 participants, readable by any UID (the container's): a copy,
    so that the shared dataset's modes stay as built."""
    bids = copy_tree(shared_demo_bids, tmp_path_factory.mktemp("container") / "bids")
    top = tmp_path_factory.getbasetemp().parent  # pytest's base temp is private to its user
    for folder in [bids, *bids.parents]:
        folder.chmod(folder.stat().st_mode | 0o055)
        if folder == top:
            break
    subprocess.run(["chmod", "-R", "a+rX", str(bids)], check=True)
    return bids


def test_image_metadata(image):
    """Entry point is the CLI, no USER, OCI labels, a size far below fMRIPrep's 15-25 GB."""
    info = json.loads(podman("image", "inspect", image, timeout=60, check=True).stdout)[0]
    config = info["Config"]
    assert config["Entrypoint"] == ["bids-dfc"]
    assert not config.get("User"), "a hard-coded USER breaks arbitrary-UID runs (Apptainer)"
    from bids_dfc import __version__

    labels = config.get("Labels") or info.get("Labels") or {}
    assert labels["org.opencontainers.image.version"] == __version__
    assert labels["org.opencontainers.image.licenses"] == "Apache-2.0"
    env = dict(item.split("=", 1) for item in config["Env"])
    assert env["TEMPLATEFLOW_HOME"] == "/opt/templateflow"
    assert env["HOME"] == "/tmp"
    size_gb = info["Size"] / 1e9
    print(f"image {image}: {size_gb:.2f} GB")
    assert size_gb < 3.0, f"image is {size_gb:.2f} GB; it should stay well below 3 GB"


def test_demo_runs_offline_read_only_as_any_uid(image, demo, tmp_path):
    """Participant then group level inside the container; outputs owned by the run's UID."""
    out, work = _open_dir(tmp_path / "out"), _open_dir(tmp_path / "work")
    mounts = [f"{demo}:/data:ro", f"{out}:/out", f"{work}:/work"]
    rc, code, log = run_container(
        image, ["/data", "/out", "participant", "-w", "/work", "--nprocs", "2", "--sloppy"],
        mounts)
    assert (rc, code) == (0, 0), log[-4000:]
    subjects = sorted(p.name for p in demo.glob("sub-*") if p.is_dir())
    for subject in subjects:
        dfc = sorted((out / subject).rglob("*_dfc.tsv"))
        assert dfc, f"no dFC table for {subject}:\n{log[-3000:]}"
        assert 0 < dmn_des_sd(dfc[0]) < 1
        assert dfc[0].stat().st_uid == 12345, "outputs must belong to the UID that ran them"
    description = json.loads((out / "dataset_description.json").read_text())
    assert description["DatasetType"] == "derivative"
    assert description["GeneratedBy"][0]["Name"].lower().replace("-", "_") == "bids_dfc"

    rc, code, log = run_container(
        image, ["/data", "/out", "group", "-w", "/work", "--n-boot", "200"], mounts)
    # two demo participants (one NR, one R) support no dFC test: the group level reads
    # both, says so, and writes the demo's crossover trial
    assert code == 0, log[-4000:]
    assert "no statistical test of dFC could be computed from 2 participants" in log, \
        log[-4000:]
    assert (out / "group" / "trial" / "contrasts.tsv").stat().st_uid == 12345
    assert not list(demo.rglob("*.pklz")), "the read-only input must not be written to"


def test_failing_run_exits_nonzero(image, demo, tmp_path):
    """A run that fails (a participant that is not in the dataset) returns a non-zero code."""
    out, work = _open_dir(tmp_path / "out"), _open_dir(tmp_path / "work")
    rc, code, log = run_container(
        image, ["/data", "/out", "participant", "--participant-label", "nobody", "-w", "/work"],
        [f"{demo}:/data:ro", f"{out}:/out", f"{work}:/work"])
    assert rc != 0 and code != 0, log
    assert "nobody" in log


def test_read_only_output_is_refused_before_processing(image, demo, tmp_path):
    """Output folder mounted read-only: a clear error and nothing processed."""
    out, work = _open_dir(tmp_path / "out"), _open_dir(tmp_path / "work")
    rc, code, log = run_container(
        image, ["/data", "/out", "participant", "-w", "/work", "--sloppy"],
        [f"{demo}:/data:ro", f"{out}:/out:ro", f"{work}:/work"])
    assert rc != 0 and code != 0, log
    assert "/out" in log and "writable" in log, log
    assert not list(work.rglob("*.pklz")), "processing started despite the read-only output"
