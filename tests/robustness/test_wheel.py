"""The wheel and sdist users install (issue 17), built and installed as they would be.

The sdist comes from ``maturin sdist``; the wheel is built *from that sdist* with the release
command (``maturin build --release --zig --compatibility manylinux2014``), so a file missing from
the sdist fails here. Then:

* the wheel is abi3 (cp311-abi3), manylinux2014 by ``auditwheel show``, and carries the LICENSE;
* a fresh virtual environment with the wheel and numpy only runs tests/packaging/smoke.py (the
  numpy core; the modules that need torch/TRL name their extra);
* one with the ``torch`` extra (torch from requirements/dev.lock, linked from uv's cache) runs
  tests/packaging/smoke_torch.py (the custom ops and losses, forward and backward);
* the same wheel in CPython 3.12 and 3.13 environments runs smoke.py (skipped, with a message,
  where the interpreter is absent).

Cached so the suite stays fast: the build is keyed by the sdist's contents and the toolchain's
versions, and kept in ``~/.cache/fastalign-package`` (``FASTALIGN_PACKAGE_CACHE``) with cargo's
target directory and the unpacked sdist (files rewritten only when their bytes change, so cargo
rebuilds only what changed). Unchanged sources: no build at all; a new machine builds once.
"""

from __future__ import annotations

import contextlib
import fcntl
import glob
import hashlib
import os
import pathlib
import platform
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import zipfile
from collections.abc import Iterator

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
SMOKE = ROOT / "tests" / "packaging"
LOCK = ROOT / "requirements" / "dev.lock"
CACHE = pathlib.Path(os.environ.get("FASTALIGN_PACKAGE_CACHE", pathlib.Path.home() / ".cache" / "fastalign-package"))
BIN = pathlib.Path(sys.executable).parent  # the dev venv: maturin, auditwheel, ziglang
RELEASE = ["maturin", "build", "--release", "--zig", "--compatibility", "manylinux2014"]
PLATFORM_TAG = "manylinux_2_17_x86_64"

pytestmark = pytest.mark.skipif(
    sys.platform != "linux" or platform.machine() != "x86_64", reason="the release wheels are built on x86_64 Linux"
)


def _env(**extra: str) -> dict[str, str]:
    env = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}", VIRTUAL_ENV=str(BIN.parent))
    env.pop("PYTHONPATH", None)
    env.update(extra)
    return env


def _run(cmd: list[str], **kw) -> str:
    p = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if p.returncode != 0:
        raise AssertionError(f"{' '.join(map(str, cmd))} exited {p.returncode}\n{p.stdout[-4000:]}\n{p.stderr[-4000:]}")
    return p.stdout + p.stderr


def _uv() -> str:
    # scripts/setup.sh installs uv (pip --user puts it in ~/.local/bin, not always on PATH)
    found = shutil.which("uv") or shutil.which("uv", path=str(pathlib.Path.home() / ".local" / "bin"))
    if not found:
        pytest.fail("uv not found: scripts/setup.sh installs it")
    return found


@contextlib.contextmanager
def _locked(path: pathlib.Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)  # two test runs on one machine share the cache
        yield


def _sdist_key(sdist: pathlib.Path) -> str:
    h = hashlib.sha256()
    with tarfile.open(sdist) as tar:
        for m in sorted(tar.getmembers(), key=lambda m: m.name):
            if m.isfile():
                h.update(m.name.encode() + b"\0" + tar.extractfile(m).read() + b"\0")
    for cmd in (["rustc", "-vV"], [str(BIN / "maturin"), "--version"], [sys.executable, "-m", "ziglang", "version"]):
        h.update(_run(cmd, env=_env()).encode())
    h.update(" ".join(RELEASE).encode())
    return h.hexdigest()[:20]


def _sync(sdist: pathlib.Path, dest: pathlib.Path) -> pathlib.Path:
    """Unpack ``sdist`` over ``dest``, writing only files whose bytes differ (with a fresh
    mtime, so cargo sees them) and deleting the ones it no longer has; returns its top folder."""
    with tempfile.TemporaryDirectory() as tmp:
        with tarfile.open(sdist) as tar:
            tar.extractall(tmp, filter="data")
        new = {p.relative_to(tmp) for p in pathlib.Path(tmp).rglob("*") if p.is_file()}
        for rel in new:
            src, dst = pathlib.Path(tmp) / rel, dest / rel
            if not dst.is_file() or dst.read_bytes() != src.read_bytes():
                dst.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(src, dst)
        if dest.exists():
            for p in dest.rglob("*"):
                if p.is_file() and p.relative_to(dest) not in new:
                    p.unlink()
        (top,) = {rel.parts[0] for rel in new}
    return dest / top


@pytest.fixture(scope="module")
def dist(tmp_path_factory) -> dict:
    """The sdist and the release wheel built from it (cached)."""
    start = time.perf_counter()
    out = tmp_path_factory.mktemp("sdist")
    _run([str(BIN / "maturin"), "sdist", "--out", str(out)], cwd=ROOT, env=_env())
    (sdist,) = out.glob("fastalign-*.tar.gz")
    key = _sdist_key(sdist)
    with _locked(CACHE / "lock"):
        done = CACHE / "dist" / key
        built = not any(done.glob("*.whl"))
        if built:
            src = _sync(sdist, CACHE / "src")
            staging = pathlib.Path(tempfile.mkdtemp(dir=CACHE))
            _run(
                [str(BIN / RELEASE[0]), *RELEASE[1:], "--out", str(staging)],
                cwd=src,
                env=_env(CARGO_TARGET_DIR=str(CACHE / "target")),
            )
            shutil.copy(sdist, staging)
            shutil.rmtree(done, ignore_errors=True)
            done.parent.mkdir(exist_ok=True)
            staging.rename(done)
            # keep the last few builds
            for old in sorted((CACHE / "dist").iterdir(), key=lambda p: p.stat().st_mtime)[:-4]:
                shutil.rmtree(old, ignore_errors=True)
        (wheel,) = done.glob("*.whl")
    seconds = time.perf_counter() - start
    print(f"\nwheel: {wheel.name} ({'built' if built else 'cached'}, {seconds:.1f} s)", file=sys.stderr)
    return {"wheel": wheel, "sdist": sdist, "version": sdist.name[len("fastalign-") : -len(".tar.gz")]}


def test_the_wheel_is_abi3_manylinux2014_and_carries_the_license(dist):
    wheel = dist["wheel"]
    assert wheel.name == (f"fastalign-{dist['version']}-cp311-abi3-manylinux2014_x86_64.{PLATFORM_TAG}.whl"), wheel.name
    report = " ".join(_run([str(BIN / "auditwheel"), "show", str(wheel)]).split())
    assert f'consistent with the following platform tag: "{PLATFORM_TAG}"' in report, report
    names = zipfile.ZipFile(wheel).namelist()
    info = f"fastalign-{dist['version']}.dist-info"
    assert f"{info}/licenses/LICENSE" in names
    assert "fastalign/_native.abi3.so" in names and "fastalign/py.typed" in names
    assert not [n for n in names if n.endswith(".so") and n != "fastalign/_native.abi3.so"], names
    assert all(n.startswith(("fastalign/", info)) for n in names), names


def test_the_sdist_has_the_license_both_crates_and_the_lock(dist):
    top = f"fastalign-{dist['version']}"
    with tarfile.open(dist["sdist"]) as tar:
        names = set(tar.getnames())
    for need in [
        "LICENSE",
        "README.md",
        "pyproject.toml",
        "Cargo.toml",
        "Cargo.lock",
        "rust/fastalign-core/Cargo.toml",
        "rust/fastalign-py/Cargo.toml",
        "rust/fastalign-py/build.rs",
        "python/fastalign/__init__.py",
        "python/fastalign/py.typed",
    ]:
        assert f"{top}/{need}" in names, need


def _venv(tmp_path: pathlib.Path, python: str, *requirements: str) -> pathlib.Path:
    venv = tmp_path / "venv"
    env = _env(UV_PYTHON_DOWNLOADS="never")
    env.pop("VIRTUAL_ENV")
    _run([_uv(), "venv", "--quiet", "--python", python, str(venv)], env=env)
    _run(
        [
            _uv(),
            "pip",
            "install",
            "--quiet",
            "--python",
            str(venv / "bin" / "python"),
            *requirements,
            "--constraint",
            str(LOCK),
        ],
        env=env,
    )
    return venv / "bin" / "python"


def _smoke(python: pathlib.Path, script: str, cwd: pathlib.Path) -> str:
    # -I: neither the checkout nor PYTHONPATH nor the user's site-packages; the installed wheel only
    return _run([str(python), "-I", str(SMOKE / script)], cwd=cwd, env=_env())


def test_numpy_only_environment(dist, tmp_path):
    python = _venv(tmp_path, sys.executable, str(dist["wheel"]))
    assert "smoke: fastalign" in _smoke(python, "smoke.py", tmp_path)
    # the command-line entry point installs and runs without torch
    assert "bench" in _run([str(python.parent / "fastalign"), "--help"], cwd=tmp_path, env=_env())


def test_torch_extra_environment(dist, tmp_path):
    python = _venv(tmp_path, sys.executable, f"fastalign[torch] @ {dist['wheel'].as_uri()}")
    assert "losses, ratios, ops OK" in _smoke(python, "smoke_torch.py", tmp_path)


def _interpreter(minor: str) -> str | None:
    """CPython 3.<minor>: pyenv's build, else python3.<minor> on PATH (a pyenv shim on PATH may
    name a version that is not active, so each candidate must run)."""
    home = pathlib.Path.home() / ".pyenv" / "versions"
    candidates = sorted(glob.glob(str(home / f"3.{minor}.*" / "bin" / f"python3.{minor}")), reverse=True)
    candidates += [p for p in [shutil.which(f"python3.{minor}")] if p]
    for python in candidates:
        if subprocess.run([python, "-c", "pass"], capture_output=True).returncode == 0:
            return python
    return None


@pytest.mark.parametrize("minor", ["12", "13"])
def test_the_same_abi3_wheel_on_a_later_cpython(dist, tmp_path, minor):
    python = _interpreter(minor)
    if python is None:
        pytest.skip(f"CPython 3.{minor} is not on this machine (looked for python3.{minor} on PATH and in ~/.pyenv)")
    venv_python = _venv(tmp_path, python, str(dist["wheel"]))
    assert f"on Python 3.{minor}." in _smoke(venv_python, "smoke.py", tmp_path)
