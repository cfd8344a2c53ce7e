"""ferkit: facial expression recognition on FER2013, from data to a web app."""

from ferkit.labels import EMOTIONS

__all__ = ["EMOTIONS"]
__version__ = "0.1.0"
