"""Local development/test stack for the FirecREST-compatible gateway (operator tool ``firecrest-stack``)."""
