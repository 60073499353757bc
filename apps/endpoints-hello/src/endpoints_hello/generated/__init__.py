"""Generated gRPC stubs of ``protos/genkit_sample.proto``; regenerate, never edit."""
