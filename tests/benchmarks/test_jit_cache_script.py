"""benchmarks/gpu/jit_cache.sh: save a host's kernel caches in parts the device can return, load them back."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "gpu" / "jit_cache.sh"


def _sh(home: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    full = {**os.environ, "HOME": str(home), "JIT_TMP": str(home / "tmp"), **env}
    return subprocess.run(["bash", str(SCRIPT), *args], env=full, capture_output=True, text=True, timeout=120)


def _caches(home: Path, big: int = 40_000) -> dict[Path, bytes]:
    files = {
        home / ".cache" / "flashinfer" / "90a" / "sampling.so": os.urandom(big),
        home / ".triton" / "cache" / "abc" / "kernel.cubin": b"cubin" * 100,
    }
    for path, data in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return files


def test_save_then_load_on_a_bare_host_puts_every_file_back(tmp_path: Path) -> None:
    home = tmp_path / "home"
    files = _caches(home, big=16 * 2**20)  # random bytes do not compress: two 15 MiB parts
    out = tmp_path / "out"
    saved = _sh(home, "save", str(out))
    assert saved.returncode == 0, saved.stderr
    parts = sorted(out.glob("jit-cache.tgz.*"))
    assert [p.name for p in parts] == ["jit-cache.tgz.00", "jit-cache.tgz.01"]
    assert all(p.stat().st_size <= 15 * 2**20 for p in parts)
    # A bare host: the caches are gone, the parts arrive as a carried folder.
    for path in files:
        path.unlink()
    loaded = _sh(home, "load", str(out))
    assert loaded.returncode == 0, loaded.stderr
    assert "loaded 2 part(s)" in loaded.stdout
    for path, data in files.items():
        assert path.read_bytes() == data


def test_more_parts_than_the_device_returns_are_refused_and_nothing_is_written(tmp_path: Path) -> None:
    home = tmp_path / "home"
    _caches(home)
    out = tmp_path / "out"
    refused = _sh(home, "save", str(out), JIT_MAX_PARTS="0")
    assert refused.returncode == 3
    assert "more than JIT_MAX_PARTS=0" in refused.stderr
    assert not list(out.glob("jit-cache.tgz.*"))


def test_nothing_to_load_or_save_is_not_an_error(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    assert "nothing loaded" in _sh(home, "load", str(tmp_path / "none")).stdout
    assert "no cache folders to save" in _sh(home, "save", str(tmp_path / "out")).stdout
    assert _sh(home, "bogus").returncode == 2
