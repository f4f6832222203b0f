"""A training job that backs itself up, for the crash-and-resume tests.

``python -m tests.parallel._backup_job BACKUP_DIR RESULT_JSON [KILL_AT]`` trains with
``backup_every=1``, op determinism on, and the ids of every trained batch appended to
``$SEQPIPE_RECORD_IDS``. With ``KILL_AT=k`` it SIGKILLs itself right after global step
``k`` (mid-epoch, its backup written); run again without it, it resumes from the backup
and writes its final weights and History to ``RESULT_JSON``.

On one machine (no ``TF_CONFIG``) it uses 2 of 3 logical CPU devices; before resuming
it calls ``fit`` once as another job (another pipeline, 3 replicas) and records the
error that refuses the backup, and after resuming it trains the same job uninterrupted
(no backup, no recording) for the weights to compare with. With ``TF_CONFIG`` naming two
workers, each worker runs this (both kill themselves at the same step).
"""

import json
import os
import signal
import sys

EPOCHS, BATCH = 3, 8
SAMPLES = {"single": 60, "multi-worker": 64}  # 64: two shards, no padding rows


def main() -> None:
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

    backup_dir, result = sys.argv[1], sys.argv[2]
    kill_at = int(sys.argv[3]) if len(sys.argv) > 3 else None
    x, _ = make_data(SAMPLES["multi-worker" if multi_worker else "single"])
    y = (x[:, 0] > 0).astype("int64") + (x[:, 1] > 0)

    def job(callbacks=(), backup=True, batch_size=BATCH, replicas=2):
        model = make_classifier(optimizer=keras.optimizers.Adam(0.01))
        seq = Pipeline((x, y), batch_size=batch_size, shuffle=True, seed=4)
        history = MultiGPUTrainer(model).fit(
            seq,
            devices=devices and devices[:replicas],
            epochs=EPOCHS,
            callbacks=list(callbacks),
            verbose=0,
            backup_dir=backup_dir if backup else None,
            backup_every=1,
        )
        return model, history

    class Kill(keras.callbacks.Callback):
        """SIGKILLs this process after global step ``kill_at`` (its backup is written)."""

        def __init__(self):
            super().__init__()
            self.done = 0

        def on_train_batch_end(self, batch, logs=None):
            self.done += 1
            if self.done == kill_at:
                os.kill(os.getpid(), signal.SIGKILL)

    if kill_at is not None:
        job([Kill()])
        sys.exit("not killed")
    out = {}
    if not multi_worker:
        try:
            job(batch_size=6, replicas=3)
        except ValueError as error:
            out["refused"] = str(error)
    model, history = job()
    out["weights"] = [w.tolist() for w in model.get_weights()]
    out["epochs"] = history.epoch
    out["backup_left"] = os.listdir(backup_dir)
    if not multi_worker:
        del os.environ["SEQPIPE_RECORD_IDS"]
        reference, _ = job(backup=False)
        out["reference"] = [w.tolist() for w in reference.get_weights()]
    with open(result, "w") as f:
        json.dump(out, f)


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    main()
