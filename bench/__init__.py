"""The benchmarks (``bench/run NAME``). Where they find the project and the shared data the
benchmarks read (``../shared/data`` beside the project, see its README)."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"
SCIFACT = SHARED_DATA / "scifact"
MOVIELENS = SHARED_DATA / "movielens-100k"


def cpu_flags() -> str:
    """The vector and matrix extensions of this CPU that timings depend on."""
    try:
        flags = set(Path("/proc/cpuinfo").read_text().split())
    except OSError:
        return "unknown"
    wanted = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_bf16")
    return " ".join(f for f in wanted if f in flags) or "none of avx2/avx512"
