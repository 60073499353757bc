# SPDX-License-Identifier: Apache-2.0
"""A complete app on genkit-endpoints: a schema, a flow, a route table, ``serve``.

    python examples/hello_min.py --port 8080 --no-grpc
    curl -s localhost:8080/greet -H 'content-type: application/json' -d '{"name":"Ada"}'

Without GEMINI_API_KEY / OPENAI_API_KEY it answers with the offline model.
"""

from pydantic import BaseModel, Field

from genkit_endpoints import App, AppContext, FlowRoute, literal, serve


class Greet(BaseModel):
    name: str = Field(min_length=1, max_length=80, description="Who to greet.")


class Greeting(BaseModel):
    name: str
    text: str


def routes(ctx: AppContext) -> list[FlowRoute]:
    @ctx.ai.flow(description="Greet someone in one sentence.")
    async def greet(data: Greet) -> Greeting:
        # literal(): user text is sent as written, never compiled as a prompt template.
        reply = await ctx.llm.generate(prompt=literal(f"Greet {data.name} in one sentence."))
        return Greeting(name=data.name, text=reply.text)

    return [FlowRoute(greet, "/greet", Greet, Greeting)]


app = App(name="hello-min", routes=routes)

if __name__ == "__main__":
    serve(app)
