"""Pure placement: requirements x host views -> decision with reasons. No I/O, no clock."""

from controller.placement.core import first_rejection, place
from controller.placement.model import Decision, HostView, Rejection, Requirements

__all__ = ["Decision", "HostView", "Rejection", "Requirements", "first_rejection", "place"]
