"""The docs layer runs the documented commands in a fresh environment built from the wheel."""

from tests.wheel.fixtures import fresh_envs, wheel_build

__all__ = ["fresh_envs", "wheel_build"]
