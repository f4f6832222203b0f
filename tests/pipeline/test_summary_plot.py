import os
import re
import shutil
import time

import numpy as np
import pytest

from seqpipe.pipeline import Pipeline, plot_model, print_summary
from seqpipe.transforms import Lambda, Normalize, ToCategorical

needs_dot = pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz not installed")


def slow(batch):
    time.sleep(0.02)
    return batch


def _pipeline():
    x = np.ones((20, 4, 2))
    y = np.arange(20) % 3
    return (
        Pipeline((x, y), batch_size=8, shuffle=True, seed=5)
        | Normalize(on=0)
        | Lambda(slow)
        | ToCategorical(3, on=1)
    )


def _summary(p, **kwargs):
    lines = []
    print_summary(p, print_fn=lines.append, **kwargs)
    return lines


def _row(lines, start):
    return next(line for line in lines if line.startswith(start)).split()


def test_pipeline_summary_rows_hold_measured_values():
    lines = _summary(_pipeline())
    assert lines[2].split() == ["Stage", "Output", "shape", "Dtype", "Bytes/batch", "ms/batch"]
    source = _row(lines, "source 0: ndarray(20, 4, 2)")
    assert source[-4:-1] == ["2)", "float64", "512"]
    assert _row(lines, "source 1: ndarray(20,)")[-3:-1] == ["int64", "64"]
    assert _row(lines, "batch(size=8, shuffle=True)")[-2] == "576"
    categorical = _row(lines, "ToCategorical(num_classes=3, on=1)")
    assert categorical[-2] == "608"  # 8*4*2*8 bytes of x + 8*3*4 bytes of one-hot labels
    assert "(8, 3)" in " ".join(categorical) and categorical[-3] == "float32"
    assert float(_row(lines, "Lambda(slow")[-1]) >= 20.0
    assert float(_row(lines, "Normalize(on=0)")[-1]) < 20.0
    assert lines[-6:-2] == [
        "Samples: 20",
        "Batches per epoch: 3",
        "Batch size: 8",
        "Shuffle: True (seed 5)",
    ]
    assert re.match(r"Slowest stage: Lambda\(slow, on=None\) \(\d+\.\d+ ms/batch, \d+%", lines[-2])


def test_line_length_positions_and_errors():
    lines = _summary(_pipeline(), line_length=60, positions=[20, 36, 46, 54, 60])
    assert all(len(line) <= 60 for line in lines[:11])
    assert (
        lines[2] == "Stage               Output shape    Dtype     Bytes/b ms/batch"[:60].rstrip()
    )
    with pytest.raises(ValueError, match=r"right edge of each of the 5 columns"):
        _summary(_pipeline(), positions=[0.5, 1.0])


def test_every_line_fits_line_length_and_long_footer_lines_wrap():
    p = Pipeline(np.arange(10), batch_size=4) | Lambda(slow)
    lines = _summary(p, line_length=72)
    assert max(len(line) for line in lines) <= 72
    start = next(i for i, line in enumerate(lines) if line.startswith("Slowest stage:"))
    assert lines[start + 1].startswith("  ")  # the continuation is indented
    sentence = " ".join(line.strip() for line in lines[start : start + 2])
    assert re.fullmatch(
        r"Slowest stage: Lambda\(slow, on=None\) \(\d+\.\d+ ms/batch, \d+% of the measured "
        r"time; 3 batches measured\)",
        sentence,
    )


def test_summary_of_a_sharded_plain_sequence():
    p = Pipeline(np.arange(10), batch_size=4, drop_remainder=True).shard(2, 0)
    lines = _summary(p)
    assert "Samples: 10 (2 dropped per epoch)" in lines
    assert "Batches per epoch: 1 (shard 0 of 2)" in lines
    assert _row(lines, "shard 0/2")[-2] == "48"  # 4 int64 ids + 4 float32 weights


def test_summary_of_a_keras_model_is_keras_own():
    keras = pytest.importorskip("keras")
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2, name="dense_out")])
    lines = []
    print_summary(model, line_length=80, print_fn=lambda line, **kw: lines.append(line))
    text = "\n".join(lines)
    assert "dense_out" in text and "Total params: 8" in text


def _parse(path):
    """Node labels (in file order, clusters included) and edge labels of a .dot file."""
    import pydot

    (graph,) = pydot.graph_from_dot_file(str(path))
    nodes, edges, pending = [], [], [graph]
    while pending:
        g = pending.pop(0)
        nodes += [n.get("label").strip('"') for n in g.get_nodes() if n.get("label")]
        edges += [(e.get("label") or "").strip('"') for e in g.get_edges()]
        pending = g.get_subgraphs() + pending
    return graph, nodes, edges


def test_plot_dot_needs_no_binary_and_lists_stages_in_order(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no `dot` anywhere
    path = tmp_path / "pipeline.dot"
    plot_model(_pipeline(), to_file=str(path), show_shapes=True, rankdir="LR")
    graph, labels, edges = _parse(path)
    assert labels == [
        "source 0: ndarray(20, 4, 2)",
        "source 1: ndarray(20,)",
        "batch(size=8, shuffle=True)",
        "Normalize(on=0)",
        "Lambda(slow, on=None)",
        "ToCategorical(num_classes=3, on=1)",
    ]
    assert edges == [
        "(8, 4, 2)",
        "(8,)",
        "(8, 4, 2), (8,)",
        "(8, 4, 2), (8,)",
        "(8, 4, 2), (8,)",
    ]
    assert graph.get("rankdir") == "LR"
    with pytest.raises(RuntimeError, match=r"apt-get install graphviz"):
        plot_model(_pipeline(), to_file=str(tmp_path / "pipeline.png"))
    with pytest.raises(ValueError, match=r"to_file must end in one of"):
        plot_model(_pipeline(), to_file=str(tmp_path / "pipeline.jpg"))


def test_expand_nested_draws_clusters(tmp_path):
    nested = Pipeline(_pipeline()) | Lambda(np.copy, on=0)
    path = tmp_path / "nested.dot"
    plot_model(nested, to_file=str(path), expand_nested=True, show_layer_names=False)
    graph, labels, _ = _parse(path)
    clusters = graph.get_subgraphs()
    assert [c.get("label").strip('"') for c in clusters] == ["sequence: Pipeline[tuple]"]
    assert [c.get("label").strip('"') for c in clusters[0].get_subgraphs()] == ["zip (tuple)"]
    assert labels == [
        "batches",
        "Lambda",
        "batch",
        "Normalize",
        "Lambda",
        "ToCategorical",
        "source 0",
        "source 1",
    ]
    flat = plot_model(nested, to_file=str(tmp_path / "flat.dot"))
    assert "subgraph" not in flat.to_string()


@needs_dot
@pytest.mark.parametrize("fmt, magic", [("png", b"\x89PNG"), ("svg", b"<?xml"), ("pdf", b"%PDF")])
def test_plot_renders_images(tmp_path, fmt, magic):
    path = tmp_path / f"pipeline.{fmt}"
    plot_model(_pipeline(), to_file=str(path), show_shapes=True, dpi=50)
    assert path.read_bytes().startswith(magic) and os.path.getsize(path) > 1000


@needs_dot
def test_plot_of_a_keras_model_is_keras_own(tmp_path):
    keras = pytest.importorskip("keras")
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    path = tmp_path / "model.png"
    plot_model(model, to_file=str(path), show_shapes=True)
    assert path.read_bytes().startswith(b"\x89PNG")
