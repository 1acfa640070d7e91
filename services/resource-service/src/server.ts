import { runServer } from '@baton/service-kit'
import { buildApp } from './app.js'
import { loadConfig } from './config.js'

await runServer({ name: 'resource-service', loadConfig, buildApp })
