"""Generated gRPC stubs of ``protos/example.proto``; regenerate, never edit."""
