"""Pydantic models of the Kubernetes inputs, their loading and validation errors, and the World."""

from .base import Object, ObjectMeta, duration_ms
from .core import Namespace, Service, ServicePort
from .discovery import Endpoint, EndpointSlice
from .errors import ObjectError
from .gateway import GRPCRoute, HTTPRoute, ParentReference, ReferenceGrant, Route
from .load import Loaded, load_paths, one_copy_each, parse_object, parse_text
from .world import World, key_of

__all__ = [
    "Endpoint",
    "EndpointSlice",
    "GRPCRoute",
    "HTTPRoute",
    "Loaded",
    "Namespace",
    "Object",
    "ObjectError",
    "ObjectMeta",
    "ParentReference",
    "ReferenceGrant",
    "Route",
    "Service",
    "ServicePort",
    "World",
    "duration_ms",
    "key_of",
    "load_paths",
    "one_copy_each",
    "parse_object",
    "parse_text",
]
