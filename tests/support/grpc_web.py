# SPDX-License-Identifier: Apache-2.0
"""A gRPC-Web client for the sample service: sonora's channel, the service's methods."""

from __future__ import annotations

from typing import Any

from google.protobuf import message_factory

from endpoints_hello.generated import genkit_sample_pb2 as pb

SERVICE = pb.DESCRIPTOR.services_by_name["GenkitService"]


class WebStub:
    """The service's methods as sonora multicallables.

    Built from the descriptor rather than with the generated stub: the generated stub
    passes grpcio's ``_registered_method`` argument, which sonora's channel predates.
    """

    def __init__(self, channel: Any) -> None:
        for method in SERVICE.methods:
            request = message_factory.GetMessageClass(method.input_type)
            response = message_factory.GetMessageClass(method.output_type)
            make = channel.unary_stream if method.server_streaming else channel.unary_unary
            setattr(
                self,
                method.name,
                make(
                    f"/{SERVICE.full_name}/{method.name}",
                    request.SerializeToString,
                    response.FromString,
                ),
            )

    def __getattr__(self, name: str) -> Any:  # the methods are set above; for type checkers
        raise AttributeError(name)
