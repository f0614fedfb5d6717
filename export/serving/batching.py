"""Server-side dynamic batching with TF Serving's ``BatchingParameters``.

Concurrent requests to one signature are queued, merged along the batch dimension into one
signature call and the outputs split back, as TF Serving's BatchingSession over a
SharedBatchScheduler does (``--enable_batching``, ``--batching_parameters_file``):

- ``max_batch_size`` (default 1000): the largest merged batch; a request larger than it is
  refused as TF Serving does: ``Task size N is larger than maximum input batch size M``.
- ``batch_timeout_micros`` (default 0): how long a batch that is not full waits for more.
- ``num_batch_threads`` (default: the CPU count): batches run concurrently.
- ``max_enqueued_batches`` (default 10): more queued work than that many full batches is
  refused with UNAVAILABLE (``The batch scheduling queue ... is full``).
- ``allowed_batch_sizes``: a merged batch is padded up to the next allowed size (the last
  must equal ``max_batch_size``), padding rows dropped from the outputs.

Differences, named in docs/serving.md: only requests whose inputs agree beyond dimension 0 (and
that ask for the same outputs) share a call, so a differently-shaped request never fails its
neighbours' batch; if a merged call fails, each request is retried alone and gets its own
answer. ``enable_large_batch_splitting`` and ``pad_variable_length_inputs`` are refused.
"""

from __future__ import annotations

import collections
import logging
import os
import threading
import time
from dataclasses import dataclass, field

import numpy as np
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, text_format
from google.protobuf import wrappers_pb2

from export.serving.config import ConfigError
from export.serving.errors import ServingError, invalid

log = logging.getLogger("export.serve")


def _batching_parameters_class():
    """TF Serving's BatchingParameters message (session_bundle_config.proto), which the
    tensorflow-serving-api package does not ship, built from its field list."""
    file = descriptor_pb2.FileDescriptorProto(
        name="gan_zoo/session_bundle_config_batching.proto", package="tensorflow.serving",
        syntax="proto3", dependency=["google/protobuf/wrappers.proto"])
    message = file.message_type.add(name="BatchingParameters")
    label = descriptor_pb2.FieldDescriptorProto
    for name, number, wrapper in (("max_batch_size", 1, "Int64Value"),
                                  ("batch_timeout_micros", 2, "Int64Value"),
                                  ("max_enqueued_batches", 3, "Int64Value"),
                                  ("num_batch_threads", 4, "Int64Value"),
                                  ("thread_pool_name", 5, "StringValue"),
                                  ("enable_large_batch_splitting", 8, "BoolValue"),
                                  ("max_execution_batch_size", 9, "Int64Value")):
        message.field.add(name=name, number=number, label=label.LABEL_OPTIONAL,
                          type=label.TYPE_MESSAGE, type_name=f".google.protobuf.{wrapper}")
    message.field.add(name="allowed_batch_sizes", number=6, label=label.LABEL_REPEATED,
                      type=label.TYPE_INT64)
    message.field.add(name="pad_variable_length_inputs", number=7, label=label.LABEL_OPTIONAL,
                      type=label.TYPE_BOOL)
    pool = descriptor_pool.DescriptorPool()  # private: never clashes with a real registration
    wrappers = descriptor_pb2.FileDescriptorProto()
    wrappers_pb2.DESCRIPTOR.CopyToProto(wrappers)
    pool.Add(wrappers)
    pool.Add(file)
    descriptor = pool.FindMessageTypeByName("tensorflow.serving.BatchingParameters")
    return message_factory.GetMessageClass(descriptor)


@dataclass(frozen=True)
class BatchingParameters:
    max_batch_size: int = 1000
    batch_timeout_micros: int = 0
    max_enqueued_batches: int = 10
    num_batch_threads: int = field(default_factory=lambda: os.cpu_count() or 1)
    allowed_batch_sizes: tuple[int, ...] = ()

    def __post_init__(self):
        for name in ("max_batch_size", "max_enqueued_batches", "num_batch_threads"):
            if getattr(self, name) < 1:
                raise ConfigError(f"Batching parameter {name} must be positive, got "
                                  f"{getattr(self, name)}")
        if self.batch_timeout_micros < 0:
            raise ConfigError("Batching parameter batch_timeout_micros must be >= 0, got "
                              f"{self.batch_timeout_micros}")
        sizes = self.allowed_batch_sizes
        if sizes:
            if any(a >= b for a, b in zip(sizes, sizes[1:])) or sizes[0] < 1:
                raise ConfigError("allowed_batch_sizes must be positive and increasing, got "
                                  f"{list(sizes)}")
            if sizes[-1] != self.max_batch_size:
                raise ConfigError("Last entry in allowed_batch_sizes must match max_batch_size; "
                                  f"last entry was {sizes[-1]}; expected {self.max_batch_size}")


def parse_batching_parameters(text: str, source: str = "batching parameters") -> BatchingParameters:
    """BatchingParameters from TF Serving's text proto, or ConfigError naming the problem."""
    message = _batching_parameters_class()()
    try:
        text_format.Parse(text, message)
    except text_format.ParseError as error:
        raise ConfigError(f"Failed to parse {source} as BatchingParameters: {error}") from None
    if message.HasField("enable_large_batch_splitting") and message.enable_large_batch_splitting.value:
        raise ConfigError(f"{source}: enable_large_batch_splitting is not supported by this server")
    if message.pad_variable_length_inputs:
        raise ConfigError(f"{source}: pad_variable_length_inputs is not supported by this server")
    values = {name: getattr(message, name).value for name in
              ("max_batch_size", "batch_timeout_micros", "max_enqueued_batches",
               "num_batch_threads") if message.HasField(name)}
    return BatchingParameters(**values, allowed_batch_sizes=tuple(message.allowed_batch_sizes))


def read_batching_parameters(path) -> BatchingParameters:
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"Cannot read --batching_parameters_file {path}: {error}") from None
    return parse_batching_parameters(text, str(path))


class _Task:
    __slots__ = ("arrays", "size", "key", "wanted", "deadline", "enqueued", "done", "result",
                 "error", "taken")

    def __init__(self, arrays, size, key, wanted, deadline):
        self.arrays, self.size, self.key, self.wanted = arrays, size, key, wanted
        self.deadline, self.enqueued = deadline, time.monotonic()
        self.done = threading.Event()
        self.result = self.error = None
        self.taken = False


def _deadline_exceeded() -> ServingError:
    from export.serving.repository import deadline_exceeded

    return deadline_exceeded()


class BatchScheduler:
    """One queue per signature, ``num_batch_threads`` workers shared by all queues."""

    def __init__(self, params: BatchingParameters):
        self.params = params
        self._cond = threading.Condition()
        self._queues: dict[object, collections.deque] = {}
        self._closed = False
        self._threads = [threading.Thread(target=self._work, name=f"batch-{i}", daemon=True)
                         for i in range(params.num_batch_threads)]
        for thread in self._threads:
            thread.start()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        for thread in self._threads:
            thread.join()

    def run(self, signature, arrays: dict[str, np.ndarray], wanted, deadline):
        """The outputs of ``signature`` for this request, computed in a merged batch."""
        sizes = {a.shape[0] if a.ndim else None for a in arrays.values()}
        if len(sizes) != 1 or None in sizes:
            return signature._run(arrays, wanted)  # no common batch dimension: run alone
        size = sizes.pop()
        if size > self.params.max_batch_size:
            raise invalid(f"Task size {size} is larger than maximum input batch size "
                          f"{self.params.max_batch_size}")
        key = (tuple(sorted((n, a.dtype.str, a.shape[1:]) for n, a in arrays.items())),
               tuple(wanted))
        task = _Task(arrays, size, key, tuple(wanted), deadline)
        with self._cond:
            queue = self._queues.setdefault(signature, collections.deque())
            pending = sum(t.size for t in queue)
            if pending + size > self.params.max_enqueued_batches * self.params.max_batch_size:
                raise ServingError("UNAVAILABLE", "The batch scheduling queue to which this task "
                                   "was submitted is full")
            queue.append(task)
            self._cond.notify()
        timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
        if not task.done.wait(timeout):
            with self._cond:
                if not task.taken:
                    self._queues[signature].remove(task)  # never run
            raise _deadline_exceeded()
        if task.error is not None:
            raise task.error
        return task.result

    # -- workers ----------------------------------------------------------------------------

    def _ready(self, now):
        """(signature, tasks) of the first queue with a batch to run, or (None, wake-up time)."""
        timeout = self.params.batch_timeout_micros / 1e6
        wake = None
        for signature, queue in self._queues.items():
            if not queue:
                continue
            full = sum(t.size for t in queue if t.key == queue[0].key) >= self.params.max_batch_size
            due = queue[0].enqueued + timeout
            if full or now >= due:
                return signature, self._take(queue)
            wake = due if wake is None else min(wake, due)
        return None, wake

    def _take(self, queue) -> list[_Task]:
        key, total, tasks, kept = queue[0].key, 0, [], []
        while queue:
            task = queue.popleft()
            if task.key == key and total + task.size <= self.params.max_batch_size:
                task.taken = True
                tasks.append(task)
                total += task.size
            else:
                kept.append(task)
        queue.extendleft(reversed(kept))
        return tasks

    def _work(self) -> None:
        while True:
            with self._cond:
                while True:
                    if self._closed:
                        return
                    signature, ready = self._ready(time.monotonic())
                    if signature is not None:
                        break
                    self._cond.wait(None if ready is None else max(0.0, ready - time.monotonic()))
            self._run_batch(signature, ready)

    def _run_batch(self, signature, tasks: list[_Task]) -> None:
        now = time.monotonic()
        live = []
        for task in tasks:
            if task.deadline is not None and now >= task.deadline:
                task.error = _deadline_exceeded()  # its deadline passed in the queue: not run
                task.done.set()
            else:
                live.append(task)
        if not live:
            return
        try:
            self._merged(signature, live)
        except Exception as error:
            if len(live) == 1:
                live[0].error = error if isinstance(error, ServingError) else ServingError(
                    "INTERNAL", f"Internal error: {type(error).__name__}: {error}")
            else:  # one odd request must not fail its neighbours: each alone
                for task in live:
                    try:
                        task.result = signature._run(task.arrays, task.wanted)
                    except Exception as single:
                        task.error = single if isinstance(single, ServingError) else \
                            ServingError("INTERNAL", f"Internal error: {single}")
        for task in live:
            task.done.set()

    def _merged(self, signature, tasks: list[_Task]) -> None:
        total = sum(t.size for t in tasks)
        padded = next((s for s in self.params.allowed_batch_sizes if s >= total), total)
        names = list(tasks[0].arrays)
        merged = {}
        for name in names:
            parts = [t.arrays[name] for t in tasks]
            if padded > total:
                parts.append(np.repeat(parts[-1][-1:], padded - total, axis=0))
            merged[name] = np.concatenate(parts, axis=0) if len(parts) > 1 else parts[0]
        outputs = signature._run(merged, tasks[0].wanted)
        for name, array in outputs.items():
            if array.ndim == 0 or array.shape[0] != padded:
                raise ServingError("INTERNAL", f"Batched output tensor {name} has 0th dimension "
                                   f"{array.shape[0] if array.ndim else 'none'}, expected "
                                   f"{padded}")
        offset = 0
        for task in tasks:
            task.result = {n: a[offset:offset + task.size] for n, a in outputs.items()}
            offset += task.size
