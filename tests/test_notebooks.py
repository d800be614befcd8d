"""The notebooks of notebooks/: stored without outputs, and every one runs headless, small.

Each notebook runs in a `python3` kernel (nbclient) with GATTANET_SMALL=1, its WORK folder in a
temporary directory shared by this module (the tiny fallback runs are trained once), RUN and
CASCADE_RUN naming runs that do not exist (so `ensure_run` trains them, as in CI) and the
repository root as working directory. A cell error fails the test, and so does any file that
appears in the repository outside data/ while it runs.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from gattanet_sim.train import ensure_run

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
CACHES = {"__pycache__", ".pytest_cache", ".hypothesis", ".ipynb_checkpoints"}


def test_notebooks_are_stored_without_outputs_and_open_with_their_parameters():
    assert len(NOTEBOOKS) >= 5, "notebooks/ should hold the five walkthroughs"
    for path in NOTEBOOKS:
        nb = nbformat.read(path, as_version=4)
        assert nb.cells[0].cell_type == "markdown", f"{path.name}: open with what it shows"
        code = [cell for cell in nb.cells if cell.cell_type == "code"]
        for name in ("GATTANET_SMALL", "GATTANET_WORK", "GATTANET_RUN"):
            assert name in code[0].source, f"{path.name}: the first code cell sets the parameters ({name})"
        for cell in code:
            assert cell.outputs == [] and cell.execution_count is None, \
                f"{path.name}: strip outputs and execution counts before committing"


def _new_paths() -> set[str] | None:
    """Every file git sees in the repository, ignored ones too, outside data/, .venv and caches
    (None without git)."""
    try:
        status = subprocess.run(["git", "status", "--porcelain", "--ignored", "--untracked-files=all",
                                 "--", ".", ":(exclude)data", ":(exclude).venv"],
                                cwd=ROOT, capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    paths = {line[3:] for line in status.splitlines()}
    return {p for p in paths if not CACHES & set(Path(p).parts) and not p.endswith(".tmp")}


def test_every_notebook_states_its_measured_time_where_the_timing_script_reads_it():
    import importlib.util

    spec = importlib.util.spec_from_file_location("notebook_times", ROOT / "benchmarks" / "notebook_times.py")
    timing = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(timing)
    for path in NOTEBOOKS:
        stated = timing.stated_seconds(nbformat.read(path, as_version=4))
        assert stated is not None and 1 <= stated <= 1800, f"{path.name}: state its run time as '**N s measured'"


def test_the_timing_script_refuses_a_missing_notebook_in_one_line(tmp_path):
    import sys

    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "notebook_times.py"), str(tmp_path / "no.ipynb")],
                          capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 2 and "no such notebook" in done.stderr and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


STAMPED = """
import matplotlib.pyplot as plt
from gattanet_sim.notebooks import MARK
figures = [plt.figure(n) for n in plt.get_fignums()]
unmarked = [f.number for f in figures if not any(t.get_text() == MARK for t in f.texts)]
assert not unmarked, f"figures without the small-model mark: {unmarked}"
"""


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("notebooks-work")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_in_the_small_setting(path, work, monkeypatch):
    for name, value in {"GATTANET_SMALL": "1", "GATTANET_WORK": str(work), "MPLBACKEND": "Agg",
                        "GATTANET_RUN": str(work / "no-such-run"),
                        "CASCADE_RUN": str(work / "no-such-cascade-run"),
                        "CUE_RUN": str(work / "no-such-cue-run")}.items():
        monkeypatch.setenv(name, value)  # the kernel inherits the environment
    before = _new_paths()
    nb = nbformat.read(path, as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell(STAMPED))  # every figure drawn says it is the small model's
    client = nbclient.NotebookClient(nb, kernel_name="python3", timeout=600,
                                     resources={"metadata": {"path": str(ROOT)}})
    client.execute()  # raises CellExecutionError, with the cell and its traceback, on any error
    if before is not None:
        assert _new_paths() - before == set(), "the notebook wrote into the repository outside data/"


def test_ensure_run_uses_the_run_else_trains_a_small_one_once(tmp_path):
    existing = tmp_path / "trained"
    existing.mkdir()
    with pytest.raises(RuntimeError, match="holds no checkpoint"):  # an empty directory is no run
        ensure_run(existing, tmp_path / "fallback", small=True)
    (existing / "summary.json").write_text("{}")  # nor is a lone summary
    with pytest.raises(RuntimeError, match="holds no checkpoint"):
        ensure_run(existing, tmp_path / "fallback", small=True)
    (existing / "best.pt").write_bytes(b"")
    assert ensure_run(existing, tmp_path / "fallback", small=True) == existing
    assert not (tmp_path / "fallback").exists()

    out = ensure_run(tmp_path / "missing", tmp_path / "fallback", small=True)
    assert out == tmp_path / "fallback" and (out / "best.pt").exists()
    config = json.loads((out / "summary.json").read_text())["config"]
    assert (config["dataset"], config["mode"], config["timesteps"], config["epochs"]) == ("stimuli", "sweep", 2, 1)
    stamp = (out / "summary.json").stat().st_mtime_ns
    assert ensure_run(tmp_path / "missing", out, small=True) == out  # reused, not retrained
    assert (out / "summary.json").stat().st_mtime_ns == stamp
    with pytest.raises(RuntimeError, match="other arguments"):
        ensure_run(tmp_path / "missing", out, small=True, mode="cascade")


def test_small_mode_stamps_every_open_figure_once():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from gattanet_sim.notebooks import MARK, stamp_open_figures

    plt.close("all")
    figures = [plt.figure(), plt.subplots(1, 2)[0]]
    stamp_open_figures()
    stamp_open_figures()  # after every cell: an already stamped figure keeps one mark
    assert [sum(t.get_text() == MARK for t in f.texts) for f in figures] == [1, 1]
    plt.close("all")


def test_ensure_run_refuses_a_file_that_is_no_checkpoint(tmp_path):
    """ensure_run accepted any existing file (a lone summary.json) as a trained run."""
    from gattanet_sim.io import UnsafeFileError
    from gattanet_sim.train import ensure_run

    summary = tmp_path / "summary.json"
    summary.write_text('{"val_accuracy": [0.8]}\n')
    with pytest.raises(UnsafeFileError, match="summary.json"):
        ensure_run(summary, tmp_path / "fallback")
    assert not (tmp_path / "fallback").exists()
