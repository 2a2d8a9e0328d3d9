"""The klupa gateway: one municipality's benches, from its Mosquitto to durable store and sinks."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("klupa")
except PackageNotFoundError:  # run from a checkout that was never installed
    __version__ = "0.0.0"
