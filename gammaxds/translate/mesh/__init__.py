"""The mesh front end: routes attached to Services (GAMMA's parentRefs, producer and consumer routes)."""
