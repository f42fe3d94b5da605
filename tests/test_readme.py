"""The README's Python block runs as written (its file names pointed at real files)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_readme_python_block_runs(tmp_path, data_dir):
    readme = (ROOT / "README.md").read_text()
    block = re.search(r"From Python:\n\n```python\n(.*?)```", readme, re.S).group(1)
    import maskwatch.samples

    shutil.copy(maskwatch.samples.CROWD, tmp_path / "photo.jpg")
    (tmp_path / "photos").mkdir()
    shutil.copy(maskwatch.samples.CROWD, tmp_path / "photos" / "crowd.jpg")
    script = block.replace('"../shared/datasets/face-mask-voc"', repr(str(data_dir)))
    script += "\nassert report['summary']['mAP50'] > 0.5 and summary.processed == 1 and not summary.failed\n"
    run = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "with_mask" in run.stdout and (tmp_path / "drawn.jpg").is_file()
    assert (tmp_path / "out" / "eval" / "report.json").is_file()
