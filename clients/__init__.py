"""Client stubs and examples in Python, TypeScript, Go and C++ (see clients/README.md)."""
