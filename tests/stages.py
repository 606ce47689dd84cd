"""Stage functions used by the tests (importable by process and cluster workers)."""

import asyncio
import logging
import os
import time

from flowdapt import get_run_context, object_store


def numbers(n: int = 10):
    return list(range(n))


def square(x):
    return x * x


def add(a, b):
    return a + b


def total(values):
    return sum(values)


def fail(*args, **kwargs):
    raise ValueError("stage exploded: bad value 42")


def counted_numbers(n: int = 10):
    """``numbers``, saying what it does: a line on stdout and a warning through ``logging``."""
    print(f"counting to {n}")
    logging.getLogger("tests.stages").warning("odd numbers will fail")
    return list(range(n))


def fail_on_odd(x):
    if x % 2:
        raise ValueError(f"odd item {x}")
    return x


async def async_double(x: int = 1):
    await asyncio.sleep(0.01)
    return x * 2


def sleep_for(seconds: float = 5.0):
    time.sleep(seconds)
    return seconds


def ignore_interrupts(marker: str, seconds: float = 30.0):
    """Write this worker's pid to ``marker``, then sleep through every KeyboardInterrupt."""
    with open(f"{marker}.tmp", "w") as out:
        out.write(str(os.getpid()))
    os.replace(f"{marker}.tmp", marker)  # the marker appears with its content
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            time.sleep(0.05)
        except KeyboardInterrupt:
            pass


def pid(*args):
    return os.getpid()


def context_info(*args, **kwargs):
    ctx = get_run_context()
    return {"input": ctx.input, "config": ctx.config, "namespace": ctx.namespace, "run": ctx.run.name,
            "executor": ctx.executor, "stage": ctx.stage}


def put_model(**kwargs):
    object_store.put("model", {"weights": [1, 2, 3]})
    return True


def get_model(_):
    return object_store.get("model")


def noop():
    return None


def interval(x, seconds: float = 0.3):
    """Return (item, start, end) so tests can see that items overlapped in time."""
    start = time.time()
    time.sleep(seconds)
    return (x, start, time.time())


def flaky(counter: str, failures: int = 1):
    """Fail the first ``failures`` calls (counted in a file, so it works across processes)."""
    with open(counter, "a") as handle:
        handle.write(f"{time.time()}\n")
    with open(counter) as handle:
        calls = len(handle.readlines())
    if calls <= failures:
        raise ConnectionError(f"flaky call {calls}")
    return calls


async def async_sleep(seconds: float = 5.0):
    await asyncio.sleep(seconds)
    return seconds


def ordered(a, b, c):
    return [a, b, c]


def takes_nothing():
    return 1


def greet(name: str, greeting: str = "hello"):
    return f"{greeting} {name}"


def kwargs_echo(**kwargs):
    return kwargs


def first(values):
    return values[0]


def slow_then(x=None, seconds: float = 1.0):
    time.sleep(seconds)
    return "slow"


def fast(x=None):
    return "fast"


def item_with_input(item, scale: int = 1):
    return item * scale


def fail_after(seconds: float = 0.3):
    time.sleep(seconds)
    raise ValueError("stage exploded late")


def touch(*args):
    """Create the file named by the run input's ``marker`` (to see whether a stage ran at all)."""
    with open(get_run_context().input["marker"], "a"):
        pass
    return True


def pause(x=None, seconds: float = 0.05):
    time.sleep(seconds)
    return x


def gpu_probe(item=None, hold: float = 0.0):
    """What a stage holding a GPU sees (tests/test_gpu.py): the devices it may use, the device's name,
    a sum computed on it, and when it held it (to tell whether two such stages overlapped)."""
    import torch

    started = time.time()
    value = float((torch.ones(1024, device="cuda") * 2).sum())
    time.sleep(hold)
    return {"visible": os.environ.get("CUDA_VISIBLE_DEVICES"), "device": torch.cuda.get_device_name(0),
            "value": value, "held": [started, time.time()], "pid": os.getpid()}


def write_pid_then_sleep(path: str, seconds: float = 30.0):
    """Append this process's pid to ``path`` (a test kills it), then sleep."""
    import os

    with open(path, "a") as handle:
        handle.write(f"{os.getpid()}\n")
    time.sleep(seconds)
    return seconds


def until_cancelled(marker: str, seconds: float = 10.0):
    """Poll ``is_cancelled()`` for up to ``seconds``; write to ``marker`` when it says the run was cancelled."""
    context = get_run_context()
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if context.is_cancelled():
            # Written whole under another name and renamed, so a test that waits for the file never reads it half-written.
            partial = f"{marker}.partial"
            with open(partial, "w") as handle:
                handle.write(f"{context.stage} saw the cancellation")
            os.replace(partial, marker)
            return "cancelled"
        time.sleep(0.01)
    return "timed out"
