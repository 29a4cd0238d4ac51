// Minimal real Backstage backend (new backend system) for gatehouse e2e tests.
// Plain CommonJS: runs with `node index.js --config app-config.yaml`, no build step.
'use strict';

const { createBackend } = require('@backstage/backend-defaults');

const backend = createBackend();
backend.add(require('@backstage/plugin-catalog-backend'));
backend.add(require('@backstage/plugin-auth-backend'));
backend.add(require('@backstage/plugin-auth-backend-module-guest-provider'));
backend.add(require('@backstage/plugin-proxy-backend'));
backend.start();
