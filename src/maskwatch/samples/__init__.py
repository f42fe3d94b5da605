"""Images that ship inside the package, so a fresh install can be tried at once (`make demo`, the notebook, CI's
wheel check): `maskwatch detect $(python -c "import maskwatch.samples as s; print(s.CROWD)")`."""

from pathlib import Path

CROWD = Path(__file__).parent / "crowd.jpg"  # maksssksksss657, validation split: the shipped model never trained on it
