"""``seq.as_torch()`` with real PyTorch, in fresh processes.

``python -m tests.parallel._torch_checks`` runs the single-process checks, then a DDP
training loop in 2 processes (gloo on 127.0.0.1, this module with ``rank port path`` as
its arguments), and prints one JSON object; tests/parallel/test_frameworks.py asserts on it.
"""

import json
import warnings

import numpy as np
import torch

from seqpipe.pipeline import Pipeline
from tests.parallel._data import make_data
from tests.parallel._processes import checks_main, run_two_processes

DDP_SAMPLES, DDP_BATCH, DDP_EPOCHS = 45, 8, 2


def _ids(batch):
    return [int(i) for i in batch[0][:, 4]]


def _shared_memory_ranges():
    ranges = []
    with open("/proc/self/maps") as f:
        for line in f:
            if "/seqpipe_" in line:
                start, end = (int(v, 16) for v in line.split()[0].split("-"))
                ranges.append((start, end))
    return ranges


def loader_checks(out):
    x, y = make_data(40)
    seq = Pipeline((x, y), batch_size=16, shuffle=True, seed=3)
    loader = seq.as_torch(workers=2)
    out["len"] = len(loader)
    epochs = [[batch for batch in loader] for _ in range(2)]  # each iter() is an epoch
    out["types"] = [type(epochs[0][0]).__name__, *(type(t).__name__ for t in epochs[0][0])]
    out["dtypes"] = [str(t.dtype) for t in epochs[0][0]]
    out["epoch_ids"] = [[_ids(b) for b in batches] for batches in epochs]
    out["pipeline_ids"] = [[_ids(seq.get_batch(i, e)) for i in range(len(seq))] for e in (0, 1)]
    out["values_match"] = all(
        torch.equal(t, torch.from_numpy(a))
        for e, batches in enumerate(epochs)
        for i, batch in enumerate(batches)
        for t, a in zip(batch, seq.get_batch(i, e), strict=True)
    )
    # A loop that stops inside its epoch: the next iter() starts the next epoch.
    next(iter(loader))
    out["after_break"] = [_ids(b) for b in loader]
    out["pipeline_ids_epoch_3"] = [_ids(seq.get_batch(i, 3)) for i in range(len(seq))]
    loader.close()

    # Dicts keep their keys; large arrays are shared memory, not copies.
    # 192 KiB per batch: above the enqueuer's 64 KiB, so it crosses in shared memory.
    images = np.arange(8 * 128 * 128 * 3, dtype=np.uint8).reshape(8, 128, 128, 3)
    with Pipeline({"image": images, "label": np.arange(8)}, batch_size=4).as_torch(
        workers=2, device="cpu"
    ) as loader:
        batches = list(loader)
        ranges = _shared_memory_ranges()
        out["dict_keys"] = [sorted(b) for b in batches]
        out["dict_values_match"] = all(
            torch.equal(b["image"], torch.from_numpy(images[4 * i : 4 * i + 4]))
            for i, b in enumerate(batches)
        )
        out["image_in_shared_memory"] = [
            any(a <= b["image"].data_ptr() < e for a, e in ranges) for b in batches
        ]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with Pipeline(images, batch_size=4).as_torch(pin_memory=True) as loader:
            out["pinned"] = [bool(b.is_pinned()) for b in loader]
    out["pin_warnings"] = [str(w.message) for w in caught]


def resume_checks(out):
    x, y = make_data(50)
    seq = Pipeline((x, y), batch_size=8, shuffle=True, seed=5)
    loader = seq.as_torch(workers=2)
    list(loader)  # epoch 0
    seen = []
    for batch in loader:  # epoch 1, stopped after 3 batches
        seen.append(_ids(batch))
        if len(seen) == 3:
            break
    state = json.loads(json.dumps(loader.state_dict()))  # JSON-able
    loader.close()
    # Another loader, other worker settings, a pipeline object built anew.
    resumed = Pipeline((x, y), batch_size=8, shuffle=True, seed=5).as_torch(
        workers=1, use_multiprocessing=False
    )
    resumed.load_state_dict(state)
    seen += [_ids(b) for b in resumed]
    out["resumed_epoch_1"] = seen
    out["pipeline_epoch_1"] = [_ids(seq.get_batch(i, 1)) for i in range(len(seq))]
    out["after_resume"] = [_ids(b) for b in resumed]  # then epoch 2 as usual
    out["pipeline_epoch_2"] = [_ids(seq.get_batch(i, 2)) for i in range(len(seq))]
    resumed.close()


def rank_main(rank, port, result_path, world_size=2):
    """One DDP process: trains a linear model on its shard of the pipeline."""
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    dist.init_process_group(
        "gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world_size
    )
    torch.manual_seed(0)
    model = DistributedDataParallel(torch.nn.Linear(4, 1))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    x, y = make_data(DDP_SAMPLES)
    seq = Pipeline((x, y), batch_size=DDP_BATCH, shuffle=True, seed=7)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        seq.as_torch().close()  # shard=None under torch.distributed: a warning
    loader = seq.as_torch(workers=1, shard="auto")
    trained, losses = [], []
    for _ in range(DDP_EPOCHS):
        ids, total = [], 0.0
        for xb, yb, wb in loader:
            # Exactly-once: weight-0 padding rows count for nothing, and the loss is
            # divided by the real samples of the global batch (DDP averages gradients
            # over the ranks, hence the world size).
            real = wb.sum()
            global_real = real.clone()
            dist.all_reduce(global_real)
            per_sample = ((model(xb[:, :4]) - yb) ** 2).squeeze(1)
            loss = (wb * per_sample).sum() / global_real * world_size
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            ids += [int(i) for i, w in zip(xb[:, 4], wb, strict=True) if w > 0]
            total += float((wb * per_sample).sum().detach())
        trained.append(ids)
        losses.append(total)
    loader.close()
    weights = torch.cat([p.detach().flatten() for p in model.parameters()])
    gathered = [torch.zeros_like(weights) for _ in range(world_size)]
    dist.all_gather(gathered, weights)
    result = {
        "rank": rank,
        "len": len(loader),
        "trained": trained,
        "losses": losses,
        "weights": [g.tolist() for g in gathered],
        "warnings": [str(w.message) for w in caught],
    }
    dist.destroy_process_group()
    with open(result_path, "w") as f:
        json.dump(result, f)


def ddp_checks(out):
    codes, results = run_two_processes("tests.parallel._torch_checks")
    out["ddp_exit_codes"], out["ddp"] = codes, results


if __name__ == "__main__":
    checks_main([loader_checks, resume_checks, ddp_checks], rank_main)
