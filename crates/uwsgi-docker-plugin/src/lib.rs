//! docker_plugin.so (skeleton; see issue 4).
