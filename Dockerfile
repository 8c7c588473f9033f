# anubis container image: a build stage compiles the TypeScript; the runtime stage has only
# production dependencies and the compiled output, and runs as the unprivileged `node` user.
#
#   docker build -t anubis .
#   docker run --rm -p 8080:8080 -v "$PWD/anubis.yaml:/etc/anubis/anubis.yaml:ro" anubis
#
# Mount the configuration at /etc/anubis/anubis.yaml (or pass --config PATH as the command and
# set ANUBIS_CONFIG=PATH for the health check). examples/docker-compose/ runs the classic demo;
# `anubis hello --listen 0.0.0.0:8000` as the command makes the image a hello-world backend.

ARG NODE_VERSION=24

FROM node:${NODE_VERSION}-alpine AS build
WORKDIR /app
COPY package.json package-lock.json tsconfig.json tsconfig.build.json ./
# --ignore-scripts: `prepare` would build before the sources are copied.
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY src ./src
RUN npm run build

FROM node:${NODE_VERSION}-alpine AS runtime
ENV NODE_ENV=production \
    ANUBIS_CONFIG=/etc/anubis/anubis.yaml
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund && npm cache clean --force
COPY --from=build /app/dist ./dist
# The image's `node` user, by number so that Kubernetes' runAsNonRoot can verify it.
USER 1000:1000
EXPOSE 8080
# Asks the admin API when `admin` is configured, else connects to the first listener
# (src/cli/healthcheck.ts): no curl in the image, no probe traffic to backends.
HEALTHCHECK --interval=10s --timeout=5s --start-period=10s --retries=3 \
  CMD ["node", "dist/cli/healthcheck.js"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["node", "dist/cli/main.js"]
CMD ["--config", "/etc/anubis/anubis.yaml"]
