# syntax=docker/dockerfile:1
# One image for both services; the container command picks one:
#   node services/auth-service/dist/server.js
#   node services/resource-service/dist/server.js
# Run node directly, never through pnpm: node is then the process that gets
# the container's SIGTERM and closes gracefully (pnpm would SIGKILL it).

FROM node:24-slim AS build
ENV CI=true
RUN npm install -g pnpm@12
WORKDIR /app
# The lockfile alone decides the dependencies: this layer, the slow one, is
# rebuilt only when it changes.
COPY pnpm-lock.yaml pnpm-workspace.yaml ./
RUN pnpm fetch
COPY . .
RUN pnpm install --frozen-lockfile --offline && pnpm build
# Keep only what the services need at run time, from the store filled above.
RUN rm -rf node_modules packages/*/node_modules services/*/node_modules bench/node_modules deploy/node_modules demo/node_modules \
 && pnpm install --frozen-lockfile --offline --prod

FROM node:24-slim
ENV NODE_ENV=production HOST=0.0.0.0
WORKDIR /app
COPY --from=build /app /app
USER node
EXPOSE 3001 3002
CMD ["node", "services/auth-service/dist/server.js"]
