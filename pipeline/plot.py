"""`plot_model`: a Keras model's graph, or a pipeline's stages as a Graphviz graph."""

from __future__ import annotations

import itertools
import os
import shutil
from typing import Any

from .batches import DICT, TUPLE
from .pipeline import Pipeline
from .sequence import Sequence
from .stages import Stage, as_pipeline, shapes, trace

FORMATS = ("png", "svg", "pdf", "dot")
INSTALL_GRAPHVIZ = (
    "plot_model needs Graphviz's `dot` program to write .{fmt} files and it was not found "
    "on PATH. Install Graphviz: `apt-get install graphviz` (Debian/Ubuntu), `brew install "
    "graphviz` (macOS) or `conda install graphviz`; or write a .dot file, which needs no "
    "Graphviz"
)


def _label(stage: Stage, show_layer_names: bool) -> str:
    text = stage.name if show_layer_names else stage.name.split(":")[0].split("(")[0]
    return text.replace('"', "'")


def build_graph(
    seq: Sequence,
    show_shapes: bool = False,
    show_layer_names: bool = True,
    rankdir: str = "TB",
    expand_nested: bool = False,
    dpi: int = 96,
) -> Any:
    """Returns the pipeline's stages as a ``pydot.Dot`` graph (see `plot_model`)."""
    import pydot

    graph = pydot.Dot(graph_type="digraph", rankdir=rankdir, dpi=dpi)
    graph.set_node_defaults(shape="box", style="rounded", fontname="Helvetica")
    counter = itertools.count()

    def add_chain(container: Any, stages: list[Stage], p: Pipeline) -> str:
        """Adds ``stages`` to ``container``; returns the id of the last node."""
        sources = [s for s in stages if s.kind == "source"]
        rest = [s for s in stages if s.kind != "source"]
        source_ends = []
        zipped = len(sources) > 1 and p.structure in (TUPLE, DICT)
        holder = container
        if expand_nested and zipped:
            holder = pydot.Cluster(f"zip{next(counter)}", label=f"zip ({p.structure})")
            container.add_subgraph(holder)
        for stage in sources:
            if expand_nested and stage.inner:
                nested = pydot.Cluster(f"nested{next(counter)}", label=_label(stage, True))
                holder.add_subgraph(nested)
                source_ends.append(add_chain(nested, stage.inner, p.sources))
                continue
            node = f"n{next(counter)}"
            holder.add_node(pydot.Node(node, label=_label(stage, show_layer_names)))
            source_ends.append(node)
        previous, previous_stages = source_ends, sources
        for stage in rest:
            node = f"n{next(counter)}"
            # Random stages are drawn dashed, besides the mark in their label.
            style = {"style": "rounded,dashed"} if stage.random else {}
            container.add_node(pydot.Node(node, label=_label(stage, show_layer_names), **style))
            for end, before in zip(previous, previous_stages, strict=True):
                label = shapes(before.output) if show_shapes and before.output is not None else ""
                container.add_edge(pydot.Edge(end, node, label=label))
            previous, previous_stages = [node], [stage]
        return previous[0]

    add_chain(graph, trace(seq), as_pipeline(seq))
    return graph


def plot_model(
    model: Any,
    to_file: str = "model.png",
    show_shapes: bool = False,
    show_layer_names: bool = True,
    rankdir: str = "TB",
    expand_nested: bool = False,
    dpi: int = 96,
) -> Any:
    """Draws a Keras model, or a pipeline's stages, to an image file.

    For a `Pipeline` or `Sequence`: a node per source and stage (batching, each
    transform, sharding; random transforms dashed and marked ``[random]``), edges in
    data order; ``show_shapes`` labels edges with the
    shapes of one measured batch; ``expand_nested`` draws zipped sources and nested
    pipelines as clusters. A Keras model is handed to ``keras.utils.plot_model``.

    Args:
        model: a Keras model, a `Pipeline` or a `Sequence`.
        to_file: output path; its extension picks the format (``.png``, ``.svg``,
            ``.pdf``, or ``.dot``, which needs no Graphviz binary).
        show_shapes: label edges with output shapes.
        show_layer_names: full stage descriptions (else class names only).
        rankdir: Graphviz direction, ``'TB'`` or ``'LR'``.
        expand_nested: draw zips and nested pipelines as clusters.
        dpi: image resolution.

    Returns:
        The ``pydot.Dot`` graph (for a pipeline) or what Keras returns.

    Raises:
        ValueError: for an unknown file extension.
        RuntimeError: when Graphviz's ``dot`` is missing, saying how to install it.

    Example:
        >>> import numpy as np
        >>> plot_model(Pipeline(np.zeros(4)), to_file="/tmp/p.dot")  # doctest: +ELLIPSIS
        <pydot.core.Dot object at ...>
    """
    if not isinstance(model, Pipeline | Sequence):
        import keras

        return keras.utils.plot_model(
            model,
            to_file=to_file,
            show_shapes=show_shapes,
            show_layer_names=show_layer_names,
            rankdir=rankdir,
            expand_nested=expand_nested,
            dpi=dpi,
        )
    fmt = os.path.splitext(os.fspath(to_file))[1].lstrip(".").lower()
    if fmt not in FORMATS:
        raise ValueError(f"to_file must end in one of {FORMATS}. Received: to_file={to_file!r}")
    if fmt != "dot" and shutil.which("dot") is None:
        raise RuntimeError(INSTALL_GRAPHVIZ.format(fmt=fmt))
    graph = build_graph(model, show_shapes, show_layer_names, rankdir, expand_nested, dpi)
    if fmt == "dot":
        with open(to_file, "w") as f:
            f.write(graph.to_string())
    else:
        graph.write(os.fspath(to_file), format=fmt)
    return graph
