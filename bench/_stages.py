"""No-op stage functions shared by the benchmarks (importable by process workers as ``_stages``)."""


def first(x: int = 0) -> int:
    """Root of the chain: returns its input."""
    return x


def step(x: int) -> int:
    """One link of the chain: returns the previous output."""
    return x


def numbers(n: int = 10_000) -> list[int]:
    """Fan-out source: ``list(range(n))``."""
    return list(range(n))


def square(x: int) -> int:
    """Fan-out map: squares one item."""
    return x * x


def total(values: list[int]) -> int:
    """Fan-out reduce: sums the items."""
    return sum(values)
