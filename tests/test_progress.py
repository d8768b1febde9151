"""One progress protocol (issue #13 item 5): train, convert, bench and eval report `progress(what, done, total)`
(`edgeclf.progress`) and never draw; only the CLI draws (`edgeclf.cli.progress`)."""

from __future__ import annotations

import re
from pathlib import Path

from edgeclf.train.config import TrainConfig
from edgeclf.train.run import train

from .conftest import write_color_folders

REPO = Path(__file__).resolve().parents[1]


def test_train_reports_checking_and_every_step(tmp_path: Path) -> None:
    data = write_color_folders(tmp_path / "data", n_per_class=8, size=40)
    seen: list[tuple[str, int, int | None]] = []
    result = train(TrainConfig(data_dir=str(data), out=str(tmp_path / "run"), sizes=(32,), epochs=2, batch_size=4,
                               augment=False, arch="edge"), progress=lambda what, done, total: seen.append((what, done, total)))
    checking = [s for s in seen if s[0] == "checking images"]
    assert checking and checking[-1][1] == checking[-1][2] == 16  # every image, counted to the end
    for epoch in (1, 2):
        steps = [s for s in seen if s[0] == f"32 px: epoch {epoch}/2"]
        total = steps[-1][2]
        assert total and [s[1] for s in steps] == list(range(total + 1))  # 0, then each step once
    # TrainResult.sizes is typed (#13 item 4): fields, and the record metrics.json holds
    import json

    from edgeclf.contracts import Interval
    from edgeclf.train.result import SizeResult

    r = result.sizes[32]
    assert isinstance(r, SizeResult) and isinstance(r.test, Interval) and r.epochs_run == 2
    assert dict(r.record) == json.loads((tmp_path / "run" / "metrics.json").read_text())["sizes"]["32"]


def test_the_library_never_draws() -> None:
    """No progress bar is built below the CLI: no rich.progress, no Keras verbose bars."""
    drawing = re.compile(r"rich\.progress|verbose=1|tqdm")
    offenders = [p.relative_to(REPO).as_posix() for pkg in ("train", "convert", "bench", "evaluate", "edge")
                 for p in (REPO / pkg).rglob("*.py") if drawing.search(p.read_text(encoding="utf-8"))]
    assert not offenders, offenders


def test_the_cli_bar_draws_what_is_reported() -> None:
    import io

    from edgeclf.cli.progress import progress_bar

    out = io.StringIO()
    with progress_bar(True, out, transient=False) as progress:
        assert progress is not None
        progress("150 px: epoch 3/30", 7, 12)
    assert "150 px: epoch 3/30" in out.getvalue() and "7/12" in out.getvalue()
    with progress_bar(False) as progress:
        assert progress is None
