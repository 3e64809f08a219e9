"""World → views: pure translation of Kubernetes objects into Envoy resources, and route status."""

from ..model.status import RouteStatuses
from .translator import Translation, Translator, translate_status, translate_view
from .view import View, ViewKey

__all__ = [
    "RouteStatuses",
    "Translation",
    "Translator",
    "View",
    "ViewKey",
    "translate_status",
    "translate_view",
]
