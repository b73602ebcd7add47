"""The test suite; a package so spawned test processes import it as tests.*, not a
stray top-level "tests" that some wheels (jsonfeed-util) install into site-packages."""
