# Forgehand in a container (docs/operations.md): the binary, git, bubblewrap, and Node for the
# agent CLIs (claude, codex, gemini are npm packages). Run with user namespaces allowed, e.g.
#   docker run --security-opt seccomp=unconfined --security-opt apparmor=unconfined ...
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin forgehand

FROM node:22-bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends git bubblewrap ca-certificates openssh-client \
    && rm -rf /var/lib/apt/lists/*
# The agent CLIs you use; pin versions in your own image.
RUN npm install -g @anthropic-ai/claude-code @openai/codex @google/gemini-cli \
    && npm cache clean --force
COPY --from=build /src/target/release/forgehand /usr/local/bin/forgehand
RUN useradd --create-home --home-dir /var/lib/forgehand forgehand
USER forgehand
ENV FORGEHAND_DATA_DIR=/var/lib/forgehand \
    FORGEHAND_LISTEN=0.0.0.0:2080
VOLUME /var/lib/forgehand
EXPOSE 2080
ENTRYPOINT ["forgehand"]
CMD ["serve"]
