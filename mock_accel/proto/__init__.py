"""gRPC stubs generated from our .proto files by `python -m mock_accel.proto_build`."""
