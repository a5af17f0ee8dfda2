"""The benchmarks (``bench/run NAME``). Where they find the project and the shared data the
benchmarks read (``../shared/data`` beside the project, see its README)."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"
SCIFACT = SHARED_DATA / "scifact"
MOVIELENS = SHARED_DATA / "movielens-100k"
