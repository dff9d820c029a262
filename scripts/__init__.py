"""Commands run by the Makefile, benchmarks and tests: set-up (`prepare_local`), the demo, the
synthetic event generator that fills the embedded warehouse, and the real Dagster processes
(webserver + daemon) driven through GraphQL."""
