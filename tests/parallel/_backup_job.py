"""A training job that backs itself up, for the crash-and-resume tests.

``python -m tests.parallel._backup_job BACKUP_DIR RESULT_JSON [--kill-at K] [--every E]
[--replicas R]`` trains with ``backup_every=E``, op determinism on, and the ids of every
trained batch appended to ``$SEQPIPE_RECORD_IDS`` (one line per replica and step). With
``--kill-at K`` it SIGKILLs itself right after global step ``K`` (its last backup is the
one written at step ``E * (K // E)``); run again without it, it resumes from the backup
and writes its final weights, History and the line it logged on resume to
``RESULT_JSON``.

On one machine (no ``TF_CONFIG``) it uses R of 3 logical CPU devices; before resuming it
calls ``fit`` once as another job (a pipeline with another seed) and records the error
that refuses the backup, and after resuming it trains the same job uninterrupted on one
replica (no backup, no recording) for the weights to compare with. With ``TF_CONFIG``
naming two workers, each worker runs this with one replica (both kill themselves at the
same step).
"""

import argparse
import json
import logging
import os
import signal
import sys

EPOCHS, BATCH, SAMPLES = 3, 8, 64  # 64: whole steps on 1 or 2 workers, no padding rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("backup_dir")
    parser.add_argument("result")
    parser.add_argument("--kill-at", type=int)
    parser.add_argument("--every", type=int, default=1)
    parser.add_argument("--replicas", type=int, default=1)
    args = parser.parse_args()
    multi_worker = "TF_CONFIG" in os.environ
    if multi_worker:
        from seqpipe.parallel import multi_worker_strategy

        multi_worker_strategy()  # before TensorFlow initialises
        devices = None
    else:
        import tensorflow as tf

        cpu = tf.config.list_physical_devices("CPU")[0]
        logical = [tf.config.LogicalDeviceConfiguration()] * 3
        tf.config.set_logical_device_configuration(cpu, logical)
        devices = ["/cpu:0", "/cpu:1", "/cpu:2"]
    import keras
    import tensorflow as tf

    tf.config.experimental.enable_op_determinism()

    from seqpipe.parallel import MultiGPUTrainer
    from seqpipe.pipeline import Pipeline

    from ._recording import make_classifier, make_data

    x, _ = make_data(SAMPLES)
    y = (x[:, 0] > 0).astype("int64") + (x[:, 1] > 0)

    def job(callbacks=(), backup=True, replicas=args.replicas, seed=4):
        model = make_classifier(optimizer=keras.optimizers.Adam(0.01))
        seq = Pipeline((x, y), batch_size=BATCH, shuffle=True, seed=seed)
        history = MultiGPUTrainer(model).fit(
            seq,
            devices=devices and devices[:replicas],
            epochs=EPOCHS,
            callbacks=list(callbacks),
            verbose=0,
            backup_dir=args.backup_dir if backup else None,
            backup_every=args.every,
        )
        return model, history

    class Kill(keras.callbacks.Callback):
        """SIGKILLs this process after global step ``kill_at`` (its backup is written)."""

        def __init__(self):
            super().__init__()
            self.done = 0

        def on_train_batch_end(self, batch, logs=None):
            self.done += 1
            if self.done == args.kill_at:
                os.kill(os.getpid(), signal.SIGKILL)

    if args.kill_at is not None:
        job([Kill()])
        sys.exit("not killed")
    out = {}
    if not multi_worker:
        try:
            job(seed=5)
        except ValueError as error:
            out["refused"] = str(error)
    lines = []
    handler = logging.Handler()
    handler.emit = lambda record: lines.append(record.getMessage())
    logging.getLogger("seqpipe").addHandler(handler)
    logging.getLogger("seqpipe").setLevel(logging.INFO)
    model, history = job()
    out["resumed"] = lines
    out["weights"] = [w.tolist() for w in model.get_weights()]
    out["epochs"] = history.epoch
    out["backup_left"] = os.listdir(args.backup_dir)
    if not multi_worker:
        del os.environ["SEQPIPE_RECORD_IDS"]
        reference, _ = job(backup=False, replicas=1)
        out["reference"] = [w.tolist() for w in reference.get_weights()]
    with open(args.result, "w") as f:
        json.dump(out, f)


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    main()
