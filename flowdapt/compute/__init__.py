"""The engine: graph, stages, context, runner, object store and executors."""
