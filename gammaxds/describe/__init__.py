"""`gammaxds describe`: human answers to "why did my request go there" (service) and "what does this sidecar
have" (proxy), from the translation the sidecars' config comes from and from the xDS streams' own state."""
