"""An example flowdapt plugin: its stage functions are in :mod:`.stages`, its resources in ``resources/``."""

from flowdapt.plugins import PluginSpec

flowdapt_plugin = PluginSpec(stages=["flowdapt_example_plugin.stages"])
