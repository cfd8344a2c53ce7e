from pathlib import Path

import nbformat
from nbclient import NotebookClient

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "walkthrough.ipynb"


def test_walkthrough_runs_on_a_small_subset(tmp_path, face_folders):
    train, val = face_folders
    nb = nbformat.read(NOTEBOOK, as_version=4)
    params = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    params.source = f'TRAIN = "{train}"\nVAL = "{val}"\nLIMIT = None\nARCH = "seed"\nEPOCHS = 1\nOUT = "{tmp_path / "run"}"'
    NotebookClient(
        nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    ).execute()
    printed = "".join(
        o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs
    )
    assert "reloaded model gives the same scores: True" in printed
    assert "macro-recall" in printed
    images = [
        o
        for c in nb.cells
        if c.cell_type == "code"
        for o in c.outputs
        if "image/png" in o.get("data", {})
    ]
    assert len(images) >= 3  # samples, augmented batch, live curves
    assert (tmp_path / "run" / "model.json").exists() and (
        tmp_path / "run" / "model.weights.h5"
    ).exists()
