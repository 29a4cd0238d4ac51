// Minimal real Backstage backend (new backend system) for gatehouse e2e tests.
// Plain CommonJS: runs with `node index.js --config app-config.yaml`, no build step.
'use strict';

const { createBackend } = require('@backstage/backend-defaults');

const backend = createBackend();
backend.add(require('@backstage/plugin-catalog-backend'));
backend.add(require('@backstage/plugin-auth-backend'));
backend.add(require('@backstage/plugin-auth-backend-module-guest-provider'));
backend.add(require('@backstage/plugin-proxy-backend'));
// Backstage's own MCP server: the actions plugins register (the catalog's
// query-catalog-entities, ...) as MCP tools at /api/mcp-actions/v1.
backend.add(require('@backstage/plugin-mcp-actions-backend'));
backend.start();
