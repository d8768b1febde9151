"""Without -v, the real `edgeclf` process shows only edgeclf's own lines on stderr: no TensorFlow banners."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from edgeclf.cli.quiet import is_noise, wants_verbose

from .conftest import write_color_folders

BANNERS = [b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR",
           b"I0000 00:00:1796097788.171452   16509 port.cc:153] oneDNN custom operations are on.",
           b"E0000 00:00:1796091688.140329    6241 node_def_util.cc:682] NodeDef mentions attribute",
           b"INFO: Created TensorFlow Lite XNNPACK delegate for CPU."]


def test_the_filter_knows_banners_from_our_lines() -> None:
    assert all(is_noise(b) for b in BANNERS)
    for ours in (b"error: runs/x: no such run directory", b"150 px: test accuracy 0.948 [0.84, 1.00]",
                 b"Traceback (most recent call last):", b"I0000 is not a file name we print"):
        assert not is_noise(ours)
    assert wants_verbose(["-v", "train"]) and wants_verbose(["-qv", "train"]) and wants_verbose(["--verbose"])
    assert not wants_verbose(["train", "-v"]) and not wants_verbose(["-q", "train"])


def test_train_in_a_real_process_prints_no_native_banner(tmp_path: Path) -> None:
    data = write_color_folders(tmp_path / "d", n_per_class=9, size=32)
    cmd = [sys.executable, "-m", "edgeclf", "train", "--arch", "edge", str(data), "--out", str(tmp_path / "run"), "--size", "32",
           "--epochs", "1", "--no-augment"]
    r = subprocess.run(cmd, capture_output=True, timeout=300)
    assert r.returncode == 0, r.stderr.decode()[-2000:]
    lines = r.stderr.splitlines()
    assert any(b"test accuracy" in ln for ln in lines)  # our log lines pass
    assert not [ln for ln in lines if is_noise(ln)], r.stderr.decode()
    assert b"oneDNN custom operations" not in r.stderr and b"absl" not in r.stderr  # our own threads line may name oneDNN
    loud = subprocess.run([sys.executable, "-m", "edgeclf", "-v", "train", "--arch", "edge", str(data), "--out",
                           str(tmp_path / "run2"), "--size", "32", "--epochs", "1", "--no-augment"],
                          capture_output=True, timeout=300)
    assert loud.returncode == 0 and b"oneDNN" in loud.stderr  # -v shows them: the filter is the only difference
