"""The wheel layer: the built wheel in fresh environments (see ``freshenv.py``)."""

from tests.wheel.fixtures import fresh_envs, wheel_build

__all__ = ["fresh_envs", "wheel_build"]
