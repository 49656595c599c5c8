//! Routers that steer traffic between revisions; the built-in proxy's router.
