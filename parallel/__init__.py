"""Running pipelines: the multiprocess `OrderedEnqueuer` and the trainers."""

__all__: list[str] = []
