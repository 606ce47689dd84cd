"""Readable run names: ``adjective-animal-1a2b3c4d`` (the suffix is the uid's first 8 hex digits)."""

from __future__ import annotations

import random

_ADJECTIVES = (
    "agile amber bold brave bright calm clever cosmic crafty curious daring eager electric fancy fearless "
    "gentle glad golden happy hidden jolly keen lively lucky merry mighty nimble noble patient polite "
    "proud quick quiet rapid serene sharp shiny silent smart snappy solid spry steady sunny swift tidy "
    "upbeat vivid warm wise witty zesty"
).split()
_ANIMALS = (
    "badger beaver bison cheetah cobra condor coyote crane dingo dolphin eagle falcon ferret finch fox "
    "gazelle gecko heron ibex jackal koala lemur lynx marmot marten mink moose narwhal ocelot orca otter "
    "owl panda parrot pelican puffin quokka raven salmon seal skunk sparrow stork tapir tiger toucan "
    "walrus weasel wombat yak zebra"
).split()


def run_name(uid: str) -> str:
    """A name for the run with hex uid ``uid``."""
    rng = random.Random(uid)
    return f"{rng.choice(_ADJECTIVES)}-{rng.choice(_ANIMALS)}-{uid.replace('-', '')[:8]}"
